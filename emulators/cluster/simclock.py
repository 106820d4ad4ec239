"""Time for the cluster simulator's behaviours: an injectable clock and Kubernetes timestamp helpers.

The scheduler, kubelet and controllers in `emulators/cluster/` read time only through a `SimClock`, so
unit tests of their pure rules pass a `ManualClock` and never sleep. Timestamps are written the way the
API server writes them (RFC 3339, UTC, second precision, `Z` suffix). Emulators import nothing from
`shared/`, hence this small local clock instead of `shared.clock`.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol

from wire_time import parse_rfc3339


class SimClock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""


class WallClock:
    """The real time, for the running simulator."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to, for unit tests of time-dependent rules."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def format_time(epoch: float) -> str:
    """Kubernetes `metav1.Time` wire form: whole seconds, UTC, `Z`."""
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_datetime(moment: datetime) -> str:
    """The same wire form for an aware ``datetime`` (the object store's clock)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    """Parse a `metav1.Time` (or an RFC 3339 string with fractional seconds/offset); None if absent."""
    if not value:
        return None
    return parse_rfc3339(value).timestamp()
