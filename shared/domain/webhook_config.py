"""The desired MutatingWebhookConfiguration that injects the readiness gate, and drift detection.

Pure: the guardian step builds the desired object here and compares it with the live one, replacing it
when anything that matters was deleted or altered (any field the API server would act on). Pods are mutated on
CREATE only (readinessGates are immutable afterwards); `kube-system` is excluded via namespaceSelector so
the webhook can never lock the control plane out, whatever the failurePolicy.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Literal

from shared.domain.errors import ConfigError

WEBHOOK_NAME = "readiness-gate.clb-direct.cloud.tencent.com"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "clb-direct"


def desired_webhook_configuration(
    *,
    name: str,
    url: str | None,
    ca_bundle_pem: str,
    failure_policy: Literal["Ignore", "Fail"],
    timeout_s: int = 10,
) -> dict[str, Any]:
    """The full object to create or replace (no resourceVersion; the adapter adds it).

    An empty `ca_bundle_pem` leaves `caBundle` out: the API server then verifies the endpoint against
    its system roots, which is right when a public certificate serves the URL (the API gateway).
    """
    if not url or not url.startswith("https://"):
        raise ConfigError(
            f"webhook URL {url!r} is not an https:// URL; set CLB_DIRECT_WEBHOOK_URL to the admission "
            "function's HTTPS endpoint"
        )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": _client_config(url, ca_bundle_pem),
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": failure_policy,
                "matchPolicy": "Equivalent",
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
                    ]
                },
                "objectSelector": {},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": max(1, min(30, timeout_s)),
                "reinvocationPolicy": "IfNeeded",
            }
        ],
    }


def _client_config(url: str, ca_bundle_pem: str) -> dict[str, str]:
    config = {"url": url}
    if ca_bundle_pem:
        config["caBundle"] = base64.b64encode(ca_bundle_pem.encode()).decode()
    return config


_COMPARED = (
    "clientConfig",
    "rules",
    "failurePolicy",
    "namespaceSelector",
    "sideEffects",
    "admissionReviewVersions",
    "timeoutSeconds",
)


def webhook_drift(actual: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> list[str]:
    """What differs between the live configuration and the desired one ([] = nothing to repair)."""
    if actual is None:
        return ["missing"]
    live = {w.get("name"): w for w in actual.get("webhooks") or [] if isinstance(w, Mapping)}
    drift: list[str] = []
    for want in desired["webhooks"]:
        have = live.get(want["name"])
        if have is None:
            drift.append(f"webhook {want['name']} missing")
            continue
        for key in _COMPARED:
            # The API server defaults fields we did not send (e.g. service port); compare what we set.
            if key == "clientConfig":
                for sub in ("url", "caBundle"):
                    # An absent and an empty caBundle mean the same to the API server (system roots).
                    if ((have.get(key) or {}).get(sub) or None) != (want[key].get(sub) or None):
                        drift.append(f"clientConfig.{sub}")
            elif _normalise(have.get(key)) != _normalise(want[key]):
                drift.append(key)
    if len(live) != len(desired["webhooks"]):
        drift.append("extra webhooks")
    return drift


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normalise(v) for k, v in value.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value
