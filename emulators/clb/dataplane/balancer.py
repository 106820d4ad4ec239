"""Backend selection for the forwarding proxy: smooth weighted round robin, least connections, IP hash.

`proxy.py` keeps one `TargetPicker` per listener and refreshes it from the model whenever targets, weights
or health change; the picker only ever sees eligible targets (healthy, weight > 0), so selection here is
pure arithmetic and unit tested without sockets. Smooth WRR is the nginx variant: over any window of
`sum(weights)` picks each target is chosen exactly `weight` times, interleaved rather than in bursts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

SCHEDULER_WRR = "WRR"
SCHEDULER_LEAST_CONN = "LEAST_CONN"
SCHEDULER_IP_HASH = "IP_HASH"


class SmoothWeightedRoundRobin(Generic[K]):
    def __init__(self) -> None:
        self._weights: dict[K, int] = {}
        self._current: dict[K, int] = {}

    def update(self, weights: Mapping[K, int]) -> None:
        """Replace the candidate set; surviving targets keep their position so a refresh does not reset."""
        self._weights = {key: weight for key, weight in weights.items() if weight > 0}
        self._current = {key: self._current.get(key, 0) for key in self._weights}

    def pick(self) -> K | None:
        if not self._weights:
            return None
        total = 0
        best: K | None = None
        for key, weight in self._weights.items():
            self._current[key] += weight
            total += weight
            if best is None or self._current[key] > self._current[best]:
                best = key
        assert best is not None
        self._current[best] -= total
        return best


class TargetPicker(Generic[K]):
    """Chooses a backend per new connection according to the listener's `Scheduler`."""

    def __init__(self, scheduler: str = SCHEDULER_WRR) -> None:
        self.scheduler = scheduler.upper()
        self._wrr: SmoothWeightedRoundRobin[K] = SmoothWeightedRoundRobin()
        self._weights: dict[K, int] = {}

    def update(self, weights: Mapping[K, int], scheduler: str | None = None) -> None:
        if scheduler is not None:
            self.scheduler = scheduler.upper()
        self._weights = {key: weight for key, weight in weights.items() if weight > 0}
        self._wrr.update(self._weights)

    @property
    def candidates(self) -> dict[K, int]:
        return dict(self._weights)

    def pick(self, active: Mapping[K, int] | None = None, client_ip: str = "") -> K | None:
        if not self._weights:
            return None
        if self.scheduler == SCHEDULER_LEAST_CONN:
            return self._least_connections(active or {})
        if self.scheduler == SCHEDULER_IP_HASH and client_ip:
            return self._by_hash(client_ip)
        return self._wrr.pick()

    def _least_connections(self, active: Mapping[K, int]) -> K | None:
        # Weighted least connections: load relative to weight. Ties go through WRR so that idle
        # backends still share sequential traffic instead of one of them taking all of it.
        loads = {key: active.get(key, 0) / weight for key, weight in self._weights.items()}
        lowest = min(loads.values())
        tied = {key for key, load in loads.items() if load == lowest}
        if len(tied) == 1:
            return next(iter(tied))
        for _ in range(sum(self._weights.values())):
            key = self._wrr.pick()
            if key in tied:
                return key
        return next(iter(tied))

    def _by_hash(self, client_ip: str) -> K:
        ordered = sorted(self._weights, key=repr)
        digest = int.from_bytes(hashlib.sha256(client_ip.encode()).digest()[:8], "big")
        return ordered[digest % len(ordered)]
