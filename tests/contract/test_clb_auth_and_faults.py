"""Contract: TC3 signature failures and injected faults, as the real SDK experiences them."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from tencentcloud.common import abstract_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.contract.conftest import SECRET_ID, SECRET_KEY, TEMP_ID, TEMP_KEY, TEMP_TOKEN, Harness


def test_wrong_secret_key_fails_the_signature(clb: Harness) -> None:
    client = clb.make_client(SECRET_ID, "not-the-key")
    assert clb.error("DescribeLoadBalancers", {}, client) == "AuthFailure.SignatureFailure"


def test_unknown_secret_id(clb: Harness) -> None:
    client = clb.make_client("AKIDnobody", SECRET_KEY)
    assert clb.error("DescribeLoadBalancers", {}, client) == "AuthFailure.SecretIdNotFound"


def test_stale_timestamp_expires_the_signature(clb: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK stamps X-TC-Timestamp from its module's `time.time()`; make it sign 10 minutes in the past.
    monkeypatch.setattr(abstract_client, "time", SimpleNamespace(time=lambda: time.time() - 600))
    assert clb.error("DescribeLoadBalancers", {}) == "AuthFailure.SignatureExpire"


def test_temporary_credentials_need_their_token(clb: Harness) -> None:
    assert clb.call("DescribeLoadBalancers", {}, clb.make_client(TEMP_ID, TEMP_KEY, TEMP_TOKEN)).TotalCount == 0
    assert clb.error("DescribeLoadBalancers", {}, clb.make_client(TEMP_ID, TEMP_KEY)) == "AuthFailure.TokenFailure"
    wrong = clb.make_client(TEMP_ID, TEMP_KEY, "other-token")
    assert clb.error("DescribeLoadBalancers", {}, wrong) == "AuthFailure.TokenFailure"


def test_token_with_permanent_credentials_is_refused(clb: Harness) -> None:
    client = clb.make_client(SECRET_ID, SECRET_KEY, "stray-token")
    assert clb.error("DescribeLoadBalancers", {}, client) == "AuthFailure.TokenFailure"


def test_rejected_requests_change_nothing_and_are_logged(clb: Harness) -> None:
    client = clb.make_client(SECRET_ID, "not-the-key")
    assert clb.error("CreateLoadBalancer", {"LoadBalancerType": "OPEN"}, client) == "AuthFailure.SignatureFailure"
    assert clb.model.export_state()["load_balancers"] == []
    assert clb.model.calls()["calls"][-1]["error_code"] == "AuthFailure.SignatureFailure"


def test_injected_error_code(clb: Harness) -> None:
    clb.model.set_fault({"action": "DescribeLoadBalancers", "error_code": "InternalError", "count": 1})
    assert clb.error("DescribeLoadBalancers", {}) == "InternalError"
    assert clb.call("DescribeLoadBalancers", {}).TotalCount == 0


def test_dropped_response_after_apply_is_a_network_error(clb: Harness) -> None:
    lb_id, listener_id = clb.lb_with_listener()
    clb.model.set_fault({"action": "BatchRegisterTargets", "drop_response": True, "count": 1})
    payload = {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": listener_id, "EniIp": "127.2.0.1", "Port": 80}]}
    with pytest.raises(TencentCloudSDKException) as info:
        clb.call("BatchRegisterTargets", payload)
    assert info.value.get_code() == "ClientNetworkError"
    listeners = clb.call("DescribeTargets", {"LoadBalancerId": lb_id}).Listeners
    assert [t.PrivateIpAddresses[0] for t in listeners[0].Targets] == ["127.2.0.1"]
    assert clb.model.calls()["calls"][-2]["dropped"] is True


def test_dropped_response_as_http_5xx(clb: Harness) -> None:
    clb.model.set_fault({"action": "CreateLoadBalancer", "drop_response": True, "drop_status": 502, "count": 1})
    with pytest.raises(TencentCloudSDKException) as info:
        clb.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN"})
    assert info.value.get_code() == "ServerNetworkError"
    assert len(clb.model.export_state()["load_balancers"]) == 1


def test_fault_rate_is_seeded_and_repeatable(clb: Harness) -> None:
    def pattern() -> list[bool]:
        clb.model.set_fault({"action": "DescribeTaskStatus", "error_code": "InternalError", "rate": 0.5, "seed": 7})
        outcome = []
        for _ in range(12):
            try:
                clb.call("DescribeTaskStatus", {"TaskId": task})
                outcome.append(True)
            except TencentCloudSDKException as exc:
                assert exc.get_code() == "InternalError"
                outcome.append(False)
        clb.clock.advance(1.0)
        return outcome

    task = clb.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN"}).RequestId
    first = pattern()
    assert pattern() == first
    assert True in first and False in first


def test_added_latency_delays_the_answer(clb: Harness) -> None:
    clb.model.set_fault({"action": "DescribeLoadBalancers", "latency_s": 0.2})
    started = time.monotonic()
    clb.call("DescribeLoadBalancers", {})
    assert time.monotonic() - started >= 0.2
