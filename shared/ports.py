"""Protocols the domain needs from the outside world: the Store roles, LoadBalancer, Cluster, Clock, Invoker.

Handlers build concrete adapters from `Settings` once per cold start and pass them down; tests pass
fakes or the emulators. Adapters translate their transport's errors into `shared.domain.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from shared.domain.models import (
    BindingRecord,
    DueItem,
    IdempotencyRecord,
    Lease,
    Listener,
    ListenerSpec,
    LoadBalancerInfo,
    LoadBalancerSpec,
    ObjectRef,
    PodCondition,
    PodInfo,
    SelectorEntry,
    ServiceInfo,
    StoredEvent,
    Target,
    TargetHealth,
)


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock epoch seconds."""
        ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class IdempotencyStore(Protocol):
    """Idempotency records with Powertools semantics (`shared.idempotency`)."""

    def idem_claim(
        self, key: str, payload_hash: str, *, now: float, in_progress_ttl_s: float, record_ttl_s: float, token: str
    ) -> IdempotencyRecord | None:
        """Claim `key` as IN_PROGRESS under the caller's unique `token`. Returns None when the caller now
        owns it (new or expired record); returns the COMPLETED record for a replay (same payload hash).
        Raises `IdempotencyInProgress` while another claim is live, `IdempotencyKeyMismatch` when the
        payload hash differs."""
        ...

    def idem_complete(
        self, key: str, payload_hash: str, result: Any, *, now: float, record_ttl_s: float, token: str
    ) -> bool:
        """Record the result, only if the IN_PROGRESS claim is still the caller's (`token`); False when it
        expired and was taken over (or vanished): the new owner's record is left untouched."""
        ...

    def idem_release(self, key: str, *, token: str) -> bool:
        """Delete the caller's IN_PROGRESS claim after the step failed, so a retry can run; a claim that
        is someone else's by now (or a COMPLETED record) is left alone (False)."""
        ...

    def idem_get(self, key: str) -> IdempotencyRecord | None: ...


class BindingStore(Protocol):
    """Durable binding records per (CLB, listener, Pod UID) (the bind/unbind steps)."""

    def put_binding(self, record: BindingRecord) -> None: ...

    def get_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> BindingRecord | None: ...

    def list_bindings(
        self,
        *,
        lb_id: str | None = None,
        service: str | None = None,
        pod_uid: str | None = None,
        ip: str | None = None,
        pods: Sequence[str] | None = None,
    ) -> list[BindingRecord]:
        """The records matching every filter given, sorted by (lb_id, listener_id, pod_uid). `ip` (a target's
        address, as a health notification names it) and `pods` (any of these namespace/name keys, for Pods
        whose UID may have changed) are matched in the engine, so only the few records wanted are decoded."""
        ...

    def delete_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> None: ...


class LeaseStore(Protocol):
    """Leases with fencing tokens (one writer per CLB, one guardian run)."""

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float, now: float) -> Lease | None:
        """Take the lease if free or expired (new, higher token); the same holder re-acquiring keeps
        its token and extends the expiry. None when someone else holds a live lease."""
        ...

    def renew_lease(self, name: str, holder: str, token: int, *, ttl_s: float, now: float) -> bool: ...

    def release_lease(self, name: str, holder: str, token: int) -> None: ...

    def current_lease(self, name: str, *, now: float) -> Lease | None: ...


class BucketStore(Protocol):
    """Rate-limit token buckets shared by every function instance (`shared.ratelimit`)."""

    def take_tokens(self, bucket: str, *, rate_per_s: float, burst: float, n: float, now: float) -> float:
        """Take `n` tokens; returns 0.0 when granted, else the seconds to wait (nothing taken)."""
        ...


class EventLog(Protocol):
    """Recent events by id, for deduplication and replay (router, `clb-direct events/replay`)."""

    def append_event(self, event: StoredEvent, *, ttl_s: float, now: float) -> bool:
        """False when an event with this id is already stored (deduplication)."""
        ...

    def get_event(self, event_id: str, *, now: float) -> StoredEvent | None: ...

    def list_events(self, *, now: float, limit: int = 50) -> list[StoredEvent]:
        """Newest first."""
        ...


class SelectorIndex(Protocol):
    """Namespace -> direct-access Services' selectors (the admission webhook's index)."""

    def put_selector(self, entry: SelectorEntry) -> None: ...

    def delete_selector(self, namespace: str, service: str) -> None: ...

    def list_selectors(self, namespace: str) -> list[SelectorEntry]: ...


class KeyValueStore(Protocol):
    """Small generic KV: checkpoints, dedupe keys, markers (key layout: `shared.keys`)."""

    def kv_get(self, key: str, *, now: float) -> str | None: ...

    def kv_get_many(self, keys: Sequence[str], *, now: float) -> dict[str, str]:
        """The live values of `keys` in one round trip (absent and expired keys are left out)."""
        ...

    def kv_set(self, key: str, value: str, *, ttl_s: float | None, now: float) -> None: ...

    def kv_set_if_absent(self, key: str, value: str, *, ttl_s: float | None, now: float) -> bool: ...

    def kv_delete(self, key: str) -> None: ...


class PendingSets(Protocol):
    """Pending sets: work coalesced for a CLB while its writer holds the lease; timelines."""

    def pending_add(self, queue: str, members: Sequence[str]) -> None: ...

    def pending_take(self, queue: str) -> list[str]:
        """Atomically remove and return every member."""
        ...

    def pending_members(self, queue: str) -> list[str]:
        """Every member, sorted, without removing any (readers such as the timeline CLI)."""


class ScheduleStore(Protocol):
    """The due-set of delayed work (the typed API is `shared/schedule.py`)."""

    def schedule_put(self, key: str, due_at: float, payload: str) -> None:
        """Schedule `key` for `due_at` with `payload`; re-scheduling a key moves it (and drops any claim,
        so the old taker's `schedule_complete` no longer removes it)."""
        ...

    def schedule_take_due(self, *, now: float, limit: int, visibility_s: float, claim: str) -> list[DueItem]:
        """Atomically claim up to `limit` items due at `now` (earliest first): each gets `claim` as its
        token and becomes due again at `now + visibility_s` unless completed before. Two takers never get
        the same item while its claim is live."""
        ...

    def schedule_complete(self, key: str, claim: str) -> bool:
        """Remove the item if `claim` is still its claim token (False: re-scheduled or taken again)."""
        ...

    def schedule_cancel(self, key: str) -> None: ...

    def schedule_list(self, *, limit: int = 100) -> list[DueItem]:
        """Items by due time, earliest first, without claiming them (inspection, tests)."""
        ...


class Store(
    IdempotencyStore,
    BindingStore,
    LeaseStore,
    BucketStore,
    EventLog,
    SelectorIndex,
    KeyValueStore,
    PendingSets,
    ScheduleStore,
    Protocol,
):
    """The KV table: every role in one engine. Two engines (SQLite, Redis) pass one contract suite. All
    times are epoch seconds passed in by the caller (so a fake clock drives expiry); engines never read the
    wall clock for logic. Consumers take the role they use (`LeaseStore`, `KeyValueStore`, ...); only the
    code that opens, passes on or closes the whole table takes `Store`.
    """

    def close(self) -> None: ...


class LoadBalancer(Protocol):
    """The CLB as the steps see it. Writes wait for their async task; errors are classified."""

    def create_load_balancer(self, spec: LoadBalancerSpec) -> LoadBalancerInfo: ...

    def describe_load_balancer(self, lb_id: str) -> LoadBalancerInfo | None: ...

    def find_load_balancers(self, tags: Mapping[str, str]) -> list[LoadBalancerInfo]: ...

    def delete_load_balancer(self, lb_id: str) -> None: ...

    def list_listeners(self, lb_id: str) -> list[Listener]: ...

    def create_listener(self, lb_id: str, spec: ListenerSpec) -> str: ...

    def modify_listener(self, lb_id: str, listener_id: str, spec: ListenerSpec) -> None: ...

    def delete_listener(self, lb_id: str, listener_id: str) -> None: ...

    def list_targets(self, lb_id: str) -> list[Target]: ...

    def register_targets(self, lb_id: str, targets: Sequence[Target]) -> None: ...

    def deregister_targets(self, lb_id: str, targets: Sequence[Target]) -> None: ...

    def set_target_weights(self, lb_id: str, targets: Sequence[Target]) -> None: ...

    def describe_target_health(self, lb_ids: Sequence[str]) -> dict[str, list[TargetHealth]]: ...


class Cluster(Protocol):
    """The Kubernetes API as the steps see it (over the real `kubernetes` client in production)."""

    def server_version(self) -> tuple[int, int]: ...

    def get_service(self, namespace: str, name: str) -> ServiceInfo | None: ...

    def list_services(self, namespace: str | None = None) -> list[ServiceInfo]: ...

    def get_pod(self, namespace: str, name: str) -> PodInfo | None: ...

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[PodInfo]: ...

    def list_pods_with_ip(self, ip: str) -> list[PodInfo]:
        """Pods in every namespace whose `status.podIP` is `ip` (field selector; usually 0 or 1)."""
        ...

    def get_tke_service_config(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def get_cluster_config(self) -> dict[str, str]:
        """Data of ConfigMap kube-system/tke-service-controller-config ({} if absent)."""
        ...

    def set_pod_condition(self, pod: PodInfo, condition: PodCondition) -> bool:
        """SMP on pods/status with the Pod UID as precondition; lastTransitionTime moves only when the
        status changes; a no-op is skipped (returns False); a vanished Pod is benign (False)."""
        ...

    def patch_service_metadata(
        self,
        namespace: str,
        name: str,
        *,
        annotations: Mapping[str, str | None] | None = None,
        add_finalizers: Sequence[str] = (),
        remove_finalizers: Sequence[str] = (),
    ) -> None: ...

    def set_service_load_balancer_status(self, namespace: str, name: str, ingress_ips: Sequence[str]) -> None: ...

    def emit_event(self, regarding: ObjectRef, *, type: str, reason: str, message: str) -> None: ...

    def get_mutating_webhook_configuration(self, name: str) -> dict[str, Any] | None: ...

    def apply_mutating_webhook_configuration(self, body: dict[str, Any]) -> None:
        """Create, or replace (with the current resourceVersion) when it exists."""
        ...

    def get_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """Decoded `data` of a Secret, or None."""
        ...

    def apply_secret(self, namespace: str, name: str, data: Mapping[str, str]) -> None: ...


class Invoker(Protocol):
    """Asynchronous invocation of another function (SCF Invoke, InvocationType=Event, or local queue)."""

    def invoke_async(self, function: str, payload: Mapping[str, Any]) -> str:
        """Returns the invocation's request id."""
        ...
