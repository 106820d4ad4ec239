"""Scheduler + kubelet against the real object store: IPs, real Pod servers, Ready, faults, deletion."""

from __future__ import annotations

import socket
from typing import Any

from emulators.cluster.ipam import PodIpam
from emulators.cluster.patching import STRATEGIC_MERGE_PATCH
from emulators.cluster.termination import ON_SIGTERM_ANNOTATION
from tests.integration.cluster_sim.conftest import Behaviours, condition, http_get, running_behaviours
from tests.support.polling import eventually

GATE = "cloud.tencent.com/load-balancer-backendgroup-ready"


def _pod(name: str, *, gate: bool = False, version: str = "v1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "example/web:tag-ignored",
                    "env": [{"name": "VERSION", "value": version}],
                    "ports": [{"containerPort": 8080}, {"containerPort": 9090}],
                }
            ],
            **spec,
        },
    }
    if gate:
        body["spec"]["readinessGates"] = [{"conditionType": GATE}]
    return body


def _ready_pod(behaviours: Behaviours, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod = behaviours.pod(name)
        ready = condition(pod, "Ready")
        return pod if ready and ready["status"] == "True" else None

    return eventually(probe, f"pod {name} Ready")


def test_pod_is_scheduled_served_and_ready(behaviours: Behaviours) -> None:
    behaviours.store.create("pods", "default", _pod("solo", version="v7"))
    pod = _ready_pod(behaviours, "solo")
    status = pod["status"]
    assert pod["spec"]["nodeName"] == "node-1"
    assert status["phase"] == "Running"
    assert status["podIP"].startswith("127.10.")
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == "127.0.20.1"
    assert status["containerStatuses"][0]["ready"] is True
    assert {c["type"] for c in status["conditions"]} == {
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    }
    for port in (8080, 9090):
        code, body = http_get(status["podIP"], port, "/anything?x=1") or (0, {})
        assert code == 200
        assert body["pod"] == "solo"
        assert body["version"] == "v7"
        assert body["port"] == port


def test_readiness_gate_holds_ready_until_its_condition_is_true(behaviours: Behaviours) -> None:
    store = behaviours.store
    store.create("pods", "default", _pod("gated", gate=True))

    def containers_ready() -> dict[str, Any] | None:
        pod = behaviours.pod("gated")
        cr = condition(pod, "ContainersReady")
        return pod if cr and cr["status"] == "True" else None

    pod = eventually(containers_ready, "containers ready")
    ready = condition(pod, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["reason"] == "ReadinessGatesNotReady"
    assert ready["message"] == f'corresponding condition of pod readiness gate "{GATE}" does not exist.'
    assert http_get(pod["status"]["podIP"], 8080) is not None  # serving although not Ready
    containers_since = condition(pod, "ContainersReady")["lastTransitionTime"]  # type: ignore[index]

    store.patch(
        "pods",
        "default",
        "gated",
        {"status": {"conditions": [{"type": GATE, "status": "True", "reason": "LoadBalancerNetworkGroupReady"}]}},
        STRATEGIC_MERGE_PATCH,
        subresource="status",
    )
    pod = _ready_pod(behaviours, "gated")
    assert condition(pod, GATE)["reason"] == "LoadBalancerNetworkGroupReady"  # type: ignore[index]
    assert condition(pod, "ContainersReady")["lastTransitionTime"] == containers_since  # type: ignore[index]

    store.patch(
        "pods",
        "default",
        "gated",
        {"status": {"conditions": [{"type": GATE, "status": "False"}]}},
        STRATEGIC_MERGE_PATCH,
        subresource="status",
    )
    eventually(
        lambda: (condition(behaviours.pod("gated"), "Ready") or {}).get("status") == "False",
        "Ready to flip back to False",
    )


def test_crash_and_readiness_faults_then_restore(behaviours: Behaviours) -> None:
    behaviours.store.create("pods", "default", _pod("faulty"))
    ip = _ready_pod(behaviours, "faulty")["status"]["podIP"]

    behaviours.kubelet.fail_readiness("default", "faulty")
    eventually(lambda: (condition(behaviours.pod("faulty"), "Ready") or {}).get("status") == "False", "unready")
    assert (http_get(ip, 8080, "/ready") or (0,))[0] == 503
    assert (http_get(ip, 8080, "/other") or (0,))[0] == 200

    behaviours.kubelet.crash_container("default", "faulty")
    assert http_get(ip, 8080) is None
    pod = eventually(
        lambda: (p := behaviours.pod("faulty")) and "terminated" in p["status"]["containerStatuses"][0]["state"] and p,
        "container reported terminated",
    )
    assert pod["status"]["containerStatuses"][0]["ready"] is False

    behaviours.kubelet.restore("default", "faulty")
    pod = _ready_pod(behaviours, "faulty")
    container = pod["status"]["containerStatuses"][0]
    assert container["restartCount"] == 1
    assert container["lastState"]["terminated"]["reason"] == "Error"
    assert (http_get(ip, 8080, "/ready") or (0,))[0] == 200


def test_graceful_deletion_drains_then_removes(behaviours: Behaviours) -> None:
    store = behaviours.store
    leaving = _pod("leaving")
    # An app that keeps serving after SIGTERM (the default app model exits at once).
    leaving["metadata"]["annotations"] = {ON_SIGTERM_ANNOTATION: "serve:30"}
    store.create("pods", "default", leaving)
    ip = _ready_pod(behaviours, "leaving")["status"]["podIP"]
    store.delete("pods", "default", "leaving")  # grace 30 s, capped to 1 s by the fixture's kubelet (+2 s minimum)
    pod = eventually(
        lambda: (p := behaviours.pod("leaving")) and condition(p, "Ready")["status"] == "False" and p,  # type: ignore[index]
        "Ready False while terminating",
    )
    assert pod["metadata"]["deletionTimestamp"]
    assert http_get(ip, 8080) is not None  # still serving during the grace period
    eventually(lambda: behaviours.pod("leaving") is None, "pod removed after the grace period")
    eventually(lambda: http_get(ip, 8080) is None, "server stopped")


def test_host_network_and_global_router_addresses(behaviours: Behaviours) -> None:
    store = behaviours.store
    store.create("pods", "default", _pod("host", hostNetwork=True))
    gr = _pod("gr")
    gr["metadata"]["annotations"] = {"tke.cloud.tencent.com/networks": "tke-bridge"}
    gr["spec"]["containers"][0]["ports"] = [{"containerPort": 8081}]
    store.create("pods", "default", gr)
    host = _ready_pod(behaviours, "host")
    assert host["status"]["podIP"] == host["status"]["hostIP"]
    routed = _ready_pod(behaviours, "gr")
    node_index = routed["spec"]["nodeName"].split("-")[1]
    assert routed["status"]["podIP"].startswith(f"127.20.{node_index}.")
    assert (http_get(routed["status"]["podIP"], 8081) or (0, {}))[1]["pod"] == "gr"


def test_busy_ports_are_avoided_or_retried() -> None:
    """Another process listening on a Pod's IP:port (e.g. a parallel test run) must not wedge the Pod."""
    with socket.socket() as squatter, socket.socket() as host_squatter:
        squatter.bind(("127.10.0.2", 8080))
        squatter.listen()
        host_squatter.bind(("127.0.20.1", 8080))
        host_squatter.listen()
        with running_behaviours(PodIpam(3, first_offset=0)) as behaviours:
            behaviours.store.create("pods", "default", _pod("moved"))
            assert _ready_pod(behaviours, "moved")["status"]["podIP"] == "127.10.0.3"  # .2 is taken
            behaviours.store.create("pods", "default", _pod("host", hostNetwork=True, nodeName="node-1"))

            def waiting() -> dict[str, Any] | None:
                pod = behaviours.pod("host")
                statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
                state = statuses[0].get("state", {}).get("waiting") or {}
                return state if state.get("reason") == "RunContainerError" else None

            assert "Address already in use" in eventually(waiting, "host Pod waiting on its busy port")["message"]
            host_squatter.close()  # the port frees up: the kubelet's retry starts the container
            assert _ready_pod(behaviours, "host")["status"]["podIP"] == "127.0.20.1"
