"""Manifests the integration tests apply through the real `kubernetes` client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def web_deployment(
    version: str,
    *,
    replicas: int = 2,
    pod_annotations: Mapping[str, str] | None = None,
    readiness_gates: Sequence[str] = (),
    port_name: str | None = None,
) -> dict[str, Any]:
    """Deployment `web` (label app=web, one container serving :8080 with env VERSION), rolled 1 surge / 0 down."""
    port: dict[str, Any] = {"containerPort": 8080}
    if port_name:
        port["name"] = port_name
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "web",
                "image": "example/web:latest",
                "env": [{"name": "VERSION", "value": version}],
                "ports": [port],
            }
        ]
    }
    if readiness_gates:
        pod_spec["readinessGates"] = [{"conditionType": gate} for gate in readiness_gates]
    template_meta: dict[str, Any] = {"labels": {"app": "web"}}
    if pod_annotations:
        template_meta["annotations"] = dict(pod_annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    }
