"""The CLB emulator's data plane: real health checks, real traffic forwarding, health notifications.

`DataPlane` (plane.py) composes `HealthChecker` (checker.py, probes.py, health.py), `ForwardingProxy`
(proxy.py, balancer.py) and `HealthNotifier` (notifier.py) around the CLB model; `emulators/clb/app.py`
builds it next to the API server.
"""

from __future__ import annotations

from emulators.clb.dataplane.balancer import SmoothWeightedRoundRobin, TargetPicker
from emulators.clb.dataplane.checker import HealthChecker
from emulators.clb.dataplane.health import HealthCheckSpec, HealthTracker, TargetKey, Transition
from emulators.clb.dataplane.notifier import SIGNATURE_HEADER, HealthNotifier, NotifierSettings, sign_body
from emulators.clb.dataplane.plane import DataPlane
from emulators.clb.dataplane.proxy import ForwardingProxy

__all__ = [
    "SIGNATURE_HEADER",
    "DataPlane",
    "ForwardingProxy",
    "HealthCheckSpec",
    "HealthChecker",
    "HealthNotifier",
    "HealthTracker",
    "NotifierSettings",
    "SmoothWeightedRoundRobin",
    "TargetKey",
    "TargetPicker",
    "Transition",
    "sign_body",
]
