"""Pure CLB health-check state: the listener's HealthCheck settings and the per-target state machine.

The health checker (`checker.py`) feeds probe results into `HealthTracker` and writes the transitions it
returns into the CLB model; nothing here does I/O, so the thresholds and the Unknown/Alive/Dead/Close rules
are unit tested directly. The rules follow the real CLB: a newly bound target is `Unknown` until it has
passed `HealthNum` consecutive probes (-> `Alive`) or failed `UnHealthNum` consecutive ones (-> `Dead`);
`Alive` and `Dead` flip the same way, and a listener whose health switch is off reports `Close`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from emulators.clb.views import HEALTH_ALIVE, HEALTH_CLOSE, HEALTH_DEAD, HEALTH_UNKNOWN


def _int(fields: Mapping[str, Any], name: str, default: int) -> int:
    value = fields.get(name)
    if value is None or value == "":
        return default
    return int(value)


def _str(fields: Mapping[str, Any], name: str, default: str) -> str:
    value = fields.get(name)
    return default if value is None or value == "" else str(value)


@dataclass(frozen=True)
class HealthCheckSpec:
    """One listener's health-check settings, read from the CLB API `HealthCheck` structure.

    Defaults are the CLB API's own so that a partial dict still
    yields the behaviour a real listener would have.
    """

    enabled: bool = True
    check_type: str = "TCP"
    timeout_s: float = 2.0
    interval_s: float = 5.0
    healthy_threshold: int = 3
    unhealthy_threshold: int = 3
    http_codes: int = 31
    http_path: str = "/"
    http_domain: str = ""
    http_method: str = "HEAD"
    http_version: str = "HTTP/1.1"
    check_port: int | None = None
    context_type: str = "TEXT"
    send_context: str = ""
    recv_context: str = ""

    @classmethod
    def from_api(cls, fields: Mapping[str, Any]) -> HealthCheckSpec:
        check_port = fields.get("CheckPort")
        return cls(
            enabled=_int(fields, "HealthSwitch", 1) == 1,
            check_type=_str(fields, "CheckType", "TCP").upper(),
            timeout_s=float(_int(fields, "TimeOut", 2)),
            interval_s=float(_int(fields, "IntervalTime", 5)),
            healthy_threshold=max(1, _int(fields, "HealthNum", 3)),
            unhealthy_threshold=max(1, _int(fields, "UnHealthNum", 3)),
            http_codes=_int(fields, "HttpCode", 31),
            http_path=_str(fields, "HttpCheckPath", "/"),
            http_domain=_str(fields, "HttpCheckDomain", ""),
            http_method=_str(fields, "HttpCheckMethod", "HEAD").upper(),
            http_version=_str(fields, "HttpVersion", "HTTP/1.1").upper(),
            # CheckPort -1 (or absent) means "probe the backend's own port".
            check_port=None if check_port in (None, "", -1) else int(check_port),
            context_type=_str(fields, "ContextType", "TEXT").upper(),
            send_context=_str(fields, "SendContext", ""),
            recv_context=_str(fields, "RecvContext", ""),
        )

    def probe_port(self, target_port: int) -> int:
        return target_port if self.check_port is None else self.check_port

    def accepts_status(self, status_code: int) -> bool:
        """Whether an HTTP status passes the `HttpCode` bitmask (1=1xx, 2=2xx, 4=3xx, 8=4xx, 16=5xx)."""
        status_class = status_code // 100
        if not 1 <= status_class <= 5:
            return False
        return bool(self.http_codes & (1 << (status_class - 1)))


@dataclass(frozen=True)
class TargetKey:
    """One probed backend: a (CLB, listener, IP, port) binding."""

    lb_id: str
    listener_id: str
    ip: str
    port: int


@dataclass(frozen=True)
class Transition:
    key: TargetKey
    old: str
    new: str


@dataclass
class _TargetState:
    status: str = HEALTH_UNKNOWN
    successes: int = 0
    failures: int = 0
    healthy_threshold: int = 3
    unhealthy_threshold: int = 3


class HealthTracker:
    """Consecutive-result counters and health status per target; returns a `Transition` on every change."""

    def __init__(self) -> None:
        self._states: dict[TargetKey, _TargetState] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def __iter__(self) -> Iterator[TargetKey]:
        return iter(list(self._states))

    def status(self, key: TargetKey) -> str | None:
        state = self._states.get(key)
        return None if state is None else state.status

    def configure(self, key: TargetKey, spec: HealthCheckSpec) -> Transition | None:
        """Track `key` under `spec` (idempotent); switching checks off or back on is a transition."""
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _TargetState()
        state.healthy_threshold = spec.healthy_threshold
        state.unhealthy_threshold = spec.unhealthy_threshold
        if not spec.enabled and state.status != HEALTH_CLOSE:
            return self._move(key, state, HEALTH_CLOSE)
        if spec.enabled and state.status == HEALTH_CLOSE:
            # Re-enabled checks start from scratch, as on a fresh listener.
            return self._move(key, state, HEALTH_UNKNOWN)
        return None

    def record(self, key: TargetKey, success: bool) -> Transition | None:
        """Feed one probe result; results for untracked or check-disabled targets are ignored."""
        state = self._states.get(key)
        if state is None or state.status == HEALTH_CLOSE:
            return None
        if success:
            state.successes += 1
            state.failures = 0
            if state.status != HEALTH_ALIVE and state.successes >= state.healthy_threshold:
                return self._move(key, state, HEALTH_ALIVE)
        else:
            state.failures += 1
            state.successes = 0
            if state.status != HEALTH_DEAD and state.failures >= state.unhealthy_threshold:
                return self._move(key, state, HEALTH_DEAD)
        return None

    def forget(self, key: TargetKey) -> None:
        self._states.pop(key, None)

    @staticmethod
    def _move(key: TargetKey, state: _TargetState, new: str) -> Transition:
        old = state.status
        state.status = new
        state.successes = 0
        state.failures = 0
        return Transition(key=key, old=old, new=new)
