"""The store's key layout lives in shared/keys.py: prefixes never collide and the module's table is current."""

from __future__ import annotations

import shared.keys as keys
from shared.domain.models import ObjectKey

KV = [
    keys.gate_key("uid"),
    keys.limit_key("uid"),
    keys.service_record_key(ObjectKey(namespace="ns", name="web")),
    keys.checkpoint_key(ObjectKey(namespace="ns", name="web")),
    keys.batch_marker_key("b1"),
    keys.version_key("Pod", "ns", "web-1", "uid"),
    keys.timeline_mark_key("uid", "bound", "lbl-1"),
    keys.warm_key("ns"),
    keys.admission_notice_key("ns", "Deployment/web", "HostNetwork"),
    keys.nonce_key("n1"),
    keys.PRESTOP_HMAC_KEY,
]
PENDING = [keys.pending_queue("lb-1"), keys.timeline_pod_set("ns/web-1"), keys.timeline_service_set("ns/web")]
LEASES = [keys.lease_name("lb-1"), keys.guardian_lease_name("clb-direct-readiness-gate")]


def _prefix(key: str) -> str:
    return key.split(":", 1)[0] if not key.startswith("selector-index:") else "selector-index:warm"


def test_each_namespace_has_distinct_prefixes() -> None:
    for namespace in (KV, PENDING, LEASES):
        prefixes = [_prefix(k) for k in namespace]
        assert len(set(prefixes)) == len(prefixes), prefixes


def test_the_module_table_names_every_prefix() -> None:
    table = keys.__doc__ or ""
    for key in [*KV, *PENDING, *LEASES]:
        assert f"  {_prefix(key)}:" in table or f"  {key}" in table, (
            f"{key} is missing from the table in shared/keys.py"
        )
