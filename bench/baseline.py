"""The original design's shape, as the baseline: a synchronous Flask app under gunicorn
(two sync workers), one SQLAlchemy insert and commit per send, no queue.

``gunicorn bench.baseline:app`` with ``BENCH_BASELINE_DATABASE_URL`` set.
"""

from __future__ import annotations

import os
from functools import lru_cache

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import BigInteger, Engine, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Message(Base):
    __tablename__ = "baseline_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    content: Mapped[str] = mapped_column(String)
    sender_id: Mapped[int] = mapped_column(BigInteger)
    receiver_id: Mapped[int] = mapped_column(BigInteger)


@lru_cache
def engine() -> Engine:
    """The worker process's engine (built after gunicorn forks)."""
    return create_engine(os.environ["BENCH_BASELINE_DATABASE_URL"], pool_size=1)


app = Flask(__name__)


@app.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@app.post("/send_message")
def send_message() -> ResponseReturnValue:
    data = request.get_json()
    with Session(engine()) as session:
        message = Message(
            content=data["content"], sender_id=data["sender_id"], receiver_id=data["receiver_id"]
        )
        session.add(message)
        session.commit()
        return jsonify(id=message.id), 201
