"""Contract: every emulator response carries exactly the fields the SDK's own response models define.

Each action is called through `ClbClient.call_json` (raw JSON), the `Response` object is deserialised into
the SDK model, and its keys are compared with the model's attributes, recursing into nested models.
"""

from __future__ import annotations

from typing import Any

import pytest
from tencentcloud.clb.v20180317 import models
from tencentcloud.common.abstract_model import AbstractModel
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.contract.conftest import Harness


def _fields(model: AbstractModel) -> set[str]:
    return {name[1:] for name in vars(model) if name.startswith("_") and name != "_headers"}


def assert_shape(data: dict[str, Any], model_cls: type[AbstractModel], path: str) -> int:
    """Compare keys recursively; returns how many objects were checked."""
    model = model_cls()
    expected = _fields(model)
    assert set(data) - expected == set(), f"{path}: fields unknown to the SDK: {sorted(set(data) - expected)}"
    assert expected - set(data) == set(), f"{path}: fields the SDK defines are missing: {sorted(expected - set(data))}"
    model._deserialize(data)
    checked = 1
    for key, value in data.items():
        attr = getattr(model, key)
        if isinstance(attr, AbstractModel):
            checked += assert_shape(value, type(attr), f"{path}.{key}")
        elif isinstance(attr, list) and attr and isinstance(attr[0], AbstractModel):
            for index, item in enumerate(value):
                checked += assert_shape(item, type(attr[0]), f"{path}.{key}[{index}]")
    return checked


def _call(clb: Harness, action: str, params: dict[str, Any]) -> tuple[dict[str, Any], int]:
    response = clb.client.call_json(action, params)["Response"]
    return response, assert_shape(response, getattr(models, f"{action}Response"), action)


def test_every_action_answers_with_the_sdk_model_fields(clb: Harness) -> None:
    created, _ = _call(
        clb, "CreateLoadBalancer", {"LoadBalancerType": "OPEN", "Tags": [{"TagKey": "a", "TagValue": "b"}]}
    )
    lb_id = created["LoadBalancerIds"][0]
    _call(clb, "DescribeTaskStatus", {"TaskId": created["RequestId"]})
    clb.finish_tasks()
    listener, _ = _call(clb, "CreateListener", {"LoadBalancerId": lb_id, "Ports": [80], "Protocol": "TCP"})
    listener_id = listener["ListenerIds"][0]
    clb.finish_tasks()
    target = {"EniIp": "127.2.0.1", "Port": 8080}
    _call(clb, "RegisterTargets", {"LoadBalancerId": lb_id, "ListenerId": listener_id, "Targets": [target]})
    clb.finish_tasks()
    batch = {"LoadBalancerId": lb_id, "Targets": [{"ListenerId": listener_id, "EniIp": "127.2.0.2", "Port": 8080}]}
    _call(clb, "BatchRegisterTargets", batch)
    checked = {
        "DescribeLoadBalancers": _call(clb, "DescribeLoadBalancers", {"LoadBalancerIds": [lb_id]})[1],
        "DescribeListeners": _call(clb, "DescribeListeners", {"LoadBalancerId": lb_id})[1],
        "DescribeTargets": _call(clb, "DescribeTargets", {"LoadBalancerId": lb_id})[1],
        "DescribeTargetHealth": _call(clb, "DescribeTargetHealth", {"LoadBalancerIds": [lb_id]})[1],
    }
    # Nested objects were really inspected: LoadBalancer + Tag; Listener + HealthCheck; backends; health tree.
    assert checked == {
        "DescribeLoadBalancers": 3,
        "DescribeListeners": 3,
        "DescribeTargets": 4,
        "DescribeTargetHealth": 6,
    }
    _call(
        clb,
        "ModifyTargetWeight",
        {"LoadBalancerId": lb_id, "ListenerId": listener_id, "Targets": [target], "Weight": 5},
    )
    clb.finish_tasks()
    rule = {"ListenerId": listener_id, "Targets": [target], "Weight": 6}
    _call(clb, "BatchModifyTargetWeight", {"LoadBalancerId": lb_id, "ModifyList": [rule]})
    clb.finish_tasks()
    _call(clb, "BatchDeregisterTargets", batch)
    _call(clb, "DeregisterTargets", {"LoadBalancerId": lb_id, "ListenerId": listener_id, "Targets": [target]})
    clb.finish_tasks()
    _call(clb, "ModifyListener", {"LoadBalancerId": lb_id, "ListenerId": listener_id, "ListenerName": "x"})
    clb.finish_tasks()
    _call(clb, "DeleteListener", {"LoadBalancerId": lb_id, "ListenerId": listener_id})
    clb.finish_tasks()
    _call(clb, "DeleteLoadBalancer", {"LoadBalancerIds": [lb_id]})


def test_error_shape_carries_code_message_and_request_id(clb: Harness) -> None:
    with pytest.raises(TencentCloudSDKException) as info:
        clb.client.call_json("DescribeListeners", {"LoadBalancerId": "lb-missing0"})
    assert info.value.get_code() == "InvalidParameter.LBIdNotFound"
    assert "lb-missing0" in info.value.get_message()
    assert info.value.get_request_id() == clb.model.calls()["calls"][-1]["request_id"]
