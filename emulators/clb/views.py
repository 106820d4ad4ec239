"""Read-only views of CLB emulator state for the dataplane (health probing, forwarding, notifications).

`ClbModel.dataplane_snapshot()` returns a list of `ListenerView`, one per listener of every CLB, built
under the model lock and then handed out as immutable values, so the dataplane can probe and forward
without holding the lock. The dataplane (`emulators/clb/dataplane/`) imports these; the model builds
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Health detail values as DescribeTargetHealth reports them.
HEALTH_ALIVE = "Alive"
HEALTH_DEAD = "Dead"
HEALTH_UNKNOWN = "Unknown"
HEALTH_CLOSE = "Close"
HEALTH_DETAILS = frozenset({HEALTH_ALIVE, HEALTH_DEAD, HEALTH_UNKNOWN, HEALTH_CLOSE})


@dataclass(frozen=True)
class TargetView:
    """One backend bound to a listener: `ip` is the EniIp (or InstanceId), `health` one of HEALTH_DETAILS."""

    ip: str
    port: int
    weight: int
    health: str


@dataclass(frozen=True)
class ListenerView:
    """One listener of one CLB with its targets.

    `health_check` holds the CLB HealthCheck fields exactly as the API takes them, with defaults filled:
    HealthSwitch (1 on / 0 off), TimeOut (s), IntervalTime (s), HealthNum, UnHealthNum, CheckType
    (TCP|HTTP|PING|CUSTOM...), HttpCode (bitmask 1=1xx 2=2xx 4=3xx 8=4xx 16=5xx), HttpCheckPath,
    HttpCheckDomain, HttpCheckMethod (HEAD|GET), CheckPort (-1 = probe the target's own port).
    `vip` is the CLB's loopback VIP (127.1.0.N); `scheduler` is WRR, LEAST_CONN or IP_HASH.
    """

    lb_id: str
    listener_id: str
    vip: str
    port: int
    protocol: str
    health_check: dict[str, Any]
    scheduler: str
    targets: tuple[TargetView, ...] = field(default_factory=tuple)
