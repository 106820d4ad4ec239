"""The CLB emulator as a real HTTP server: admin endpoints, real-time tasks, concurrency, restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from tencentcloud.clb.v20180317 import clb_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.server import ClbEmulatorServer

DEADLINE_S = 30


@pytest.fixture
def server() -> Iterator[ClbEmulatorServer]:
    model = ClbModel(ClbEmulatorConfig(task_duration_s=0.05))
    srv = ClbEmulatorServer(model, "127.0.0.1", 0, credentials={"AKID": "key"}).start()
    try:
        yield srv
    finally:
        srv.stop()


def _client(srv: ClbEmulatorServer, key: str = "key") -> clb_client.ClbClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=srv.endpoint))
    return clb_client.ClbClient(credential.Credential("AKID", key), "ap-guangzhou", profile)


def _call(client: clb_client.ClbClient, action: str, payload: dict[str, Any]) -> Any:
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(payload))
    return getattr(client, action)(request)


def _wait_task(client: clb_client.ClbClient, task_id: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while _call(client, "DescribeTaskStatus", {"TaskId": task_id}).Status == 2:
        assert time.monotonic() < deadline, f"task {task_id} still running after {DEADLINE_S}s"
        time.sleep(0.02)


def test_real_clock_tasks_finish_and_unlock(server: ClbEmulatorServer) -> None:
    client = _client(server)
    created = _call(client, "CreateLoadBalancer", {"LoadBalancerType": "OPEN"})
    _wait_task(client, created.RequestId)
    lb_id = created.LoadBalancerIds[0]
    listener = _call(client, "CreateListener", {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP"})
    _wait_task(client, listener.RequestId)
    assert _call(client, "DescribeListeners", {"LoadBalancerId": lb_id}).TotalCount == 1
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0


def test_admin_seed_state_calls_reset(server: ClbEmulatorServer) -> None:
    seed = {"load_balancers": [{"LoadBalancerId": "lb-admin001", "Listeners": [{"Protocol": "TCP", "Port": 80}]}]}
    assert requests.post(f"{server.url}/_emulator/seed", json=seed, timeout=10).json() == {
        "ok": True,
        "load_balancers": 1,
    }
    client = _client(server)
    assert _call(client, "DescribeLoadBalancers", {}).LoadBalancerSet[0].LoadBalancerId == "lb-admin001"
    state = requests.get(f"{server.url}/_emulator/state", timeout=10).json()
    assert state["load_balancers"][0]["Listeners"][0]["Port"] == 80
    calls = requests.get(f"{server.url}/_emulator/calls", timeout=10).json()
    assert calls["counts"] == {"DescribeLoadBalancers": 1}
    assert requests.post(f"{server.url}/_emulator/reset", timeout=10).json() == {"ok": True}
    assert requests.get(f"{server.url}/_emulator/state", timeout=10).json()["load_balancers"] == []


def test_admin_faults_and_config(server: ClbEmulatorServer) -> None:
    rule = {"action": "DescribeLoadBalancers", "error_code": "InternalError", "rate": 1.0, "seed": 7}
    listed = requests.post(f"{server.url}/_emulator/faults", json=rule, timeout=10).json()["faults"]
    assert listed[0]["action"] == "DescribeLoadBalancers"
    client = _client(server)
    with pytest.raises(TencentCloudSDKException) as info:
        _call(client, "DescribeLoadBalancers", {})
    assert info.value.get_code() == "InternalError"
    assert requests.delete(f"{server.url}/_emulator/faults", timeout=10).json() == {"faults": []}
    _call(client, "DescribeLoadBalancers", {})
    config = requests.post(
        f"{server.url}/_emulator/config", json={"rate_limits": {"DescribeLoadBalancers": 1}}, timeout=10
    )
    assert config.json()["rate_limits"] == {"DescribeLoadBalancers": 1}
    assert requests.get(f"{server.url}/_emulator/config", timeout=10).json()["backend_quota"] == 200
    with pytest.raises(TencentCloudSDKException) as info:
        _call(client, "DescribeLoadBalancers", {})
        _call(client, "DescribeLoadBalancers", {})
    assert info.value.get_code() == "RequestLimitExceeded"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/_emulator/seed", b"[1]", 400),
        ("post", "/_emulator/faults", b"{bad", 400),
        ("post", "/_emulator/faults", b'{"action": "X", "rate": 7}', 400),
        ("post", "/_emulator/config", b'{"nope": 1}', 400),
        ("get", "/_emulator/nothing", b"", 404),
        ("get", "/elsewhere", b"", 404),
    ],
)
def test_admin_errors(server: ClbEmulatorServer, method: str, path: str, body: bytes, status: int) -> None:
    response = getattr(requests, method)(f"{server.url}{path}", data=body, timeout=10)
    assert response.status_code == status


def test_concurrent_clients_see_one_consistent_model(server: ClbEmulatorServer) -> None:
    client = _client(server)
    created = _call(client, "CreateLoadBalancer", {"LoadBalancerType": "OPEN"})
    _wait_task(client, created.RequestId)
    lb_id = created.LoadBalancerIds[0]
    listener = _call(client, "CreateListener", {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP"})
    _wait_task(client, listener.RequestId)
    listener_id = listener.ListenerIds[0]
    server.model.update_config({"rate_limit_per_s": 1000})

    def bind(worker: int) -> None:
        own = _client(server)
        targets = [{"ListenerId": listener_id, "EniIp": f"127.2.{worker}.{i + 1}", "Port": 80} for i in range(10)]
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                _call(own, "BatchRegisterTargets", {"LoadBalancerId": lb_id, "Targets": targets})
                return
            except TencentCloudSDKException as exc:
                assert exc.get_code() == "FailedOperation.ResourceInOperating" and time.monotonic() < deadline
                time.sleep(0.01)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(bind, range(8)))
    described = _call(client, "DescribeTargets", {"LoadBalancerId": lb_id}).Listeners[0].Targets
    assert len(described) == 80


def test_bad_signature_over_http_and_restart(server: ClbEmulatorServer) -> None:
    with pytest.raises(TencentCloudSDKException) as info:
        _call(_client(server, "wrong"), "DescribeLoadBalancers", {})
    assert info.value.get_code() == "AuthFailure.SignatureFailure"
    server.stop()
    server.stop()
    server.start()
    assert _call(_client(server), "DescribeLoadBalancers", {}).TotalCount == 0
