"""Fault injection for the CLB emulator, per action: error codes at a rate, latency, dropped responses.

`ClbModel` owns a `FaultInjector`; the dispatcher (`api.py`) asks it for a `FaultDecision` before each
call, sleeps the latency outside the model lock, and the model raises the injected error or, after
applying the change, lets the transport drop the response (network error or a 5xx status). `fail_task`
makes the call succeed but its async task end in Status 1 without applying anything; `task_delay_s` makes
its async task run that much longer (the CLB stays locked meanwhile, as a slow real task does). `hang_s` holds
a firing call that long before it reaches the CLB, as a request stuck in the network is: when its caller gives
up meanwhile (closes the connection; only the HTTP server can tell) the call is abandoned, never applied and
never answered (`CallAbandoned`), else it runs late. Rules come from tests or the server's
`POST /_emulator/faults`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from emulators.clb.errors import INVALID_PARAMETER_VALUE, ClbApiError

ANY_ACTION = "*"


class CallAbandoned(Exception):
    """A hung call whose caller gave up before it reached the CLB: nothing applied, nothing to answer."""


@dataclass(frozen=True)
class FaultRule:
    """`rate` is the chance (0..1) that a call fires the error / drop / task failure / hang; latency always
    applies. `drop_status` None drops the connection; a number answers that HTTP status instead. `count`
    limits how many calls may fire (None = unlimited). `seed` makes the draws repeatable.
    """

    action: str
    error_code: str | None = None
    error_message: str = "injected fault"
    rate: float = 1.0
    latency_s: float = 0.0
    drop_response: bool = False
    drop_status: int | None = None
    fail_task: bool = False
    task_delay_s: float = 0.0
    hang_s: float = 0.0
    count: int | None = None
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown or not isinstance(data.get("action"), str):
            raise ClbApiError(
                INVALID_PARAMETER_VALUE,
                f"fault rule needs a string 'action' and only the keys {sorted(allowed)}; got {sorted(data)}",
            )
        try:
            rule = cls(**data)
        except TypeError as exc:
            raise ClbApiError(INVALID_PARAMETER_VALUE, f"bad fault rule: {exc}") from None
        durations = (rule.latency_s, rule.task_delay_s, rule.hang_s)
        if not 0.0 <= float(rule.rate) <= 1.0 or min(float(d) for d in durations) < 0:
            raise ClbApiError(
                INVALID_PARAMETER_VALUE, "fault rate must be within [0, 1]; latency_s, task_delay_s and hang_s >= 0"
            )
        return rule


@dataclass(frozen=True)
class FaultDecision:
    latency_s: float = 0.0
    error_code: str | None = None
    error_message: str = ""
    drop_response: bool = False
    drop_status: int | None = None
    fail_task: bool = False
    task_delay_s: float = 0.0
    hang_s: float = 0.0


class FaultInjector:
    """Thread-safe registry of fault rules, one per action (plus `*` for every action)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, FaultRule] = {}
        self._rngs: dict[str, random.Random] = {}
        self._fired: dict[str, int] = {}

    def set(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules[rule.action] = rule
            self._rngs[rule.action] = random.Random(rule.seed)
            self._fired[rule.action] = 0

    def clear(self, action: str | None = None) -> None:
        with self._lock:
            for store in (self._rules, self._rngs, self._fired):
                if action is None:
                    store.clear()
                else:
                    store.pop(action, None)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**asdict(rule), "fired": self._fired[key]} for key, rule in self._rules.items()]

    def decide(self, action: str) -> FaultDecision | None:
        with self._lock:
            key = action if action in self._rules else ANY_ACTION
            rule = self._rules.get(key)
            if rule is None:
                return None
            exhausted = rule.count is not None and self._fired[key] >= rule.count
            fires = not exhausted and self._rngs[key].random() < rule.rate
            if fires:
                self._fired[key] += 1
            return FaultDecision(
                latency_s=float(rule.latency_s),
                error_code=rule.error_code if fires else None,
                error_message=rule.error_message,
                drop_response=rule.drop_response and fires,
                drop_status=rule.drop_status,
                fail_task=rule.fail_task and fires,
                task_delay_s=float(rule.task_delay_s) if fires else 0.0,
                hang_s=float(rule.hang_s) if fires else 0.0,
            )
