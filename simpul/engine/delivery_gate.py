"""Per-destination gates the delivery worker asks before it claims: downtime, circuit, rate.

One object per worker, in memory, no I/O (the persisted pause lives in the store and is checked
inside the claim transaction, see `controls.py`). The worker calls `claim_limit(free, now)` to
learn how many deliveries it may claim, and `record(ok, now)` after every attempt.

- Downtime windows (YAML `downtime:`): nothing is claimed, so no attempt is made or counted.
- Circuit breaker (`circuit_breaker:`): closed -> open after N consecutive retryable failures;
  open -> half-open after `open_for`, where exactly one delivery is claimed as a probe;
  the probe's success closes the circuit, its failure opens it again.
- Rate limit (`rate_limit:`): a token bucket; claims never exceed the tokens available.
"""
from __future__ import annotations

import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from simpul.engine.config.channel import CircuitBreaker, Destination, DowntimeWindow, RateLimit

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
CIRCUIT_STATES = (CLOSED, OPEN, HALF_OPEN)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(hh_mm: str) -> int:
    hours, minutes = hh_mm.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(window: DowntimeWindow, moment: float) -> bool:
    """True when unix time `moment` falls inside the window (local to its time zone)."""
    local = datetime.fromtimestamp(moment, zoneinfo.ZoneInfo(window.timezone))
    start, end = _minutes(window.start), _minutes(window.end)
    now = local.hour * 60 + local.minute
    if start < end:
        return now >= start and now < end and _WEEKDAYS[local.weekday()] in window.days
    # Wraps past midnight: the part after midnight belongs to the window that started the day before.
    if now >= start:
        return _WEEKDAYS[local.weekday()] in window.days
    if now < end:
        return _WEEKDAYS[(local - timedelta(days=1)).weekday()] in window.days
    return False


@dataclass
class _Circuit:
    settings: CircuitBreaker
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def allows(self, now: float) -> int | None:
        """None = no limit, 0 = claim nothing, 1 = one probe."""
        if self.state == OPEN and now - self.opened_at >= self.settings.open_for:
            self.state = HALF_OPEN
        if self.state == CLOSED:
            return None
        if self.state == HALF_OPEN and not self.probing:
            return 1
        return 0

    def claimed(self, n: int) -> None:
        if self.state == HALF_OPEN and n:
            self.probing = True

    def record(self, ok: bool, now: float) -> None:
        if ok:
            self.state, self.failures, self.probing = CLOSED, 0, False
            return
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.settings.failures:
            self.state, self.opened_at, self.probing = OPEN, now, False


@dataclass
class _Bucket:
    settings: RateLimit
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.settings.burst)

    def available(self, now: float) -> int:
        self.tokens = min(float(self.settings.burst), self.tokens + (now - self.at) * self.settings.per_second)
        self.at = now
        return int(self.tokens)

    def take(self, n: int) -> None:
        self.tokens -= n

    def wait(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1.0 - self.tokens) / self.settings.per_second)


class DeliveryControl:
    """The in-memory gates of one destination worker (see the module docstring)."""

    def __init__(self, *, downtime: list[DowntimeWindow] | None = None,
                 circuit_breaker: CircuitBreaker | None = None, rate_limit: RateLimit | None = None,
                 on_failure: str = "skip") -> None:
        self.downtime = list(downtime or [])
        self.circuit = _Circuit(circuit_breaker) if circuit_breaker is not None else None
        self.bucket = _Bucket(rate_limit) if rate_limit is not None else None
        self.on_failure = on_failure
        self.paused = False          # mirrored from the store by the worker, for status and metrics

    @classmethod
    def for_destination(cls, destination: Destination) -> "DeliveryControl":
        return cls(downtime=destination.downtime, circuit_breaker=destination.circuit_breaker,
                   rate_limit=destination.rate_limit, on_failure=destination.on_failure)

    def in_downtime(self, now: float | None = None) -> bool:
        moment = time.time() if now is None else now
        return any(in_window(window, moment) for window in self.downtime)

    @property
    def circuit_state(self) -> str:
        return self.circuit.state if self.circuit is not None else CLOSED

    def claim_limit(self, free: int) -> int:
        """How many deliveries the worker may claim now (0 = wait)."""
        if free <= 0 or self.in_downtime():
            return 0
        limit = free
        if self.circuit is not None:
            allowed = self.circuit.allows(time.time())
            if allowed is not None:
                limit = min(limit, allowed)
        if self.bucket is not None:
            limit = min(limit, self.bucket.available(time.monotonic()))
        return max(limit, 0)

    def claimed(self, n: int) -> None:
        if self.circuit is not None:
            self.circuit.claimed(n)
        if self.bucket is not None:
            self.bucket.take(n)

    def record(self, ok: bool) -> None:
        """After an attempt: ok=False only for retryable (endpoint) failures, not for rejections."""
        if self.circuit is not None:
            self.circuit.record(ok, time.time())

    def next_wake(self, poll_interval: float) -> float:
        """How long an idle worker should sleep before asking again."""
        if self.bucket is not None:
            return min(poll_interval, max(self.bucket.wait(), 0.005))
        return poll_interval
