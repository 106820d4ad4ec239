"""Domain model values for pure tests: one serving Pod of the `app: web` workload, changed per test."""

from __future__ import annotations

from typing import Any

from shared.domain.models import ContainerPort, PodInfo


def serving_pod(name: str, ip: str | None = "10.0.0.1", **changes: Any) -> PodInfo:
    """A Running, containers-ready Pod `ns/<name>` (UID `uid-<name>`) exposing `http` on 8080; `changes`
    override any field."""
    fields: dict[str, Any] = {
        "namespace": "ns",
        "name": name,
        "uid": f"uid-{name}",
        "labels": {"app": "web"},
        "ip": ip,
        "phase": "Running",
        "containers_ready": True,
        "container_ports": [ContainerPort(name="http", container_port=8080)],
    }
    fields.update(changes)
    return PodInfo(**fields)
