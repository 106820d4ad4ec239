"""The shared dispatcher's request checks and reply format, and the `responses` fake end to end."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tencentcloud.clb.v20180317 import clb_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from emulators.clb.api import ClbApi, RawRequest
from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from shared.clock import FakeClock

GOOD_HEADERS = {
    "X-TC-Action": "DescribeLoadBalancers",
    "X-TC-Version": "2018-03-17",
    "Content-Type": "application/json",
}


def _reply(
    headers: dict[str, str], body: bytes = b"{}", method: str = "POST"
) -> tuple[int, dict[str, str], dict[str, Any]]:
    api = ClbApi(ClbModel(clock=FakeClock().monotonic), signature_check=False)
    reply = api.handle(RawRequest(method, "/", "", headers, body))
    return reply.status, reply.headers, json.loads(reply.body)["Response"]


def test_good_request_gets_json_with_exact_content_type() -> None:
    status, headers, response = _reply(GOOD_HEADERS)
    assert (status, headers["Content-Type"], response["TotalCount"]) == (200, "application/json", 0)
    assert response["RequestId"]


@pytest.mark.parametrize(
    ("change", "body", "method", "code"),
    [
        ({"X-TC-Action": ""}, b"{}", "POST", "MissingParameter"),
        ({"X-TC-Version": "2017-03-12"}, b"{}", "POST", "NoSuchVersion"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"{}", "POST", "UnsupportedOperation"),
        ({}, b"{not json", "POST", "InvalidParameter.FormatError"),
        ({}, b"[1, 2]", "POST", "InvalidParameter.FormatError"),
        ({}, b"", "GET", "UnsupportedOperation"),
        ({"X-TC-Action": "RunInstances"}, b"{}", "POST", "InvalidAction"),
    ],
)
def test_refusals(change: dict[str, str], body: bytes, method: str, code: str) -> None:
    status, headers, response = _reply({**GOOD_HEADERS, **change}, body, method)
    assert (status, headers["Content-Type"], response["Error"]["Code"]) == (200, "application/json", code)


def test_signature_is_required_when_checking() -> None:
    api = ClbApi(ClbModel(clock=FakeClock().monotonic), {"AKID": "key"})
    reply = api.handle(RawRequest("POST", "/", "", GOOD_HEADERS, b"{}"))
    assert json.loads(reply.body)["Response"]["Error"]["Code"] == "AuthFailure.InvalidAuthorization"


def test_clb_fake_serves_the_sdk_in_process_with_any_key_when_unchecked() -> None:
    clock = FakeClock()
    with clb_fake(config=ClbEmulatorConfig(task_duration_s=0), clock=clock.monotonic) as (model, endpoint):
        assert endpoint == "clb.tencentcloudapi.com"
        client = clb_client.ClbClient(credential.Credential("any", "thing"), "ap-guangzhou")
        request = models.CreateLoadBalancerRequest()
        request.from_json_string(json.dumps({"LoadBalancerType": "OPEN"}))
        lb_id = client.CreateLoadBalancer(request).LoadBalancerIds[0]
        assert model.export_state()["load_balancers"][0]["LoadBalancerId"] == lb_id
        model.set_fault({"action": "DescribeLoadBalancers", "drop_response": True})
        with pytest.raises(TencentCloudSDKException) as info:
            client.DescribeLoadBalancers(models.DescribeLoadBalancersRequest())
        assert info.value.get_code() == "ClientNetworkError"
