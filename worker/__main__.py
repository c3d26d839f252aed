"""``python -m worker``: one RQ worker on the messages queue."""

from worker.main import main

main()
