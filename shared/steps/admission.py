"""The admission step: an AdmissionReview (from the API gateway) → observe → a typed plan → the response.

Called by `functions/admission/handler.py`. `observe_admission` reads the namespace's direct-access
Service selectors from the store's selector index (kept fresh by the service step); when the index is
cold for the namespace (no warm marker), it lists the Services through the Cluster port once — built
lazily by the caller so a cold start never imports the `kubernetes` client unless it must. It also
prepares the termination protection (`protection_for`: mode from the settings — `auto` means the http
hook when the prestop endpoint's URL is known, else the sleep hook — token key, a fresh Pod id).
`shared.domain.admission.plan_admission` decides (pure): the gate and preStop patch, the warnings, the
notices, the index refresh. `apply_admission_plan` refreshes the index (and marks it warm) and turns the
notices (a user's own preStop kept, a grace period too short for the drain) into Warning Events on the
selecting Service, once per workload and reason an hour (the Pod has no name yet at admission; the
prestop step warns on the Pod itself when it terminates). A `dryRun` review is answered the same way but
its plan writes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Protocol

from shared.config import Settings
from shared.domain.admission import (
    AdmissionPlan,
    AdmissionReview,
    AdmissionSnapshot,
    Notice,
    Protection,
    RefreshSelectorIndex,
    is_pod_create,
    parse_review,
    plan_admission,
    pod_namespace,
)
from shared.domain.models import LB_ID_ANNOTATION, ObjectRef, SelectorEntry
from shared.domain.termination import Endpoint, ProtectionMode, ProtectionOptions, admission_annotations
from shared.keys import admission_notice_key, warm_key
from shared.logging import get_logger
from shared.ports import Clock, Cluster, KeyValueStore, SelectorIndex
from shared.steps.prestop import prestop_key

log = get_logger("clb_direct.admission")
NOTICE_TTL_S = 3600.0

# After this long the index for a namespace is re-read from the API once (anti-entropy for an index
# entry a lost service event never wrote).
SELECTOR_INDEX_WARM_TTL_S = 600.0

ClusterFactory = Callable[[], Cluster]


class AdmissionStore(KeyValueStore, SelectorIndex, Protocol):
    """What the admission review needs of the store: the selector index and its markers."""


def review_admission(
    store: AdmissionStore,
    clock: Clock,
    body: str | bytes | dict[str, Any] | None,
    *,
    is_base64: bool = False,
    cluster_factory: ClusterFactory | None = None,
    settings: Settings | None = None,
) -> AdmissionPlan:
    """Parse (raising `InvalidInput` for a malformed review), observe, plan and apply; with `settings`,
    protect too. The plan's `response()` is the answer."""
    review = parse_review(body, is_base64=is_base64)
    plan = plan_admission(observe_admission(store, clock, review, cluster_factory=cluster_factory, settings=settings))
    apply_admission_plan(store, clock, plan, cluster_factory=cluster_factory)
    return plan


# ----------------------------------------------------------------------------------------------- observe
def observe_admission(
    store: AdmissionStore,
    clock: Clock,
    review: AdmissionReview,
    *,
    cluster_factory: ClusterFactory | None,
    settings: Settings | None,
) -> AdmissionSnapshot:
    if not is_pod_create(review):
        return AdmissionSnapshot(review=review)
    selectors, indexed = _observe_selectors(store, clock, pod_namespace(review), cluster_factory)
    protection = protection_for(settings, store, clock) if settings is not None and selectors else None
    return AdmissionSnapshot(review=review, selectors=selectors, indexed=indexed, protection=protection)


def _observe_selectors(
    store: AdmissionStore, clock: Clock, namespace: str, cluster_factory: ClusterFactory | None
) -> tuple[list[SelectorEntry], list[str] | None]:
    """(the namespace's selectors, None) from a warm index; from a cold one (the live selectors, the
    Services the index held)."""
    now = clock.now()
    if store.kv_get(warm_key(namespace), now=now) is not None or cluster_factory is None:
        return store.list_selectors(namespace), None
    live = [
        SelectorEntry(
            namespace=s.namespace,
            service=s.name,
            selector=s.selector,
            lb_id=s.annotations.get(LB_ID_ANNOTATION),
            updated_at=now,
            annotations=admission_annotations(s.annotations),
        )
        for s in cluster_factory().list_services(namespace)
        if s.is_direct_access and s.selector
    ]
    return live, [entry.service for entry in store.list_selectors(namespace)]


def prestop_endpoint(settings: Settings) -> Endpoint | None:
    """Where the kubelet reaches the prestop function: `prestop_url`, else beside the webhook URL."""
    url = settings.prestop_url
    if url is None and settings.webhook_url:
        url = settings.webhook_url.rstrip("/").rsplit("/", 1)[0] + "/prestop"
    return Endpoint.parse(url) if url else None


def protection_for(settings: Settings, store: KeyValueStore, clock: Clock) -> Protection | None:
    """The protection admission adds by default; None when the settings turn it off."""
    if settings.prestop_mode == "off":
        return None
    endpoint = prestop_endpoint(settings) if settings.prestop_mode in ("auto", "http") else None
    mode: ProtectionMode = "http" if endpoint is not None else "sleep"
    options = ProtectionOptions(
        mode=mode,
        endpoint=endpoint,
        drain_budget_s=settings.prestop_drain_budget_s,
        sleep_s=settings.prestop_drain_budget_s,
    )
    key = prestop_key(settings, store, clock) if mode == "http" else b""
    return Protection(options=options, key=key, prestop_id=secrets.token_hex(16))


# ------------------------------------------------------------------------------------------------- apply
def apply_admission_plan(
    store: AdmissionStore, clock: Clock, plan: AdmissionPlan, *, cluster_factory: ClusterFactory | None
) -> None:
    """The plan's writes: the index refresh, then the notice Events (which never fail admission)."""
    for action in plan.actions:
        if isinstance(action, RefreshSelectorIndex):
            _refresh_index(store, clock, action)
    events = [(notice, notice.regarding) for notice in plan.notices if notice.regarding is not None]
    if events and cluster_factory is not None:
        cluster = cluster_factory()
        for notice, regarding in events:
            _emit_notice(store, clock, notice, regarding, cluster)


def _refresh_index(store: AdmissionStore, clock: Clock, action: RefreshSelectorIndex) -> None:
    for entry in action.entries:
        store.put_selector(entry)
    for stale in action.stale:
        store.delete_selector(action.namespace, stale)
    store.kv_set(warm_key(action.namespace), "1", ttl_s=SELECTOR_INDEX_WARM_TTL_S, now=clock.now())


def _emit_notice(store: KeyValueStore, clock: Clock, notice: Notice, regarding: ObjectRef, cluster: Cluster) -> None:
    """One Warning Event per (workload, reason) an hour; a hint only: the Pod is admitted either way."""
    marker = admission_notice_key(regarding.namespace, notice.workload, notice.notice)
    try:
        if store.kv_set_if_absent(marker, "1", ttl_s=NOTICE_TTL_S, now=clock.now()):
            message = f"{notice.workload}: {notice.message}"
            cluster.emit_event(regarding, type="Warning", reason=notice.notice, message=message)
    except Exception as exc:
        log.warning("admission.notice_failed", reason=notice.notice, error=str(exc))
