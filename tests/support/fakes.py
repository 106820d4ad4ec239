"""The one in-memory fake of each port the suite fakes: `Cluster` (FakeCluster) and `Invoker` (StepQueue).

The Store has no fake: tests use the real SQLite engine (`memory://`); the CLB is the emulator's model behind
the real SDK (`responses` transport; `tests/support/clb.py` for the unit tier). `FakeCluster` passes the
same contract suite as `KubernetesCluster` over the cluster simulator
(tests/integration/adapters/test_cluster_contract.py).

`FakeCluster` behaves like the API server where the steps depend on it: selectors, UID-preconditioned
condition writes that skip no-ops, finalizers that hold a deleted Service until removed, Events.
`StepQueue` is an Invoker that queues follow-up invocations so a test can run them when it chooses.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.adapters.invokers import encode_payload
from shared.domain.backends import selects
from shared.domain.models import ObjectRef, PodCondition, PodInfo, ServiceInfo


class FakeCluster:
    def __init__(self, version: tuple[int, int] = (1, 28)) -> None:
        self.version = version
        self.services: dict[tuple[str, str], ServiceInfo] = {}
        self.pods: dict[tuple[str, str], PodInfo] = {}
        self.tke_configs: dict[tuple[str, str], dict[str, Any]] = {}
        self.cluster_config: dict[str, str] = {"GlobalRouteDirectAccess": "true"}
        self.events: list[tuple[ObjectRef, str, str, str]] = []
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.condition_writes = 0
        self.list_service_calls = 0
        self.pods_read = 0  # PodInfo objects returned by the Pod reads: what a real client deserialises

    # --- test helpers -------------------------------------------------------------------------------
    def put_service(self, service: ServiceInfo) -> None:
        self.services[(service.namespace, service.name)] = service

    def put_pod(self, pod: PodInfo) -> None:
        self.pods[(pod.namespace, pod.name)] = pod

    def update_pod(self, namespace: str, name: str, **changes: Any) -> PodInfo:
        pod = self.pods[(namespace, name)].model_copy(update=changes)
        self.pods[(namespace, name)] = pod
        return pod

    def remove_pod(self, namespace: str, name: str) -> None:
        self.pods.pop((namespace, name), None)

    def delete_service(self, namespace: str, name: str) -> None:
        """Like the API server: a Service with finalizers only gets a deletionTimestamp."""
        service = self.services[(namespace, name)]
        if service.finalizers:
            self.services[(namespace, name)] = service.model_copy(update={"deletion_timestamp": "2024-01-01T00:00:00Z"})
        else:
            del self.services[(namespace, name)]

    def gate(self, namespace: str, name: str) -> PodCondition | None:
        from shared.domain.models import GATE_CONDITION_TYPE

        return self.pods[(namespace, name)].condition(GATE_CONDITION_TYPE)

    def event_reasons(self, kind: str | None = None) -> list[str]:
        return [reason for ref, _, reason, _ in self.events if kind is None or ref.kind == kind]

    # --- Cluster port -------------------------------------------------------------------------------
    def server_version(self) -> tuple[int, int]:
        return self.version

    def get_service(self, namespace: str, name: str) -> ServiceInfo | None:
        return self.services.get((namespace, name))

    def list_services(self, namespace: str | None = None) -> list[ServiceInfo]:
        self.list_service_calls += 1
        return [s for (ns, _), s in sorted(self.services.items()) if namespace in (None, ns)]

    def get_pod(self, namespace: str, name: str) -> PodInfo | None:
        found = self.pods.get((namespace, name))
        self.pods_read += found is not None
        return found

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[PodInfo]:
        found = [p for (ns, _), p in sorted(self.pods.items()) if ns == namespace and selects(selector, p.labels)]
        self.pods_read += len(found)
        return found

    def list_pods_with_ip(self, ip: str) -> list[PodInfo]:
        found = [p for _, p in sorted(self.pods.items()) if p.ip == ip]
        self.pods_read += len(found)
        return found

    def get_tke_service_config(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.tke_configs.get((namespace, name)))

    def get_cluster_config(self) -> dict[str, str]:
        return dict(self.cluster_config)

    def set_pod_condition(self, pod: PodInfo, condition: PodCondition) -> bool:
        live = self.pods.get((pod.namespace, pod.name))
        if live is None or live.uid != pod.uid:
            return False
        current = live.condition(condition.type)
        if current is not None and (current.status, current.reason, current.message) == (
            condition.status,
            condition.reason,
            condition.message,
        ):
            return False
        if current is not None and current.status == condition.status:
            # Like the adapter: the transition time moves only when the status flips.
            condition = condition.model_copy(update={"last_transition_time": current.last_transition_time})
        others = [c for c in live.conditions if c.type != condition.type]
        self.pods[(pod.namespace, pod.name)] = live.model_copy(update={"conditions": [*others, condition]})
        self.condition_writes += 1
        return True

    def patch_service_metadata(
        self,
        namespace: str,
        name: str,
        *,
        annotations: Mapping[str, str | None] | None = None,
        add_finalizers: Sequence[str] = (),
        remove_finalizers: Sequence[str] = (),
    ) -> None:
        service = self.services[(namespace, name)]
        merged = dict(service.annotations)
        for key, value in (annotations or {}).items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        finalizers = [f for f in service.finalizers if f not in remove_finalizers]
        finalizers += [f for f in add_finalizers if f not in finalizers]
        updated = service.model_copy(update={"annotations": merged, "finalizers": finalizers})
        if updated.deletion_timestamp is not None and not finalizers:
            del self.services[(namespace, name)]
        else:
            self.services[(namespace, name)] = updated

    def set_service_load_balancer_status(self, namespace: str, name: str, ingress_ips: Sequence[str]) -> None:
        service = self.services[(namespace, name)]
        self.services[(namespace, name)] = service.model_copy(update={"ingress_ips": list(ingress_ips)})

    def emit_event(self, regarding: ObjectRef, *, type: str, reason: str, message: str) -> None:
        self.events.append((regarding, type, reason, message))

    def get_mutating_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.webhooks.get(name))

    def apply_mutating_webhook_configuration(self, body: dict[str, Any]) -> None:
        self.webhooks[body["metadata"]["name"]] = copy.deepcopy(body)

    def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return dict(self.secrets[(namespace, name)]) if (namespace, name) in self.secrets else None

    def apply_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        self.secrets[(namespace, name)] = dict(data)


class StepQueue:
    """The Invoker fake: records every invocation (`calls`, in order) and queues it; `run(call)` executes the
    queue FIFO when the test chooses. Thread-safe, so servers and relays in integration tests can invoke too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queue: list[tuple[str, dict[str, Any]]] = []
        self.history: list[tuple[str, dict[str, Any]]] = []
        self.calls = self.history  # every invocation made, in order (tests may clear it)

    def invoke_async(self, function: str, payload: Mapping[str, Any]) -> str:
        # As SCF: the callee gets its own JSON copy, and an event over the async limit is refused.
        event = json.loads(encode_payload(function, payload))
        with self._lock:
            self.queue.append((function, event))
            self.history.append((function, copy.deepcopy(event)))
            return f"req-{len(self.history)}"

    def steps(self) -> list[str]:
        """The function of every invocation made, in order."""
        with self._lock:
            return [name for name, _ in self.history]

    def snapshot(self) -> list[tuple[str, dict[str, Any]]]:
        """A copy of every invocation made, safe to read while other threads invoke."""
        with self._lock:
            return list(self.history)

    def run(
        self, call: Callable[[str, dict[str, Any]], Any], *, delayed: bool = True, limit: int = 50
    ) -> list[tuple[str, Any]]:
        """Run queued invocations (and the ones they queue) until empty; `delayed=False` leaves requests
        with `not_before` in the queue."""
        results: list[tuple[str, Any]] = []
        kept: list[tuple[str, dict[str, Any]]] = []
        while self.queue and limit > 0:
            limit -= 1
            function, payload = self.queue.pop(0)
            if not delayed and payload.get("not_before"):
                kept.append((function, payload))
                continue
            results.append((function, call(function, payload)))
        self.queue = kept + self.queue
        return results

    def functions(self) -> list[str]:
        return [f for f, _ in self.queue]
