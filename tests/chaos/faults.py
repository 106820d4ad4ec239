"""The faults the chaos scenarios inject, beside the CLB emulator's own (`emulators.clb.faults`).

- `CLB_PROFILES`: named sets of CLB fault rules (error codes, lost responses, failed and slow async tasks);
  a profile marked blocking stops every write, so time under it does not count against the drain bound.
- `FaultyCluster`: the Cluster port as the steps see it, answering 409 Conflict or a 500 (both retryable,
  as `KubernetesCluster` maps them) at chosen rates, and telling a watcher about every gate write before it
  lands, so the gate invariant (S1) is checked at the moment a gate turns True.
- `FaultyStore`: the real store, except that it can be down (every call fails as an unreachable Redis
  does), restart (closed and opened again on the same file: what was written survives), and crash a
  function right after its CLB call, before the binding record is written.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulators.clb.faults import FaultRule
from shared.adapters.store_factory import open_store
from shared.domain.errors import Conflict, RetryableError
from shared.domain.models import GATE_CONDITION_TYPE, PodCondition, PodInfo

WRITES = ("BatchRegisterTargets", "BatchDeregisterTargets", "BatchModifyTargetWeight")


@dataclass(frozen=True)
class ClbProfile:
    rules: tuple[FaultRule, ...]
    blocking: bool = False


def _each_write(**fault: Any) -> tuple[FaultRule, ...]:
    return tuple(FaultRule(action=action, seed=index, **fault) for index, action in enumerate(WRITES))


CLB_PROFILES: dict[str, ClbProfile] = {
    "instance-lock": ClbProfile(_each_write(error_code="FailedOperation.ResourceInOperating", rate=0.5)),
    "throttled": ClbProfile(
        (
            FaultRule(action="DescribeTargets", error_code="RequestLimitExceeded", rate=0.4, seed=3),
            FaultRule(action="BatchModifyTargetWeight", error_code="RequestLimitExceeded", rate=0.5, seed=4),
            FaultRule(action="BatchRegisterTargets", error_code="RequestLimitExceeded", rate=0.3, seed=5),
        )
    ),
    "internal-errors": ClbProfile(_each_write(error_code="InternalError", rate=0.4)),
    "lost-responses": ClbProfile(_each_write(drop_response=True, rate=0.5)),
    "lost-responses-502": ClbProfile(_each_write(drop_response=True, drop_status=502, rate=0.5)),
    "failed-tasks": ClbProfile(_each_write(fail_task=True, rate=0.5)),
    "slow-tasks": ClbProfile(_each_write(task_delay_s=4.0, rate=0.6)),
    "everything-fails": ClbProfile(_each_write(error_code="InternalError", rate=1.0), blocking=True),
}


class FaultyCluster:
    """The Cluster port with injected API-server failures; test helpers go to the wrapped fake directly."""

    WRITE_METHODS = frozenset(
        {"set_pod_condition", "patch_service_metadata", "set_service_load_balancer_status", "emit_event"}
    )
    READ_METHODS = frozenset({"get_pod", "list_pods", "get_service", "list_services", "list_pods_with_ip"})

    def __init__(self, inner: Any, rng: random.Random, on_gate_write: Callable[[PodInfo, PodCondition], None]) -> None:
        self._inner = inner
        self._rng = rng
        self._on_gate_write = on_gate_write
        self.conflict_rate = 0.0
        self.error_rate = 0.0
        self.injected: dict[str, int] = {"kubernetes-409": 0, "kubernetes-500": 0}

    def _maybe_fail(self, method: str) -> None:
        if method in self.WRITE_METHODS and self.conflict_rate and self._rng.random() < self.conflict_rate:
            self.injected["kubernetes-409"] += 1
            raise Conflict(f"Kubernetes API {method}: HTTP 409: injected conflict; re-read and retry", code="Conflict")
        if self.error_rate and self._rng.random() < self.error_rate:
            self.injected["kubernetes-500"] += 1
            raise RetryableError(f"Kubernetes API {method}: HTTP 500: injected server error", delay_s=1.0)

    def set_pod_condition(self, pod: PodInfo, condition: PodCondition) -> bool:
        self._maybe_fail("set_pod_condition")
        if condition.type == GATE_CONDITION_TYPE:
            self._on_gate_write(pod, condition)
        result: bool = self._inner.set_pod_condition(pod, condition)
        return result

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self.WRITE_METHODS and name not in self.READ_METHODS:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._maybe_fail(name)
            return attribute(*args, **kwargs)

        return call


class SimulatedCrash(Exception):
    """The function instance died (timeout, OOM) at this point; SCF retries the invocation."""


class FaultyStore:
    """The real store behind outages, restarts and crashes between a CLB call and its binding record."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self._url = url
        self._inner = open_store(url)
        self._rng = rng
        self.rate = 0.0  # chance that a binding write right after a CLB write crashes the function
        self.crashes = 0
        self.down = False
        self.refused = 0
        self.restarts = 0

    @property
    def raw(self) -> Any:
        """The store itself, for the checker (which must see it even while the product cannot)."""
        return self._inner

    def restart(self) -> None:
        """The store process restarts: connections drop, and what it had persisted is there again."""
        self._inner.close()
        self._inner = open_store(self._url)
        self.restarts += 1

    def _check_up(self, what: str) -> None:
        if self.down:
            self.refused += 1
            raise RetryableError(f"KV store unreachable ({what}): connection refused", delay_s=1.0)

    def _maybe_crash(self, what: str) -> None:
        if self.rate and self._rng.random() < self.rate:
            self.crashes += 1
            raise SimulatedCrash(f"crash after the CLB call, before {what}")

    def put_binding(self, record: Any) -> None:
        self._check_up("put_binding")
        # "registering" is written before the CLB call; the later states record a call already made.
        if record.state != "registering":
            self._maybe_crash(f"recording {record.state}")
        self._inner.put_binding(record)

    def delete_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> None:
        self._check_up("delete_binding")
        self._maybe_crash("forgetting the binding")
        self._inner.delete_binding(lb_id, listener_id, pod_uid)

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._check_up(name)
            return attribute(*args, **kwargs)

        return call
