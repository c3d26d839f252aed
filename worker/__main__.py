"""``python -m worker``: one RQ worker on the messages queue."""

import signal
import sys

# Until RQ's handlers take over (imports and connecting take a second or two), SIGTERM
# ends the process cleanly: no job has started.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

from worker.main import main  # noqa: E402

main()
