"""`DataPlane`: the CLB emulator's running half — health checker, forwarding proxy and notifier together.

Built by `ClbEmulator` (`emulators/clb/app.py`) around the same `ClbModel` the API server writes. It
subscribes to the model so every API change (listener created, targets registered, weight changed, CLB
deleted) reaches the checker and the proxy at once, and it routes the checker's health transitions to
the notifier. The model stays the single source of truth: the checker writes health into it and the
proxy reads eligibility (health + weight) back from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulators.clb.dataplane.checker import HealthChecker, ProbeFunction
from emulators.clb.dataplane.interfaces import DataplaneModel
from emulators.clb.dataplane.notifier import HealthNotifier
from emulators.clb.dataplane.probes import probe
from emulators.clb.dataplane.proxy import ForwardingProxy
from emulators.clb.views import ListenerView, TargetView


class DataPlane:
    def __init__(
        self,
        model: DataplaneModel,
        notifier: HealthNotifier | None = None,
        *,
        tick_s: float = 1.0,
        probe_fn: ProbeFunction = probe,
    ) -> None:
        self.model = model
        self.notifier = notifier or HealthNotifier()
        self.checker = HealthChecker(model, self._on_transition, tick_s=tick_s, probe_fn=probe_fn)
        self.proxy = ForwardingProxy(model, tick_s=tick_s)
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self.notifier.start()
        self.proxy.start()
        self.checker.start()
        self._unsubscribe = self.model.subscribe(self._on_model_change)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.checker.stop()
        self.proxy.stop()
        self.notifier.stop()

    def status(self) -> dict[str, Any]:
        """Admin view: what each listener forwards to and the notifier's state."""
        return {"listeners": self.proxy.stats(), "notifications": self.notifier.status()}

    def _on_model_change(self) -> None:
        self.checker.request_sync()
        self.proxy.request_sync()

    def _on_transition(self, listener: ListenerView, target: TargetView, old: str, new: str) -> None:
        self.notifier.publish(
            lb_id=listener.lb_id,
            listener_id=listener.listener_id,
            protocol=listener.protocol,
            port=listener.port,
            target_ip=target.ip,
            target_port=target.port,
            old=old,
            new=new,
        )
