# One image for every anonchat process; docker-compose.yml's `command` picks which.
FROM python:3.11.14-slim-bookworm

# uv installs the locked dependencies; pinned like them (scripts/bootstrap uses the same).
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH="/app/.venv/bin:$PATH"

WORKDIR /app

RUN groupadd --system --gid 10001 anonchat \
    && useradd --system --uid 10001 --gid anonchat --no-log-init --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin anonchat

# Dependencies first, in their own layer: rebuilt only when pyproject.toml or uv.lock
# change, not on every code edit. The project itself is not a package (tool.uv).
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3.11

# The code stays root-owned: the processes read it, they never write it.
COPY common/ common/
COPY gateway/ gateway/
COPY user_service/ user_service/
COPY message_service/ message_service/
COPY worker/ worker/
# The web page the gateway serves at / (read once at its start).
COPY web/ web/

# Numeric, so a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001

# 9100: every process's Prometheus metrics (ANONCHAT_METRICS_PORT's default); the
# gateway's API is 8000.
EXPOSE 8000 9100
CMD ["python", "-m", "uvicorn", "gateway.app:create_app", "--factory", "--host", "0.0.0.0", \
     "--port", "8000", "--no-access-log", "--no-server-header", \
     "--http", "common.serving:GuardedHttpProtocol", \
     "--limit-concurrency", "10000", "--backlog", "2048", "--log-level", "warning"]
