"""The CLB emulator end to end through the real tencentcloud SDK: real probes, real traffic, callbacks.

Two HTTP backends on their own loopback IPs are bound to a TCP listener (HTTP health check) created with
`ClbClient`; the test watches them turn Alive within the CLB's bound, drives traffic through the VIP,
kills one and then the other, and checks health (DescribeTargetHealth), traffic and notifications agree.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tencentcloud.clb.v20180317 import clb_client, models
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from emulators.clb.app import ClbEmulator, ClbEmulatorOptions
from emulators.clb.dataplane import SIGNATURE_HEADER
from tests.integration.clb_dataplane.conftest import Backend, CallbackReceiver, fetch
from tests.support.net import free_port
from tests.support.polling import eventually

SECRET_ID, SECRET_KEY, NOTIFY_SECRET = "AKIDemulator0001", "emulator-secret-key", "notify-secret"
INTERVAL_S, HEALTH_NUM, UNHEALTH_NUM = 3, 2, 2


@pytest.fixture
def emulator(callback_receiver: CallbackReceiver) -> Iterator[ClbEmulator]:
    options = ClbEmulatorOptions(
        secret_id=SECRET_ID, secret_key=SECRET_KEY, notify_url=callback_receiver.url, notify_secret=NOTIFY_SECRET
    )
    with ClbEmulator(options) as running:
        yield running


@pytest.fixture
def clb(emulator: ClbEmulator) -> Callable[..., dict[str, Any]]:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emulator.endpoint, reqTimeout=30))
    client = clb_client.ClbClient(credential.Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile)

    def call(action: str, **params: Any) -> dict[str, Any]:
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(params))
        result: dict[str, Any] = json.loads(getattr(client, action)(request).to_json_string())
        return result

    return call


def wait_task(clb: Callable[..., dict[str, Any]], request_id: str) -> None:
    eventually(lambda: clb("DescribeTaskStatus", TaskId=request_id)["Status"] == 0, f"task {request_id}")


def target_health(clb: Callable[..., dict[str, Any]], lb_id: str) -> dict[str, str]:
    health = {}
    for lb in clb("DescribeTargetHealth", LoadBalancerIds=[lb_id])["LoadBalancers"] or []:
        for listener in lb["Listeners"] or []:
            for rule in listener.get("Rules") or []:
                for target in rule["Targets"] or []:
                    health[f"{target['IP']}:{target['Port']}"] = target["HealthStatusDetail"]
    return health


def admin(emulator: ClbEmulator, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    url = f"{emulator.admin_url}/_emulator/{path}"
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def vip_refuses(vip: str, port: int) -> bool:
    try:
        fetch(vip, port)
    except (ConnectionError, http.client.HTTPException):
        return True
    return False


def test_health_traffic_and_notifications_through_the_sdk(
    emulator: ClbEmulator,
    clb: Callable[..., dict[str, Any]],
    backends: Callable[[str, str], Backend],
    callback_receiver: CallbackReceiver,
) -> None:
    one, two = backends("127.0.10.1", "one"), backends("127.0.10.2", "two")
    lb_id = clb("CreateLoadBalancer", LoadBalancerType="OPEN", LoadBalancerName="dataplane-it")["LoadBalancerIds"][0]
    eventually(
        lambda: clb("DescribeLoadBalancers", LoadBalancerIds=[lb_id])["LoadBalancerSet"][0]["Status"] == 1,
        "CLB active",
    )
    vip = clb("DescribeLoadBalancers", LoadBalancerIds=[lb_id])["LoadBalancerSet"][0]["LoadBalancerVips"][0]
    port = free_port(vip)
    created = clb(
        "CreateListener",
        LoadBalancerId=lb_id,
        Ports=[port],
        Protocol="TCP",
        ListenerNames=["web"],
        HealthCheck={
            "HealthSwitch": 1,
            "IntervalTime": INTERVAL_S,
            "TimeOut": 2,
            "HealthNum": HEALTH_NUM,
            "UnHealthNum": UNHEALTH_NUM,
            "CheckType": "HTTP",
            "HttpCheckDomain": "web.local",
            "HttpCheckPath": "/healthz",
            "HttpCheckMethod": "GET",
            "HttpCode": 2,
        },
    )
    wait_task(clb, created["RequestId"])
    listener_id = created["ListenerIds"][0]
    registered = clb(
        "RegisterTargets",
        LoadBalancerId=lb_id,
        ListenerId=listener_id,
        Targets=[{"EniIp": b.ip, "Port": b.port, "Weight": 10} for b in (one, two)],
    )
    wait_task(clb, registered["RequestId"])
    key_one, key_two = f"{one.ip}:{one.port}", f"{two.ip}:{two.port}"

    eventually(lambda: target_health(clb, lb_id) == {key_one: "Alive", key_two: "Alive"}, "both Alive")

    served = Counter(fetch(vip, port) for _ in range(200))
    assert set(served) == {"one", "two"} and abs(served["one"] - served["two"]) <= 2, served

    two.stop()
    eventually(lambda: target_health(clb, lb_id)[key_two] == "Dead", "stopped backend Dead")
    eventually(lambda: admin(emulator, "dataplane")["listeners"][listener_id]["eligible"] == [key_one], "proxy")
    assert Counter(fetch(vip, port) for _ in range(50)) == {"one": 50}

    eventually(lambda: len(callback_receiver.received) >= 3, "three notifications")
    events = callback_receiver.events()
    assert [(e["target"]["ip"], e["oldStatus"], e["newStatus"]) for e in events[2:]] == [
        ("127.0.10.2", "Alive", "Dead")
    ]
    assert sorted((e["target"]["ip"], e["oldStatus"], e["newStatus"]) for e in events[:2]) == [
        ("127.0.10.1", "Unknown", "Alive"),
        ("127.0.10.2", "Unknown", "Alive"),
    ]
    for event, headers, raw in callback_receiver.received:
        assert event["type"] == "TargetHealthChanged"
        assert (event["loadBalancerId"], event["listenerId"]) == (lb_id, listener_id)
        assert (event["protocol"], event["port"], event["region"]) == ("TCP", port, "ap-guangzhou")
        signed = f"{headers['X-Emulator-Timestamp']}.{headers['X-Emulator-Nonce']}.".encode() + raw
        expected = "sha256=" + hmac.new(NOTIFY_SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    assert [e["sequence"] for e in events] == sorted({e["sequence"] for e in events})

    # Notifications off: the polling path (DescribeTargetHealth) still sees the change, no callback arrives.
    assert admin(emulator, "notifications", {"enabled": False})["enabled"] is False
    one.stop()
    eventually(lambda: target_health(clb, lb_id)[key_one] == "Dead", "last backend Dead")
    eventually(lambda: admin(emulator, "notifications")["counters"]["suppressed"] == 1, "transition suppressed")
    assert len(callback_receiver.received) == 3

    # No healthy target left: the VIP resets every connection.
    eventually(lambda: admin(emulator, "dataplane")["listeners"][listener_id]["eligible"] == [], "none eligible")
    assert vip_refuses(vip, port)
    assert admin(emulator, "dataplane")["listeners"][listener_id]["refused"] >= 1

    clb("DeleteLoadBalancer", LoadBalancerIds=[lb_id])
    eventually(lambda: listener_id not in admin(emulator, "dataplane")["listeners"], "listener stopped")
