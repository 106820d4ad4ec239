from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from functions.router import handler as router_handler
from shared.deps import Deps
from shared.domain.models import SelectorEntry
from shared.events.apigw import ApiGatewayEvent
from shared.events.cls import ClsEvent
from shared.keys import version_key
from shared.router import route_signed
from shared.signing import sign_batch
from tests.conftest import load_event
from tests.support.fakes import StepQueue
from tests.unit.plumbing.conftest import HMAC_KEY


def api_event(body: bytes, headers: dict[str, str]) -> ApiGatewayEvent:
    return ApiGatewayEvent.model_validate(
        {
            "requestContext": {"path": "/router", "httpMethod": "POST", "requestId": "r1"},
            "httpMethod": "POST",
            "path": "/router",
            "headers": {k.lower(): v for k, v in headers.items()},
            "body": body.decode(),
        }
    )


def signed(deps: Deps, batch: dict[str, Any], *, key: str = HMAC_KEY, skew: float = 0.0) -> ApiGatewayEvent:
    body = json.dumps(batch).encode()
    headers = sign_batch(key.encode(), body, batch_id=batch["batchId"], now=deps.clock.now() + skew).as_dict()
    return api_event(body, headers)


@pytest.fixture
def batch() -> dict[str, Any]:
    return load_event("relay_batch")


@pytest.fixture(autouse=True)
def selectors(deps: Deps) -> None:
    deps.store.put_selector(
        SelectorEntry(namespace="shop", service="web", selector={"app": "web"}, lb_id="lb-web00001")
    )


def nothing_changed(deps: Deps, invoker: StepQueue) -> bool:
    return invoker.calls == [] and deps.store.list_events(now=deps.clock.now()) == []


def test_valid_batch_is_routed_recorded_and_grouped(deps: Deps, invoker: StepQueue, batch: dict) -> None:
    response = route_signed(deps, signed(deps, batch))
    assert response.status_code == 200, response.body
    result = json.loads(response.body)
    assert (result["received"], result["accepted"], result["errors"]) == (3, 3, [])
    assert invoker.steps() == ["service", "unbind", "bind"]
    assert len(deps.store.list_events(now=deps.clock.now())) == 3
    bind = invoker.calls[2][1]
    assert bind["lb_id"] == "lb-web00001" and bind["correlation_id"] == batch["batchId"]


@pytest.mark.parametrize("attack", ["unsigned", "forged", "wrong_key", "stale_timestamp", "header_id_mismatch"])
def test_bad_signatures_get_401_and_change_nothing(deps: Deps, invoker: StepQueue, batch: dict, attack: str) -> None:
    event = signed(deps, batch)
    if attack == "unsigned":
        event = api_event(event.raw_body(), {})
    elif attack == "forged":
        tampered = copy.deepcopy(batch)
        tampered["items"] = tampered["items"][:1]
        event = api_event(json.dumps(tampered).encode(), {k: v for k, v in event.headers.items()})
    elif attack == "wrong_key":
        event = signed(deps, batch, key="not-the-key")
    elif attack == "stale_timestamp":
        event = signed(deps, batch, skew=-deps.settings.relay_max_skew_s - 5)
    else:
        event.headers["x-clb-direct-batch-id"] = "another-batch-id"
    response = route_signed(deps, event)
    assert response.status_code == 401
    assert nothing_changed(deps, invoker)


def test_replayed_batch_is_rejected_without_side_effects(deps: Deps, invoker: StepQueue, batch: dict) -> None:
    assert route_signed(deps, signed(deps, batch)).status_code == 200
    calls, events = list(invoker.calls), deps.store.list_events(now=deps.clock.now())
    deps.clock.advance(5)  # type: ignore[attr-defined]
    response = route_signed(deps, signed(deps, batch))
    assert response.status_code == 401 and "already delivered" in response.body
    assert invoker.calls == calls and deps.store.list_events(now=deps.clock.now()) == events


def test_malformed_event_is_reported_by_index_and_the_rest_processed(
    deps: Deps, invoker: StepQueue, batch: dict
) -> None:
    batch["items"].insert(1, {"source": "audit", "event": {"kind": "Event", "stage": "ResponseComplete"}})
    result = json.loads(route_signed(deps, signed(deps, batch)).body)
    assert [e["index"] for e in result["errors"]] == [1]
    assert "auditID" in result["errors"][0]["reason"]
    assert result["accepted"] == 3 and invoker.steps() == ["service", "unbind", "bind"]


def test_malformed_batch_is_400(deps: Deps, invoker: StepQueue, batch: dict) -> None:
    batch["unexpected"] = True  # our own format forbids unknown fields
    response = route_signed(deps, signed(deps, batch))
    assert response.status_code == 400 and "unexpected" in response.body
    assert nothing_changed(deps, invoker)


def test_duplicates_and_stale_versions_are_dropped(deps: Deps, invoker: StepQueue, batch: dict) -> None:
    route_signed(deps, signed(deps, batch))
    invoker.calls.clear()
    # The service step read the live Service at resourceVersion 90 (what the API server returned).
    deps.store.kv_set(version_key("Service", "shop", "web", "uid-svc-web"), "90", ttl_s=None, now=deps.clock.now())
    again = copy.deepcopy(batch)
    again["batchId"] = "1" * 32  # a new batch re-carrying the same events (audit webhook re-send)
    older = copy.deepcopy(batch["items"][1])
    older["object"]["metadata"]["resourceVersion"] = "80"  # an older Service version, arriving late
    again["items"].append(older)
    result = json.loads(route_signed(deps, signed(deps, again)).body)
    assert (result["duplicates"], result["stale"], result["accepted"]) == (3, 1, 0)
    assert invoker.calls == []


def test_a_recreated_object_is_not_stale_against_its_predecessor(deps: Deps, invoker: StepQueue, batch: dict) -> None:
    route_signed(deps, signed(deps, batch))
    invoker.calls.clear()
    recreated = copy.deepcopy(batch)
    recreated["batchId"] = "2" * 32
    service = copy.deepcopy(batch["items"][1])
    service["object"]["metadata"]["uid"] = "a-new-uid-after-delete-and-create"
    service["object"]["metadata"]["resourceVersion"] = "5"  # lower: e.g. a rebuilt cluster's counter
    recreated["items"] = [service]
    result = json.loads(route_signed(deps, signed(deps, recreated)).body)
    assert (result["stale"], result["accepted"]) == (0, 1)
    assert invoker.steps() == ["service"]


def test_raw_event_list_and_cls_through_the_handler(deps: Deps, invoker: StepQueue) -> None:
    router_handler.shell.use(deps)
    try:
        result = router_handler.main_handler(load_event("audit_eventlist"), {"request_id": "req-1"})
        assert (result["received"], result["accepted"], result["ignored"]) == (6, 3, 3)
        assert invoker.steps() == ["service", "bind"]
        invoker.calls.clear()
        cls_result = router_handler.main_handler(load_event("cls_event"), {"request_id": "req-2"})
        assert cls_result["duplicates"] == 2 and invoker.calls == []
        broken = router_handler.main_handler({"clslogs": {"data": "!!not-base64"}}, {"request_id": "req-3"})
        assert broken["ok"] is False and "base64" in broken["message"]
        not_gzip = router_handler.main_handler({"clslogs": {"data": "aGVsbG8="}}, {"request_id": "req-4"})
        assert "gzip" in not_gzip["message"]
        unknown = router_handler.main_handler({"what": 1}, {"request_id": "req-5"})
        assert unknown["error"] == "InvalidInput"
    finally:
        router_handler.shell.use(None)


def test_cls_record_that_is_not_json_is_reported(deps: Deps, invoker: StepQueue) -> None:
    from shared.events.cls import ClsPayload, ClsRecord
    from shared.router import route_cls

    good = json.dumps(load_event("audit_eventlist")["items"][3])
    event = ClsEvent.encode(ClsPayload(records=[ClsRecord(content="{oops"), ClsRecord(content=good)]))
    result = route_cls(deps, event, correlation_id="c1").to_dict()
    assert result["errors"][0]["index"] == 0 and "not JSON" in result["errors"][0]["reason"]
    assert result["accepted"] == 1 and invoker.steps() == ["service"]
