"""What every test stack and in-process app is configured with."""

from __future__ import annotations

import uuid

INTERNAL_TOKEN = "test-internal-token-" + uuid.uuid4().hex
JWT_SECRET = "test-jwt-secret-" + uuid.uuid4().hex
# Cheap argon2id parameters, so that registering hundreds of users stays quick.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 1024, "argon2_parallelism": 1}
# The session's stack is not where rate limits are tested (tests/test_security_e2e.py
# starts gateways of its own for that): lift them so that tests never wait on them.
NO_RATE_LIMITS = dict.fromkeys(
    (
        "GATEWAY_LOGIN_RATE_PER_USERNAME",
        "GATEWAY_LOGIN_RATE_PER_ADDRESS",
        "GATEWAY_REGISTER_RATE_PER_ADDRESS",
        "MESSAGE_SERVICE_SEND_RATE_PER_USER",
    ),
    "1000000/1",
)
# A dead worker's job is requeued once its heartbeat lapses, by the next maintenance pass.
QUICK_RECOVERY_ENV = {
    "WORKER_HEARTBEAT_TTL_SECONDS": "4",
    "WORKER_STATEMENT_TIMEOUT_MS": "3000",
    "WORKER_MAINTENANCE_INTERVAL_SECONDS": "1",
    "WORKER_WORKER_TTL_SECONDS": "16",
}
FAST_HASHING_ENV = {
    f"USER_SERVICE_{key.upper()}": str(value) for key, value in FAST_HASHING.items()
}
# Streams that show their deadlines within a test: a keep-alive each second (a reader
# waiting longer is stuck), a stalled reader cut off after 3 s, few streams per user.
QUICK_STREAMS_ENV = {
    "MESSAGE_SERVICE_STREAM_KEEP_ALIVE_SECONDS": "1",
    "MESSAGE_SERVICE_STREAMS_PER_USER": "4",
    "ANONCHAT_SERVER_WRITE_STALL_TIMEOUT_SECONDS": "3",
}
# An erased account's messages are erased again for 2 s after it (sends still on their
# way), then its note goes.
QUICK_ERASURE_ENV = {
    "USER_SERVICE_ERASURE_RETRY_SECONDS": "0.5",
    "USER_SERVICE_ERASURE_SETTLE_SECONDS": "2",
}
