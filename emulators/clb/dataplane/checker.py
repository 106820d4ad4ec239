"""The health checker: probes every (listener, target) on the listener's schedule and records health.

Started by `DataPlane` (`plane.py`). It runs on its own asyncio loop thread: one small task per probed
target sleeps `IntervalTime`, probes (`probes.py`) within `TimeOut`, feeds the result to the pure
`HealthTracker` and, on a transition, writes the new detail into the model with `set_target_health` and
hands (listener, target, old, new) to the transition handler (the notifier). The set of probed targets
follows the model: it is re-read on every model change (the model's `subscribe` callback) and on every
tick, so added/removed targets and edited health checks are picked up within one tick at most.
Weight-0 targets are probed like any other (the CLB keeps checking drained backends).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from emulators.clb.dataplane.health import HealthCheckSpec, HealthTracker, TargetKey
from emulators.clb.dataplane.interfaces import DataplaneModel, TransitionHandler
from emulators.clb.dataplane.loop_thread import LoopThread
from emulators.clb.dataplane.probes import probe
from emulators.clb.views import ListenerView, TargetView

log = logging.getLogger("clb_emulator.health")

ProbeFunction = Callable[[str, int, HealthCheckSpec], Awaitable[bool]]


@dataclass
class _Probed:
    listener: ListenerView
    target: TargetView
    spec: HealthCheckSpec
    task: asyncio.Task[None] | None = None
    probes: int = field(default=0)


class HealthChecker:
    def __init__(
        self,
        model: DataplaneModel,
        on_transition: TransitionHandler | None = None,
        *,
        tick_s: float = 1.0,
        max_concurrent_probes: int = 256,
        start_jitter_s: float = 0.5,
        probe_fn: ProbeFunction = probe,
    ) -> None:
        self._model = model
        self._on_transition = on_transition
        self._tick_s = tick_s
        self._max_concurrent_probes = max_concurrent_probes
        # A random first-probe offset keeps hundreds of targets from being probed in lockstep.
        self._start_jitter_s = start_jitter_s
        self._probe_fn = probe_fn
        self._tracker = HealthTracker()
        self._entries: dict[TargetKey, _Probed] = {}
        self._loop = LoopThread("clb-health-checker")
        self._sync_pending = False
        self._slots: asyncio.Semaphore | None = None

    def start(self) -> None:
        self._loop.start()
        self._loop.call(self._startup)

    def stop(self) -> None:
        self._loop.stop()

    def request_sync(self) -> None:
        """Re-read the model soon; safe from any thread (this is the model's subscribe callback)."""
        if self._sync_pending:
            return
        self._sync_pending = True
        self._loop.call_soon(self._sync_requested)

    def statuses(self) -> dict[TargetKey, str]:
        """Current tracked detail per target (for admin views and tests)."""

        async def read() -> dict[TargetKey, str]:
            return {key: self._tracker.status(key) or "" for key in self._tracker}

        return self._loop.call(read)

    async def _startup(self) -> None:
        self._slots = asyncio.Semaphore(self._max_concurrent_probes)
        asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            self._sync_logging_errors()
            await asyncio.sleep(self._tick_s)

    def _sync_requested(self) -> None:
        self._sync_pending = False
        self._sync_logging_errors()

    def _sync_logging_errors(self) -> None:
        # The checker must outlive a bad snapshot: log it and try again on the next tick.
        try:
            self._sync()
        except Exception:
            log.exception("health.sync_failed")

    def _sync(self) -> None:
        desired: dict[TargetKey, tuple[ListenerView, TargetView, HealthCheckSpec]] = {}
        for listener in self._model.dataplane_snapshot():
            spec = HealthCheckSpec.from_api(listener.health_check)
            for target in listener.targets:
                key = TargetKey(listener.lb_id, listener.listener_id, target.ip, target.port)
                desired[key] = (listener, target, spec)
        for key in set(self._entries) - set(desired):
            self._drop(key)
        for key, (listener, target, spec) in desired.items():
            self._ensure(key, listener, target, spec)

    def _drop(self, key: TargetKey) -> None:
        entry = self._entries.pop(key)
        if entry.task is not None:
            entry.task.cancel()
        self._tracker.forget(key)

    def _ensure(self, key: TargetKey, listener: ListenerView, target: TargetView, spec: HealthCheckSpec) -> None:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Probed(listener=listener, target=target, spec=spec)
        else:
            entry.listener, entry.target, entry.spec = listener, target, spec
        self._tracker.configure(key, spec)
        tracked = self._tracker.status(key)
        if tracked is not None and target.health != tracked:
            # The checker's verdict is the truth: a re-bound target starts over, and a write that
            # failed earlier (or an outside edit) is corrected here, at the latest on the next tick.
            self._publish(entry, tracked)
        if spec.enabled and entry.task is None:
            entry.task = asyncio.get_running_loop().create_task(self._probe_forever(key, entry))
        elif not spec.enabled and entry.task is not None:
            entry.task.cancel()
            entry.task = None

    async def _probe_forever(self, key: TargetKey, entry: _Probed) -> None:
        loop = asyncio.get_running_loop()
        assert self._slots is not None
        await asyncio.sleep(random.uniform(0, self._start_jitter_s))
        while True:
            started = loop.time()
            spec = entry.spec
            async with self._slots:
                passed = await self._probe_fn(key.ip, spec.probe_port(key.port), spec)
            entry.probes += 1
            transition = self._tracker.record(key, passed)
            if transition is not None:
                try:
                    self._publish(entry, transition.new)
                except Exception:
                    # Keep probing this target; a failed write is retried at the next transition/sync.
                    log.exception("health.publish_failed target=%s:%d", key.ip, key.port)
            await asyncio.sleep(max(0.0, started + entry.spec.interval_s - loop.time()))

    def _publish(self, entry: _Probed, detail: str) -> None:
        listener, target = entry.listener, entry.target
        try:
            previous = self._model.set_target_health(
                listener.lb_id, listener.listener_id, target.ip, target.port, detail
            )
        except LookupError:
            # The target or listener went away between the snapshot and this write; the next sync drops it.
            return
        if previous is None or previous == detail:
            return
        log.info(
            "target.health_changed lb=%s listener=%s target=%s:%d %s -> %s",
            listener.lb_id,
            listener.listener_id,
            target.ip,
            target.port,
            previous,
            detail,
        )
        if self._on_transition is not None:
            self._on_transition(listener, target, previous, detail)
