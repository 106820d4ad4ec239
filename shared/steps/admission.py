"""The admission step: an AdmissionReview (from the API gateway) → the response with the gate patch.

Called by `functions/admission/handler.py`. Reads the namespace's direct-access Service selectors from
the store's selector index (kept fresh by the service step). When the index is cold for the namespace
(no warm marker), it lists the Services through the Cluster port once — built lazily by the caller so a
cold start never imports the `kubernetes` client unless it must — refreshes the index and marks it warm.
A `dryRun` review is answered the same way but writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.domain.admission import AdmissionDecision, admit, is_pod_create, parse_review, pod_namespace
from shared.domain.models import SelectorEntry
from shared.ports import Clock, Cluster, Store

# After this long the index for a namespace is re-read from the API once (anti-entropy for an index
# entry a lost service event never wrote).
SELECTOR_INDEX_WARM_TTL_S = 600.0


def warm_key(namespace: str) -> str:
    return f"selector-index:warm:{namespace}"


def namespace_selectors(
    store: Store, clock: Clock, namespace: str, *, cluster_factory: Callable[[], Cluster] | None, dry_run: bool
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


def review_admission(
    store: Store,
    clock: Clock,
    body: str | bytes | dict[str, Any] | None,
    *,
    is_base64: bool = False,
    cluster_factory: Callable[[], Cluster] | None = None,
) -> AdmissionDecision:
    """Parse (raising `InvalidInput` for a malformed review) and decide."""
    review = parse_review(body, is_base64=is_base64)
    if not is_pod_create(review):
        return admit(review, [])
    selectors = namespace_selectors(
        store, clock, pod_namespace(review), cluster_factory=cluster_factory, dry_run=review.request.dry_run
    )
    return admit(review, selectors)
