"""Which backend each failed request went to, and what that backend was doing then.

Called by the scenario (`demo/scenario.py`) when a run ends. Joins three records: the load generator's
failures (time, local port of the connection, error), the CLB emulator proxy's connection log (client
port -> backend and how the connection ended) and the observer's snapshots (Pods by IP: name,
terminating or not; CLB targets: weight and health). The result goes into the report and the terminal
summary, so "N failed" always comes with "at which Pod, terminating or not, at which weight".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from demo.load import Failure
from demo.observe import Snapshot
from emulators.clb.dataplane.proxy import ConnectionRecord

# A client port is reused after a while: only a proxy record this close to the failure is its connection.
MATCH_WINDOW_S = 5.0


@dataclass(frozen=True)
class AttributedFailure:
    at: float
    error: str
    outcome: str  # the proxy's view: reset, refused, no-backend, served; "unknown" if not matched
    backend: str  # ip:port, "" when the proxy had no backend for it
    pod: str  # the Pod that had the backend's IP, "" if none was seen
    terminating: bool | None
    weight: int | None  # the target's CLB weight in the snapshot nearest the failure; None if not registered
    health: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        state = "terminating" if self.terminating else ("live" if self.terminating is False else "?")
        weight = "not registered" if self.weight is None else f"weight {self.weight}"
        return (self.pod or "-", self.backend or "-", state, f"{weight} {self.health}".strip(), self.outcome)


def _connection(failure: Failure, by_port: dict[int, list[ConnectionRecord]]) -> ConnectionRecord | None:
    candidates = [r for r in by_port.get(failure.local_port, []) if abs(r.at - failure.at) <= MATCH_WINDOW_S]
    return min(candidates, key=lambda r: abs(r.at - failure.at), default=None)


def _nearest(history: Sequence[Snapshot], at: float) -> Snapshot | None:
    return min(history, key=lambda s: abs(s.t - at), default=None)


def _pod_at(history: Sequence[Snapshot], ip: str, at: float) -> tuple[str, bool | None]:
    """The Pod that had `ip` at `at`: the latest snapshot up to then that lists it (else the first after)."""
    before = [s for s in history if s.t <= at + 0.5]
    for snap in [*reversed(before), *[s for s in history if s.t > at + 0.5]]:
        for pod in snap.pods:
            if pod.ip == ip:
                return pod.name, pod.terminating
    return "", None


def attribute(
    failures: Sequence[Failure], connections: Sequence[ConnectionRecord], history: Sequence[Snapshot]
) -> list[AttributedFailure]:
    by_port: dict[int, list[ConnectionRecord]] = {}
    for connection in connections:
        by_port.setdefault(connection.client_port, []).append(connection)
    out: list[AttributedFailure] = []
    for failure in failures:
        record = _connection(failure, by_port) if failure.local_port else None
        backend = record.backend if record else ""
        ip = backend.rpartition(":")[0]
        pod, terminating = _pod_at(history, ip, failure.at) if ip else ("", None)
        snap = _nearest(history, failure.at)
        target = next((b for b in snap.backends if b.ip == ip), None) if snap and ip else None
        out.append(
            AttributedFailure(
                at=failure.at,
                error=failure.error,
                outcome=record.outcome if record else "unknown",
                backend=backend,
                pod=pod,
                terminating=terminating,
                weight=target.weight if target else None,
                health=target.health if target else "",
            )
        )
    return out


def summarize(failures: Sequence[AttributedFailure], limit: int = 12) -> list[str]:
    """Lines for the terminal: failures grouped by Pod, backend, state, weight/health and outcome."""
    groups = Counter(f.key for f in failures)
    lines = [
        f"{count:5d} x {pod} {backend} ({state}, {weight}) -> {outcome}"
        for (pod, backend, state, weight, outcome), count in groups.most_common(limit)
    ]
    if len(groups) > limit:
        lines.append(f"      ... and {len(groups) - limit} more groups (report.json has every failure)")
    return lines
