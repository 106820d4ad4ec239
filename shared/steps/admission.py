"""The admission step: an AdmissionReview (from the API gateway) → the response with the gate patch.

Called by `functions/admission/handler.py`. Reads the namespace's direct-access Service selectors from
the store's selector index (kept fresh by the service step). When the index is cold for the namespace
(no warm marker), it lists the Services through the Cluster port once — built lazily by the caller so a
cold start never imports the `kubernetes` client unless it must — refreshes the index and marks it warm.
A `dryRun` review is answered the same way but writes nothing.

It also adds the termination protection (`protection_for`: mode from the settings — `auto` means the
http hook when the prestop endpoint's URL is known, else the sleep hook — token key, a fresh Pod id).
Its notices (a user's own preStop kept, a grace period too short for the drain) become Warning Events
on the selecting Service, once per workload and reason an hour (the Pod has no name yet at admission;
the prestop step warns on the Pod itself when it terminates).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Protocol

from shared.config import Settings
from shared.domain.admission import (
    AdmissionDecision,
    AdmissionReview,
    Protection,
    admit,
    is_pod_create,
    parse_review,
    pod_namespace,
)
from shared.domain.models import ObjectRef, SelectorEntry
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


class AdmissionStore(KeyValueStore, SelectorIndex, Protocol):
    """What the admission review needs of the store: the selector index and its markers."""


def namespace_selectors(
    store: AdmissionStore, clock: Clock, namespace: str, *, cluster_factory: Callable[[], Cluster] | None, dry_run: bool
) -> list[SelectorEntry]:
    now = clock.now()
    if store.kv_get(warm_key(namespace), now=now) is not None or cluster_factory is None:
        return store.list_selectors(namespace)
    live = [
        SelectorEntry(
            namespace=s.namespace,
            service=s.name,
            selector=s.selector,
            lb_id=s.annotations.get("service.kubernetes.io/loadbalance-id"),
            updated_at=now,
            annotations=admission_annotations(s.annotations),
        )
        for s in cluster_factory().list_services(namespace)
        if s.is_direct_access and s.selector
    ]
    if not dry_run:
        known = {e.service for e in store.list_selectors(namespace)}
        for entry in live:
            store.put_selector(entry)
        for stale in known - {e.service for e in live}:
            store.delete_selector(namespace, stale)
        store.kv_set(warm_key(namespace), "1", ttl_s=SELECTOR_INDEX_WARM_TTL_S, now=now)
    return live


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


def _workload(review: AdmissionReview) -> str:
    meta = (review.request.object or {}).get("metadata") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner:
        return f"{owner.get('kind')} {owner.get('name')}"
    return f"Pods named {meta.get('name') or str(meta.get('generateName') or '') + '*'}"


def emit_notices(
    store: KeyValueStore, clock: Clock, review: AdmissionReview, decision: AdmissionDecision, cluster: Cluster
) -> None:
    """One Warning Event per (workload, reason) an hour on the first selecting Service; never fails admission."""
    if not decision.notices or not decision.services or review.request.dry_run:
        return
    namespace, service = decision.services[0].split("/", 1)
    workload = _workload(review)
    for reason, message in decision.notices:
        marker = admission_notice_key(namespace, workload, reason)
        try:
            if store.kv_set_if_absent(marker, "1", ttl_s=NOTICE_TTL_S, now=clock.now()):
                cluster.emit_event(
                    ObjectRef(kind="Service", namespace=namespace, name=service),
                    type="Warning",
                    reason=reason,
                    message=f"{workload}: {message}",
                )
        except Exception as exc:  # a hint only: the Pod is admitted either way
            log.warning("admission.notice_failed", reason=reason, error=str(exc))


def review_admission(
    store: AdmissionStore,
    clock: Clock,
    body: str | bytes | dict[str, Any] | None,
    *,
    is_base64: bool = False,
    cluster_factory: Callable[[], Cluster] | None = None,
    settings: Settings | None = None,
) -> AdmissionDecision:
    """Parse (raising `InvalidInput` for a malformed review) and decide; with `settings`, protect too."""
    review = parse_review(body, is_base64=is_base64)
    if not is_pod_create(review):
        return admit(review, [])
    selectors = namespace_selectors(
        store, clock, pod_namespace(review), cluster_factory=cluster_factory, dry_run=review.request.dry_run
    )
    protection = protection_for(settings, store, clock) if settings is not None and selectors else None
    decision = admit(review, selectors, protection)
    if cluster_factory is not None and decision.notices:
        emit_notices(store, clock, review, decision, cluster_factory())
    return decision
