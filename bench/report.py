"""The benchmark's table: each anonchat figure beside its ceiling and its target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bench.results import (
    Anonchat,
    Backlog,
    Baseline,
    Ceilings,
    Held,
    RedisMemory,
    Results,
    Rounds,
    Streams,
)
from bench.wrk import Load

RSS_LIMIT_MB = 150
# Send-to-visible's target, and send-to-delivered's.
VISIBLE_LIMIT_MS = 50
HELD_TARGET = 5_000
PER_STREAM_LIMIT_KB = 30
FAN_OUT_TARGET = 0.8
BLOCKED_TARGET = 0.95
QUEUED_LIMIT_BYTES = 1024
SETTLED_LIMIT_BYTES = 1024 * 1024
MB = 1024 * 1024
HEADERS = ("", "measured", "ratio", "target")
T = TypeVar("T")
# A cell: fixed text, or what it says of one run.
Cell = str | Callable[[Results], str]


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    label: Cell
    measured: Cell = ""
    ratio: Cell = ""
    target: str = ""

    def cells(self, results: Results) -> tuple[str, ...]:
        """The row's text for ``results``."""
        return tuple(
            cell(results) if callable(cell) else cell
            for cell in (self.label, self.measured, self.ratio, self.target)
        )


def _load(load: Load) -> str:
    return f"{load.rate:,.0f} req/s, p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms"


def _rounds(rounds: Rounds) -> str:
    return f"{rounds.rate:,.0f} req/s, mean p50 {rounds.p50_ms:.1f} ms, p99 {rounds.p99_ms:.1f} ms"


def _latency(p50_ms: float, p99_ms: float) -> str:
    return f"p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms"


def _present(part: T | None) -> T:
    """A section of the results that was measured."""
    assert part is not None
    return part


def _ceilings(results: Results) -> Ceilings:
    return _present(results.ceilings)


def _baseline(results: Results) -> Baseline:
    return _present(results.baseline)


def _anonchat(results: Results) -> Anonchat:
    return _present(results.anonchat)


def _streams(results: Results) -> Streams:
    return _present(results.streams)


def _redis(results: Results) -> RedisMemory:
    return _anonchat(results).redis_memory


CEILINGS = [
    Row("Ceilings"),
    Row("  one hop: bare FastAPI endpoint", lambda r: _load(_ceilings(r).one_hop)),
    Row("  two hops: bare forwarding gateway", lambda r: _load(_ceilings(r).two_hops)),
    Row("  RQ enqueue, one job per call", lambda r: f"{_ceilings(r).rq_enqueue:,.0f} jobs/s"),
    Row(
        "  Postgres insert, one row per commit",
        lambda r: f"{_ceilings(r).postgres_one_row_per_commit:,.0f} rows/s",
    ),
    Row(
        "  Postgres insert, 100 rows per commit",
        lambda r: f"{_ceilings(r).postgres_batched:,.0f} rows/s",
    ),
]
BASELINE = [
    Row("Baseline: Flask, 2 sync workers, one insert per send", lambda r: _load(_baseline(r).load)),
]
ANONCHAT = [
    Row("anonchat"),
    Row(
        "  accepted sends through the gateway",
        lambda r: _load(_anonchat(r).accepted),
        lambda r: (
            f"{_anonchat(r).accepted.rate / _ceilings(r).two_hops.rate:.2f}x two hops, "
            f"{_anonchat(r).accepted.rate / _baseline(r).load.rate:.2f}x baseline"
        ),
        ">= 0.6x, >= 2.5x",
    ),
    Row(
        lambda r: f"  persisted, {_anonchat(r).persisted.window_seconds:.0f} s at the maximum rate",
        lambda r: (
            f"{_anonchat(r).persisted.rate:,.0f} msgs/s; queued "
            f"{_anonchat(r).persisted.depth_start.messages:,} -> "
            f"{_anonchat(r).persisted.depth_end.messages:,}"
        ),
        lambda r: f"{_anonchat(r).persisted.rate / _anonchat(r).accepted.rate:.2f}x accepted",
        "keeps up, queue flat",
    ),
    Row(
        lambda r: (
            f"  worker capacity, 2 workers draining {_anonchat(r).worker_capacity.messages:,} "
            f"msgs in {_anonchat(r).worker_capacity.jobs:,} jobs"
        ),
        lambda r: f"{_anonchat(r).worker_capacity.rate:,.0f} msgs/s",
        lambda r: (
            f"{_anonchat(r).worker_capacity.rate / _ceilings(r).postgres_batched:.2f}x "
            "batched Postgres"
        ),
        ">= 0.3x",
    ),
    Row(
        lambda r: (
            f"  send-to-visible at {_anonchat(r).send_to_visible.rate:,.0f} sends/s "
            f"({_anonchat(r).send_to_visible.rate / _anonchat(r).accepted.rate:.2f}x max)"
        ),
        lambda r: _latency(
            _anonchat(r).send_to_visible.p50_ms, _anonchat(r).send_to_visible.p99_ms
        ),
        lambda r: (
            "202 in "
            + _latency(
                _anonchat(r).send_to_visible.answered_p50_ms,
                _anonchat(r).send_to_visible.answered_p99_ms,
            )
        ),
        f"p99 < {VISIBLE_LIMIT_MS} ms",
    ),
    Row(
        lambda r: (
            f"  get_messages, a {_anonchat(r).get_messages.size}-message page, "
            f"{_anonchat(r).get_messages.stored:,} stored"
        ),
        lambda r: _latency(
            _anonchat(r).get_messages.load.p50_ms, _anonchat(r).get_messages.load.p99_ms
        ),
        lambda r: f"{_anonchat(r).get_messages.load.rate:,.0f} pages/s",
        "p99 < 10 ms",
    ),
    Row(
        "  stored exactly once",
        lambda r: (
            f"{_anonchat(r).exactly_once.stored:,} stored, "
            f"{_anonchat(r).exactly_once.distinct:,} distinct, "
            f"{_anonchat(r).exactly_once.answered:,} answered 202"
        ),
        "",
        "stored = distinct >= answered",
    ),
    Row("  Redis memory of keyed sends (each with an Idempotency-Key)"),
    Row(
        lambda r: (
            f"    per queued message: {_redis(r).backlog.messages:,} in "
            f"{_redis(r).backlog.jobs:,} jobs, workers paused"
        ),
        lambda r: (
            f"{_redis(r).backlog.per_queued:,.0f} B "
            f"({_redis(r).backlog.queued_bytes / MB:.1f} MB in all)"
        ),
        lambda r: f"keys listed below: {_redis(r).backlog.keys_per_message:,.0f} B",
        f"< {QUEUED_LIMIT_BYTES:,} B",
    ),
    Row(
        "    per stored message, once its margin has passed",
        lambda r: f"{_redis(r).per_stored:,.1f} B",
        lambda r: f"right after the store: {_redis(r).backlog.per_drained:,.0f} B",
        "about 0",
    ),
    Row(
        lambda r: (
            f"    after {_redis(r).first.keyed_stored:,} and "
            f"{_redis(r).second.keyed_stored:,} keyed stored"
        ),
        lambda r: (
            f"{_redis(r).first.used_memory / MB:.2f} MB, {_redis(r).second.used_memory / MB:.2f} MB"
        ),
        lambda r: f"{_redis(r).growth / MB:+.2f} MB",
        f"within {SETTLED_LIMIT_BYTES / MB:.0f} MB",
    ),
    Row("Peak RSS", target=f"each < {RSS_LIMIT_MB} MB"),
]


def _most(results: Results) -> Held:
    """The last step of idle streams opened: the most the stack was tried with."""
    return _streams(results).held[-1]


def _per_stream(name: str) -> Row:
    return Row(
        f"    memory per stream, {name}",
        lambda r: f"{_most(r).per_stream_kib(name):,.1f} KB",
        lambda r: (
            f"RSS {_most(r).rss_before_kib[name] / 1024:,.0f} -> "
            f"{_most(r).rss_after_kib[name] / 1024:,.0f} MB"
        ),
        f"< {PER_STREAM_LIMIT_KB} KB",
    )


STREAMS = [
    Row("Event stream (a stack of its own, 2 workers)"),
    Row("  accepted sends, no stream open", lambda r: _load(_streams(r).accepted)),
    Row(
        lambda r: (
            f"  accepted sends, {_streams(r).fan_out.streams:,} streams open (every sender's)"
        ),
        lambda r: _load(_streams(r).fan_out.load),
        lambda r: (
            f"{_streams(r).fan_out.load.rate / _streams(r).accepted.rate:.2f}x no stream; "
            f"{_streams(r).fan_out.per_send:.2f} events a send"
        ),
        f">= {FAN_OUT_TARGET}x",
    ),
    Row(
        lambda r: (
            f"  send-to-delivered at {_streams(r).delivered.rate:,.0f} sends/s "
            f"({_streams(r).delivered.rate / _streams(r).accepted.rate:.2f}x max), "
            f"{_streams(r).delivered_streams:,} streams open"
        ),
        lambda r: _latency(_streams(r).delivered.p50_ms, _streams(r).delivered.p99_ms),
        lambda r: (
            "202 in "
            + _latency(_streams(r).delivered.answered_p50_ms, _streams(r).delivered.answered_p99_ms)
        ),
        f"p99 < {VISIBLE_LIMIT_MS} ms",
    ),
    Row(
        lambda r: f"  idle streams held, opened {_streams(r).held[0].opened:,} at a time",
        lambda r: f"{_most(r).held:,} of {_most(r).opened:,} opened (the most tried)",
        lambda r: (
            f"{sum(sum(step.refused.values()) for step in _streams(r).held):,} refused, "
            f"opened again; open files {_streams(r).open_files:,}"
        ),
        f">= {HELD_TARGET:,}",
    ),
    _per_stream("gateway"),
    _per_stream("message_service"),
    Row(
        lambda r: (
            f"  sends to a receiver who blocks the sender ({_streams(r).blocks.hidden:,} "
            "stored hidden)"
        ),
        lambda r: _rounds(_streams(r).blocks.blocked),
        lambda r: (
            f"{_streams(r).blocks.ratio:.2f}x ordinary; p99 "
            f"{_streams(r).blocks.blocked.p99_ms / _streams(r).blocks.ordinary.p99_ms:.2f}x"
        ),
        f">= {BLOCKED_TARGET}x",
    ),
    Row(
        lambda r: (
            "  sends to an ordinary receiver, at the same time "
            f"({len(_streams(r).blocks.ordinary.loads)} rounds)"
        ),
        lambda r: _rounds(_streams(r).blocks.ordinary),
    ),
]


def table(results: Results) -> str:
    """One plain-text table of every figure, ratio and target of the sections measured."""
    rows = [
        row.cells(results)
        for part, section in (
            (results.ceilings, CEILINGS),
            (results.baseline, BASELINE),
            (results.anonchat, ANONCHAT),
        )
        if part is not None
        for row in section
    ]
    if results.anonchat is not None:
        rows += [
            (f"  {name}", f"{mb:.0f} MB", "", "")
            for name, mb in sorted(results.anonchat.peak_rss_mb.items())
        ]
    if results.streams is not None:
        rows += [row.cells(results) for row in STREAMS]
    text = _layout([HEADERS, *rows])
    if results.anonchat is not None:
        text += "\n\n" + _keys(_redis(results).backlog)
    return text


def _keys(backlog: Backlog) -> str:
    """What each kind of key costs per queued message: alone, and in the backlog."""
    headers = (
        "Redis per queued message, by key",
        "a lone send",
        f"each of {backlog.messages:,} queued",
    )
    rows = [
        (key.kind, f"{key.lone:,} B", "" if key.backlog is None else f"{key.backlog:,.1f} B")
        for key in backlog.keys
    ]
    total = ("all the above", "", f"{backlog.keys_per_message:,.1f} B")
    grown = ("used_memory's growth", "", f"{backlog.per_queued:,.1f} B")
    return _layout([headers, *rows, total, grown])


def _layout(rows: list[tuple[str, ...]]) -> str:
    """``rows`` in aligned columns, a rule under the first."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
