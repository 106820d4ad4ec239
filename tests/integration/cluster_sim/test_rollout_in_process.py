"""ReplicaSet and Deployment controllers against the real object store (no HTTP API in between)."""

from __future__ import annotations

from typing import Any

from emulators.cluster.patching import STRATEGIC_MERGE_PATCH
from tests.integration.cluster_sim.conftest import Behaviours, condition, http_get
from tests.support.polling import eventually

GATE = "example.com/gate"


def _deployment(name: str, replicas: int, version: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": f"example/{name}:{version}",
                            "ports": [{"containerPort": 8080}],
                        }
                    ],
                },
            },
            **spec,
        },
    }


def _pods(behaviours: Behaviours, app: str) -> list[dict[str, Any]]:
    items, _ = behaviours.store.list("pods", "default", label_selector=f"app={app}")
    return items


def _deployment_status(behaviours: Behaviours, name: str) -> dict[str, Any]:
    return (behaviours.store.get("deployments", "default", name) or {}).get("status") or {}


def _complete(behaviours: Behaviours, name: str, replicas: int) -> dict[str, Any] | None:
    status = _deployment_status(behaviours, name)
    progressing = condition({"status": status}, "Progressing") or {}
    done = (
        status.get("updatedReplicas") == replicas
        and status.get("replicas") == replicas
        and status.get("availableReplicas") == replicas
        and progressing.get("reason") == "NewReplicaSetAvailable"
    )
    return status if done else None


def test_deployment_rolls_out_scales_and_versions(behaviours: Behaviours) -> None:
    store = behaviours.store
    store.create("deployments", "default", _deployment("web", 3, "1.0"))
    status = eventually(lambda: _complete(behaviours, "web", 3), "first rollout complete")
    assert condition({"status": status}, "Available")["reason"] == "MinimumReplicasAvailable"  # type: ignore[index]
    pods = _pods(behaviours, "web")
    assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2", "node-3"}
    assert {(http_get(p["status"]["podIP"], 8080) or (0, {}))[1].get("version") for p in pods} == {"1.0"}
    deployment = store.get("deployments", "default", "web")
    assert deployment is not None
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    store.patch("deployments", "default", "web", {"spec": {"replicas": 2}}, STRATEGIC_MERGE_PATCH, subresource="scale")
    eventually(lambda: _complete(behaviours, "web", 2), "scaled down to 2")

    store.patch(
        "deployments",
        "default",
        "web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "example/web:2.0"}]}}}},
        STRATEGIC_MERGE_PATCH,
    )
    eventually(lambda: _complete(behaviours, "web", 2), "second rollout complete")

    def all_new() -> list[dict[str, Any]] | None:
        live = [p for p in _pods(behaviours, "web") if not p["metadata"].get("deletionTimestamp")]
        versions = {(http_get(p["status"].get("podIP", ""), 8080) or (0, {}))[1].get("version") for p in live}
        return live if len(live) == 2 and versions == {"2.0"} else None

    eventually(all_new, "two Pods serving 2.0")
    rss, _ = store.list("replicasets", "default", label_selector="app=web")
    revisions = sorted(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in rss)
    assert revisions == ["1", "2"]
    old = next(rs for rs in rss if rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1")
    assert old["spec"]["replicas"] == 0


def test_gate_that_stays_false_stalls_at_surge_and_exceeds_the_deadline(behaviours: Behaviours) -> None:
    store = behaviours.store
    body = _deployment(
        "stuck",
        2,
        "1.0",
        progressDeadlineSeconds=2,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    )
    store.create("deployments", "default", body)
    eventually(lambda: _complete(behaviours, "stuck", 2), "first rollout complete")
    body["spec"]["template"]["spec"]["readinessGates"] = [{"conditionType": GATE}]
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "example/stuck:2.0"
    store.patch(
        "deployments", "default", "stuck", {"spec": {"template": body["spec"]["template"]}}, STRATEGIC_MERGE_PATCH
    )

    def timed_out() -> dict[str, Any] | None:
        progressing = condition({"status": _deployment_status(behaviours, "stuck")}, "Progressing") or {}
        return progressing if progressing.get("reason") == "ProgressDeadlineExceeded" else None

    progressing = eventually(timed_out, "ProgressDeadlineExceeded")
    assert progressing["status"] == "False"
    live = [p for p in _pods(behaviours, "stuck") if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 3  # R + maxSurge, no old Pod removed
    status = _deployment_status(behaviours, "stuck")
    assert (status["updatedReplicas"], status["availableReplicas"]) == (1, 2)

    gated = next(p for p in live if p["spec"].get("readinessGates"))
    store.patch(
        "pods",
        "default",
        gated["metadata"]["name"],
        {"status": {"conditions": [{"type": GATE, "status": "True"}]}},
        STRATEGIC_MERGE_PATCH,
        subresource="status",
    )

    def progressing_again() -> dict[str, Any] | None:
        cond = condition({"status": _deployment_status(behaviours, "stuck")}, "Progressing") or {}
        return cond if cond.get("status") == "True" else None

    assert eventually(progressing_again, "progress after the gate flip")["reason"] == "ReplicaSetUpdated"


def test_min_ready_seconds_delays_availability(behaviours: Behaviours) -> None:
    store = behaviours.store
    store.create("deployments", "default", _deployment("slow", 1, "1.0", minReadySeconds=3))

    def ready_but_unavailable() -> dict[str, Any] | None:
        status = _deployment_status(behaviours, "slow")
        return status if status.get("readyReplicas") == 1 and status.get("availableReplicas") == 0 else None

    eventually(ready_but_unavailable, "ready but not yet available", timeout=20)
    eventually(lambda: _complete(behaviours, "slow", 1), "available after minReadySeconds")
    rs = store.list("replicasets", "default", label_selector="app=slow")[0][0]
    assert rs["spec"]["minReadySeconds"] == 3
    assert rs["status"]["availableReplicas"] == 1
