"""`ClbModel`: the CLB emulator's one in-memory model, shared by every transport and the dataplane.

Transports (`responses_transport.py`, `server.py`) go through the dispatcher in `api.py`, which calls
`ClbModel.call(action, params)`; the dataplane (`emulators/clb/dataplane/`) reads `dataplane_snapshot()`,
reports probe results with `set_target_health()` and learns of changes through `subscribe()`. One lock
guards all state; subscribers are called after it is released. Time comes from an injectable monotonic
`clock` (task durations, rate limits) and `wall_clock` (timestamps, signature expiry).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from emulators.clb import seeding
from emulators.clb.actions_instances import INSTANCE_ACTIONS, Handler
from emulators.clb.actions_listeners import LISTENER_ACTIONS
from emulators.clb.actions_targets import TARGET_ACTIONS
from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.errors import INVALID_ACTION, REQUEST_LIMIT_EXCEEDED, ClbApiError
from emulators.clb.faults import CallAbandoned, FaultDecision, FaultInjector, FaultRule
from emulators.clb.ratelimit import RateLimiter
from emulators.clb.state import ClbState
from emulators.clb.views import HEALTH_DETAILS, ListenerView, TargetView

ACTIONS: dict[str, Handler] = {**INSTANCE_ACTIONS, **LISTENER_ACTIONS, **TARGET_ACTIONS}
CALL_LOG_LIMIT = 10_000
_HANG_POLL_S = 0.05  # how often a hung call looks whether its caller gave up

_log = logging.getLogger(__name__)


class ClbModel:
    def __init__(
        self,
        config: ClbEmulatorConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.RLock()
        self._sleep = sleep
        self._config = config or ClbEmulatorConfig()
        self.clock = clock
        self.wall_clock = wall_clock
        self.faults = FaultInjector()
        self._subscribers: list[Callable[[], None]] = []
        self._state = ClbState(self._config, clock, wall_clock)
        self._limiter = RateLimiter(clock)
        self._calls: deque[dict[str, Any]] = deque(maxlen=CALL_LOG_LIMIT)
        self._counts: Counter[str] = Counter()
        self._seq = 0

    # -- API calls -------------------------------------------------------------------------------------
    @property
    def config(self) -> ClbEmulatorConfig:
        return self._config

    def new_request_id(self) -> str:
        with self._lock:
            return self._state.new_request_id()

    def call(self, action: str, params: Mapping[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        """Run one API action; returns the `Response` body (with RequestId) or raises `ClbApiError`."""
        return self.invoke(action, params, request_id=request_id)[0]

    def invoke(
        self,
        action: str,
        params: Mapping[str, Any],
        *,
        request_id: str | None = None,
        caller_gone: Callable[[], bool] | None = None,
    ) -> tuple[dict[str, Any], FaultDecision | None]:
        """`call` that also returns the fault decision, so a transport can drop the answer it asks to drop.

        Injected latency is slept before the model lock is taken, so a slow call never stalls the others. A
        hung call (`hang_s`) is held there too; one whose caller gave up meanwhile (`caller_gone`, which the
        HTTP server passes) is logged as abandoned and raises `CallAbandoned` without touching the state.
        """
        fault = self.faults.decide(action)
        if fault is not None and fault.latency_s > 0:
            self._sleep(fault.latency_s)
        if fault is not None and fault.hang_s > 0 and self._hold(fault.hang_s, caller_gone):
            with self._lock:
                request_id = request_id or self._state.new_request_id()
                self._record(action, params, request_id, None, dropped=False, abandoned=True)
            raise CallAbandoned(f"{action} {request_id}: the caller gave up while the call hung")
        error: ClbApiError | None = None
        response: dict[str, Any] = {}
        with self._lock:
            request_id = request_id or self._state.new_request_id()
            self._state.settle()
            try:
                response = self._run(action, params, request_id, fault)
            except ClbApiError as exc:
                error = exc
            finally:
                self._state.fail_next_task = None
            changed = self._take_changed()
            dropped = error is None and fault is not None and fault.drop_response
            self._record(action, params, request_id, error.code if error else None, dropped=dropped)
        self._notify_if_changed(changed)
        if error is not None:
            raise error
        return {**response, "RequestId": request_id}, fault

    def _hold(self, seconds: float, caller_gone: Callable[[], bool] | None) -> bool:
        """Hold a hung call for up to `seconds` (model clock); True as soon as its caller gave up."""
        deadline = self.clock() + seconds
        while not (caller_gone is not None and caller_gone()):
            left = deadline - self.clock()
            if left <= 0:
                return False
            self._sleep(min(left, _HANG_POLL_S))
        return True

    def _run(
        self, action: str, params: Mapping[str, Any], request_id: str, fault: FaultDecision | None
    ) -> dict[str, Any]:
        handler = ACTIONS.get(action)
        if handler is None:
            raise ClbApiError(INVALID_ACTION, f"Action {action!r} is not a CLB 2018-03-17 action.")
        limit = self._config.rate_limit_for(action)
        if not self._limiter.allow(action, limit):
            raise ClbApiError(REQUEST_LIMIT_EXCEEDED, f"{action} exceeded {limit} requests per second; back off.")
        if fault is not None and fault.error_code:
            raise ClbApiError(fault.error_code, fault.error_message)
        if fault is not None and fault.fail_task:
            self._state.fail_next_task = "injected task failure"
        if fault is not None and fault.task_delay_s:
            self._state.slow_next_task_s = fault.task_delay_s
        try:
            return handler(self._state, params, request_id)
        finally:
            # A task fault belongs to this call only: a call refused before it started a task (instance
            # lock, bad parameter) must not pass its fault on to the next one.
            self._state.fail_next_task = None
            self._state.slow_next_task_s = 0.0

    def record_rejected(self, action: str, request_id: str, code: str) -> None:
        """Log a call the dispatcher refused before the model saw it (bad signature, bad body)."""
        with self._lock:
            self._record(action, {}, request_id, code, dropped=False)

    def _record(
        self,
        action: str,
        params: Mapping[str, Any],
        request_id: str,
        code: str | None,
        *,
        dropped: bool,
        abandoned: bool = False,
    ) -> None:
        self._seq += 1
        self._counts[action] += 1
        lb_id = params.get("LoadBalancerId")
        self._calls.append(
            {
                "seq": self._seq,
                "action": action,
                "request_id": request_id,
                "load_balancer_id": lb_id if isinstance(lb_id, str) else None,
                "error_code": code,
                "dropped": dropped,
                "abandoned": abandoned,
                "time": self.wall_clock(),
            }
        )

    def calls(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": list(self._calls), "counts": dict(self._counts)}

    # -- admin ---------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all CLBs, tasks, the call log and rate windows; keep config, faults and subscribers."""
        with self._lock:
            self._state = ClbState(self._config, self.clock, self.wall_clock)
            self._limiter.reset()
            self._calls.clear()
            self._counts.clear()
        self._notify()

    def seed(self, data: Mapping[str, Any]) -> None:
        """Replace the state with `data` (the `export_state` format; ids, VIPs and defaults filled in)."""
        with self._lock:
            fresh = ClbState(self._config, self.clock, self.wall_clock)
            seeding.load_state(fresh, data)
            self._state = fresh
        self._notify()

    def export_state(self) -> dict[str, Any]:
        with self._lock:
            self._state.settle()
            changed = self._take_changed()
            exported = seeding.export_state(self._state)
        self._notify_if_changed(changed)
        return exported

    def update_config(self, changes: Mapping[str, Any]) -> ClbEmulatorConfig:
        with self._lock:
            self._config = self._config.updated(dict(changes))
            self._state.config = self._config
            return self._config

    def set_fault(self, rule: FaultRule | Mapping[str, Any]) -> None:
        self.faults.set(rule if isinstance(rule, FaultRule) else FaultRule.from_dict(dict(rule)))

    def clear_faults(self, action: str | None = None) -> None:
        self.faults.clear(action)

    def settle(self) -> None:
        """Finish tasks whose time has come (and tell subscribers); any API call does this too."""
        with self._lock:
            self._state.settle()
            changed = self._take_changed()
        self._notify_if_changed(changed)

    # -- dataplane interface ---------------------------------------------------------------------------
    def dataplane_snapshot(self) -> list[ListenerView]:
        with self._lock:
            self._state.settle()
            changed = self._take_changed()
            views = [
                ListenerView(
                    lb_id=lb.lb_id,
                    listener_id=listener.listener_id,
                    vip=lb.vip,
                    port=listener.port,
                    protocol=listener.protocol,
                    health_check=dict(listener.health_check),
                    scheduler=listener.scheduler,
                    targets=tuple(TargetView(t.ip, t.port, t.weight, t.health) for t in listener.targets.values()),
                )
                for lb in self._state.lbs.values()
                for listener in lb.listeners.values()
            ]
        self._notify_if_changed(changed)
        return views

    def set_target_health(self, lb_id: str, listener_id: str, ip: str, port: int, detail: str) -> str | None:
        """Record a probe result; returns the previous detail, or None if the target is no longer bound."""
        if detail not in HEALTH_DETAILS:
            raise ValueError(f"health detail {detail!r} must be one of {sorted(HEALTH_DETAILS)}")
        with self._lock:
            lb = self._state.lbs.get(lb_id)
            listener = lb.listeners.get(listener_id) if lb else None
            target = listener.targets.get((ip, port)) if listener else None
            if target is None:
                return None
            previous = target.health
            target.health = detail
        if previous != detail:
            self._notify()
        return previous

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- change notification ---------------------------------------------------------------------------
    def _take_changed(self) -> bool:
        changed = self._state.changed
        self._state.changed = False
        return changed

    def _notify_if_changed(self, changed: bool) -> None:
        if changed:
            self._notify()

    def _notify(self) -> None:
        with self._lock:
            callbacks = list(self._subscribers)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                # A broken subscriber must not fail the API call that changed state.
                _log.exception("CLB emulator subscriber %r failed", callback)
