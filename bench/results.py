"""What the benchmark measures, as typed results: ``bench.report`` renders them and
``python -m bench`` writes them to JSON (``dataclasses.asdict``). Rates are per second,
times in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass

from bench.wrk import Load


@dataclass(frozen=True)
class Machine:
    """Where the benchmark ran, and the versions of the servers it ran on."""

    cpu: str
    cores: int
    python: str
    system: str
    postgres: str
    redis: str


@dataclass(frozen=True)
class Ceilings:
    """This machine with nothing of anonchat in between."""

    postgres_one_row_per_commit: float
    postgres_batched: float
    rq_enqueue: float
    one_hop: Load
    two_hops: Load


@dataclass(frozen=True)
class Baseline:
    """The original design's shape under the send load, and the rows it stored."""

    load: Load
    stored: int


@dataclass(frozen=True)
class Depth:
    """Messages accepted and not stored yet, and the jobs carrying them."""

    messages: int
    jobs: int


@dataclass(frozen=True)
class Persisted:
    """Messages stored per second over a window of sends at the maximum rate."""

    rate: float
    window_seconds: float
    depth_start: Depth
    depth_end: Depth


@dataclass(frozen=True)
class Probe:
    """A probe's sends beside a lighter load: to the 202, and to the moment each was seen
    (the store's announcement, or the message's event on its receiver's stream)."""

    rate: float
    background_rate: float
    samples: int
    p50_ms: float
    p99_ms: float
    answered_p50_ms: float
    answered_p99_ms: float


@dataclass(frozen=True)
class Capacity:
    """A queue filled while the workers were paused, and how fast they drained it."""

    messages: int
    jobs: int
    rate: float


@dataclass(frozen=True)
class ExactlyOnce:
    """Sends answered 202, messages stored, and distinct contents among them."""

    answered: int
    stored: int
    distinct: int


@dataclass(frozen=True)
class Page:
    """One reader paging through a conversation."""

    load: Load
    stored: int
    conversation: int
    size: int


@dataclass(frozen=True)
class KeyCost:
    """What one kind of key a queued message creates costs Redis (MEMORY USAGE, bytes):
    the key a lone send makes, and its share per message of a paused queue's backlog
    (None where it is not per message)."""

    kind: str
    lone: int
    backlog: float | None


@dataclass(frozen=True)
class Settled:
    """Redis once every keyed message is stored and its idempotency margin has passed:
    its memory, the clients it serves (each has buffers), the entries of its slow log
    (the last 128 commands slower than 10 ms, with their arguments), its keys with
    their MEMORY USAGE, and MEMORY STATS."""

    keyed_stored: int
    used_memory: int
    clients: int
    slow_log: int
    keys: dict[str, int]
    stats: dict[str, object]


@dataclass(frozen=True)
class Backlog:
    """Keyed sends queued while the workers were paused: how many, in how many jobs,
    Redis memory's growth (INFO memory used_memory) while they were queued and right
    after they were stored, and what each kind of key cost."""

    messages: int
    jobs: int
    queued_bytes: int
    drained_bytes: int
    keys: list[KeyCost]

    @property
    def per_queued(self) -> float:
        """Redis memory's growth per queued message."""
        return self.queued_bytes / self.messages

    @property
    def per_drained(self) -> float:
        """What is left of it per message right after they are stored."""
        return self.drained_bytes / self.messages

    @property
    def keys_per_message(self) -> float:
        """The keys listed, per queued message in all."""
        return sum(key.backlog for key in self.keys if key.backlog is not None)


@dataclass(frozen=True)
class RedisMemory:
    """Redis memory of keyed sends: a queued backlog, then Redis settled after two
    numbers of keyed messages stored."""

    backlog: Backlog
    first: Settled
    second: Settled

    @property
    def growth(self) -> int:
        """Redis memory's growth from the first settled reading to the second."""
        return self.second.used_memory - self.first.used_memory

    @property
    def per_stored(self) -> float:
        """That growth per keyed message stored in between."""
        return self.growth / (self.second.keyed_stored - self.first.keyed_stored)


@dataclass(frozen=True)
class Anonchat:
    """Every figure of the anonchat stack, with 2 workers."""

    accepted: Load
    persisted: Persisted
    send_to_visible: Probe
    worker_capacity: Capacity
    redis_memory: RedisMemory
    exactly_once: ExactlyOnce
    get_messages: Page
    peak_rss_mb: dict[str, float]


@dataclass(frozen=True)
class Held:
    """Idle streams opened at once, how many were still open once the servers had
    settled (and the statuses of those refused, counted), and each server's resident
    memory (VmRSS, KiB) before and after."""

    opened: int
    held: int
    refused: dict[str, int]
    rss_before_kib: dict[str, int]
    rss_after_kib: dict[str, int]

    def per_stream_kib(self, name: str) -> float:
        """The growth of ``name``'s resident memory per stream opened."""
        return (self.rss_after_kib[name] - self.rss_before_kib[name]) / self.opened


@dataclass(frozen=True)
class FanOut:
    """Sends at the maximum rate with streams open, and the message events the streams
    read meanwhile."""

    streams: int
    load: Load
    events: int

    @property
    def per_send(self) -> float:
        """Events read per send answered 202."""
        return self.events / self.load.answered_2xx


@dataclass(frozen=True)
class Rounds:
    """One kind of send over rounds of wrk loads: accepted per second over them all, and
    the mean of the rounds' percentiles (wrk gives no more of its latencies)."""

    loads: list[Load]

    @property
    def rate(self) -> float:
        return sum(load.answered_2xx for load in self.loads) / sum(
            load.seconds for load in self.loads
        )

    @property
    def p50_ms(self) -> float:
        return sum(load.p50_ms for load in self.loads) / len(self.loads)

    @property
    def p99_ms(self) -> float:
        return sum(load.p99_ms for load in self.loads) / len(self.loads)


@dataclass(frozen=True)
class Blocks:
    """Rounds of two loads at once, the same but for their receivers: one group's
    receivers block their senders, the other's block no one (the groups swap roles each
    round); and the messages stored hidden."""

    blocked: Rounds
    ordinary: Rounds
    hidden: int

    @property
    def ratio(self) -> float:
        """Sends to blockers accepted per second, per ordinary send."""
        return self.blocked.rate / self.ordinary.rate


@dataclass(frozen=True)
class Streams:
    """The event stream on a stack of its own (2 workers), and sends to receivers who
    block their senders: sends at the maximum rate with no stream open, then with
    streams open; send-to-delivered, with the streams open meanwhile (idle users', and
    the receiver's); idle streams held, opened in steps; the open-files limit the
    benchmark ran under."""

    accepted: Load
    fan_out: FanOut
    delivered: Probe
    delivered_streams: int
    held: list[Held]
    blocks: Blocks
    open_files: int


@dataclass(frozen=True)
class Results:
    """One run of the benchmark; a section left out (``--only``) is None."""

    machine: Machine
    ceilings: Ceilings | None
    baseline: Baseline | None
    anonchat: Anonchat | None
    streams: Streams | None
