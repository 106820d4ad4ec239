from __future__ import annotations

import json
from typing import Any

import pytest

from emulators.clb.model import ClbModel
from functions.health import handler as health_handler
from shared.deps import Deps
from shared.domain.models import BindingRecord
from shared.events.health import AlarmCallback, TargetHealthChanged
from shared.health import on_alarm, on_target_health_changed, poll_pending
from shared.keys import gate_key
from tests.conftest import load_event
from tests.support.clb import seeded_lb
from tests.support.fakes import StepQueue


def health_calls(model: ClbModel) -> int:
    # The emulator refuses more than 30 LoadBalancerIds per DescribeTargetHealth, as the real API does.
    return int(model.calls()["counts"].get("DescribeTargetHealth", 0))


def bind(store: Any, lb: str, uid: str, ip: str, *, listener: str = "lbl-1", state: str = "registered") -> None:
    store.put_binding(
        BindingRecord(
            lb_id=lb,
            listener_id=listener,
            pod_uid=uid,
            namespace="shop",
            pod_name=f"pod-{uid}",
            service="shop/web",
            ip=ip,
            port=8080,
            state=state,  # type: ignore[arg-type]
        )
    )


def test_notification_flips_the_bound_pod(deps: Deps, invoker: StepQueue) -> None:
    bind(deps.store, "lb-web00001", "u5", "127.0.10.5", listener="lbl-web00080")
    result = on_target_health_changed(deps, TargetHealthChanged.model_validate(load_event("health_notification")))
    assert result["matched"] == 1
    [(name, payload)] = invoker.calls
    assert name == "flip" and payload["pod_uids"] == ["u5"] and payload["lb_id"] == "lb-web00001"


def test_notification_for_an_unknown_target_does_nothing(deps: Deps, invoker: StepQueue) -> None:
    bind(deps.store, "lb-web00001", "u5", "127.0.10.99", listener="lbl-web00080")
    result = on_target_health_changed(deps, TargetHealthChanged.model_validate(load_event("health_notification")))
    assert result["matched"] == 0 and invoker.calls == []


def test_poll_asks_only_for_pending_clbs_in_chunks_of_30(deps: Deps, invoker: StepQueue, clb: Any) -> None:
    lbs = []
    for i in range(35):
        lb = f"lb-{i:03d}"
        bind(deps.store, lb, f"u{i}", f"127.0.1.{i}")
        lbs.append(seeded_lb(lb, listeners={"lbl-1": [(f"127.0.1.{i}", 8080, i % 2 == 0)]}))
    bind(deps.store, "lb-done", "u-done", "127.0.2.1")
    deps.store.kv_set(gate_key("u-done"), "True", ttl_s=None, now=deps.clock.now())
    bind(deps.store, "lb-plain", "u-plain", "127.0.2.3")
    deps.store.kv_set(gate_key("u-plain"), "ungated", ttl_s=None, now=deps.clock.now())  # a Pod without our gate
    bind(deps.store, "lb-gone", "u-gone", "127.0.2.2", state="deregistered")
    model = clb(*lbs)
    result = poll_pending(deps)
    assert health_calls(model) == 2  # 30 + 5
    assert not {"lb-done", "lb-plain", "lb-gone"} & set(result["polled"])
    flipped = {uid for _, payload in invoker.calls for uid in payload["pod_uids"]}
    assert flipped == {f"u{i}" for i in range(0, 35, 2)}
    assert {name for name, _ in invoker.calls} == {"flip"}


def test_poll_waits_until_every_listener_of_a_pod_is_healthy(deps: Deps, invoker: StepQueue, clb: Any) -> None:
    bind(deps.store, "lb-1", "u1", "127.0.1.1", listener="lbl-a")
    bind(deps.store, "lb-1", "u1", "127.0.1.1", listener="lbl-b")
    model = clb(
        seeded_lb("lb-1", listeners={"lbl-a": [("127.0.1.1", 8080, True)], "lbl-b": [("127.0.1.1", 8080, False)]})
    )
    assert poll_pending(deps)["dispatched"] == []
    model.set_target_health("lb-1", "lbl-b", "127.0.1.1", 8080, "Alive")
    assert len(poll_pending(deps)["dispatched"]) == 1


def test_alarm_polls_the_clb_named_by_vip_and_acks(deps: Deps, invoker: StepQueue, clb: Any) -> None:
    bind(deps.store, "lb-a", "ua", "127.0.1.1")
    bind(deps.store, "lb-b", "ub", "127.0.1.2")
    alarm = load_event("alarm_callback")
    alarm["alarmObjInfo"]["dimensions"].pop("objName")
    model = clb(
        seeded_lb("lb-a", vip="127.0.0.76", listeners={"lbl-1": [("127.0.1.1", 8080, False)]}),
        seeded_lb("lb-b", vip="127.0.0.77", listeners={"lbl-1": [("127.0.1.2", 8080, True)]}),
    )
    ack, result = on_alarm(deps, AlarmCallback.model_validate(alarm))
    assert ack.model_dump(by_alias=True) == {"sessionId": "xxxxxxxx-1234", "retCode": 0}
    assert health_calls(model) == 1 and result["polled"] == ["lb-b"]
    other = load_event("alarm_callback")
    other["alarmPolicyInfo"]["conditions"]["metricName"] = "CpuUsage"
    _, ignored = on_alarm(deps, AlarmCallback.model_validate(other))
    assert "ignored" in ignored and health_calls(model) == 1


def _api(body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "requestContext": {"path": "/health", "httpMethod": "POST", "requestId": "r"},
        "httpMethod": "POST",
        "headers": headers or {},
        "body": body,
    }


@pytest.fixture
def handler_deps(deps: Deps) -> Any:
    # These tests are about parsing and routing; authentication has its own (test_health_callbacks.py).
    deps.settings = deps.settings.model_copy(update={"health_notify_allow_unsigned": True})
    health_handler.shell.use(deps)
    yield deps
    health_handler.shell.use(None)


def test_handler_rejects_bad_notifications(handler_deps: Deps, invoker: StepQueue) -> None:
    bad_json = health_handler.main_handler(_api("{nope"), {})
    assert bad_json["statusCode"] == 400 and "not JSON" in bad_json["body"]
    note = load_event("health_notification")
    note["target"] = {"ip": "127.0.10.5"}
    missing = health_handler.main_handler(_api(json.dumps(note)), {})
    assert missing["statusCode"] == 400 and "target.port" in missing["body"]
    unknown = health_handler.main_handler(_api(json.dumps({"type": "Other"})), {})
    assert unknown["statusCode"] == 400
    assert invoker.calls == []


def test_handler_timer_and_alarm(handler_deps: Deps, invoker: StepQueue, clb: Any) -> None:
    clb()
    assert health_handler.main_handler(load_event("timer"), {})["polled"] == []
    response = health_handler.main_handler(_api(json.dumps(load_event("alarm_callback"))), {})
    assert json.loads(response["body"]) == {"sessionId": "xxxxxxxx-1234", "retCode": 0}
