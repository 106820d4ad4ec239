"""Hostile input and races at the router: poison items, concurrent replays, bodies that crash parsers."""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest
from pydantic import SecretStr

from functions.router import handler as router_handler
from shared.deps import Deps
from shared.domain.models import SelectorEntry
from shared.router import route_signed
from shared.signing import sign_batch
from tests.conftest import load_event
from tests.support.fakes import StepQueue
from tests.unit.plumbing.conftest import HMAC_KEY
from tests.unit.plumbing.test_router import api_event, signed


@pytest.fixture
def batch() -> dict[str, Any]:
    return load_event("relay_batch")


@pytest.fixture(autouse=True)
def selectors(deps: Deps) -> None:
    deps.store.put_selector(
        SelectorEntry(namespace="shop", service="web", selector={"app": "web"}, lb_id="lb-web00001")
    )


def _poison(batch: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of the batch's first (Pod status) audit item with one field of the wrong type."""
    item = copy.deepcopy(batch["items"][0])
    event = item["event"]
    pod = event["responseObject"]
    if where == "labels":
        pod["metadata"]["labels"] = [1]
    elif where == "annotations":
        pod["metadata"]["annotations"] = "a string"
    elif where == "conditions":
        pod["status"]["conditions"] = {"type": "Ready"}
    elif where == "readinessGates":
        pod["spec"]["readinessGates"] = "gate"
    elif where == "status":
        pod["status"] = [1, 2]
    elif where == "podIP":
        pod["status"]["podIP"] = {"ip": 1}
    elif where == "metadata":
        pod["metadata"] = 7
    elif where == "objectRef":
        event["objectRef"]["name"] = {"x": 1}
    elif where == "responseStatus":
        event["responseStatus"]["code"] = "two hundred"
    event["auditID"] = f"poison-{where}"
    return item


@pytest.mark.parametrize(
    "where",
    [
        "labels",
        "annotations",
        "conditions",
        "readinessGates",
        "status",
        "podIP",
        "metadata",
        "objectRef",
        "responseStatus",
    ],
)
def test_a_poison_item_is_reported_by_index_and_the_batch_goes_on(
    deps: Deps, invoker: StepQueue, batch: dict[str, Any], where: str
) -> None:
    batch["items"].insert(1, _poison(batch, where))
    response = route_signed(deps, signed(deps, batch))
    assert response.status_code == 200, response.body
    result = json.loads(response.body)
    assert [e["index"] for e in result["errors"]] == [1], result
    assert result["accepted"] == 3 and invoker.steps() == ["service", "unbind", "bind"]


def test_a_poison_watch_item_is_reported_by_index(deps: Deps, invoker: StepQueue, batch: dict) -> None:
    watch = copy.deepcopy(batch["items"][1])
    assert watch["source"] == "watch"
    watch["object"]["spec"]["selector"] = ["app"]
    watch["object"]["metadata"]["uid"] = "other-uid"
    batch["items"].append(watch)
    result = json.loads(route_signed(deps, signed(deps, batch)).body)
    assert [e["index"] for e in result["errors"]] == [3], result
    assert "spec.selector" in result["errors"][0]["reason"]
    assert result["accepted"] == 3


def test_eight_concurrent_copies_of_one_signed_batch_dispatch_once(
    deps: Deps, invoker: StepQueue, batch: dict[str, Any]
) -> None:
    event = signed(deps, batch)
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    original_invoke = invoker.invoke_async
    routing = threading.Event()

    def slow_invoke(function: str, payload: Any) -> str:
        # Hold the first dispatch open so every other copy arrives while it is still routing (the
        # window a check-then-set marker leaves open); generous, never asserted on.
        routing.wait(timeout=0.5)
        return original_invoke(function, payload)

    invoker.invoke_async = slow_invoke  # type: ignore[method-assign]

    def deliver() -> None:
        barrier.wait(timeout=10)
        statuses.append(route_signed(deps, event).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200] + [401] * 7
    assert invoker.steps() == ["service", "unbind", "bind"]


def test_a_failed_dispatch_releases_the_replay_marker(deps: Deps, invoker: StepQueue, batch: dict) -> None:
    from shared.domain.errors import RetryableError

    def failing(function: str, payload: Any) -> str:
        raise RetryableError("invoke throttled", delay_s=1)

    invoker.invoke_async = failing  # type: ignore[method-assign]
    with pytest.raises(RetryableError):
        route_signed(deps, signed(deps, batch))
    del invoker.invoke_async
    assert route_signed(deps, signed(deps, batch)).status_code == 200
    assert invoker.steps() == ["service", "unbind", "bind"]


def _raw_signed(deps: Deps, body: bytes, batch_id: str = "b" * 32) -> Any:
    headers = sign_batch(HMAC_KEY.encode(), body, batch_id=batch_id, now=deps.clock.now()).as_dict()
    return api_event(body, headers)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"batchId": "\xff\xfe"}', "UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "deeper"),
        (b'{"batchId": "' + b"b" * 32 + b'", "createdAt": ' + b"9" * 5000 + b"}", "digits"),
        (b"[1, 2]", "dictionary"),
    ],
)
def test_hostile_bodies_get_400_naming_the_problem(deps: Deps, invoker: StepQueue, body: bytes, words: str) -> None:
    if body.startswith(b'{"batchId": "\xff'):
        event = api_event(b"", {})
        event.body = None
        event.is_base64_encoded = True
        import base64

        event.body = base64.b64encode(body).decode()
        event.headers.update(
            {
                k.lower(): v
                for k, v in sign_batch(HMAC_KEY.encode(), body, batch_id="b" * 32, now=deps.clock.now())
                .as_dict()
                .items()
            }
        )
    else:
        event = _raw_signed(deps, body)
    response = route_signed(deps, event)
    assert response.status_code == 400, response.body
    assert words in json.loads(response.body)["message"]
    assert invoker.calls == []


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "EventList", "items": "not a list"},
        {"kind": "EventList", "items": [], "metadata": 5},
        {"clslogs": 5},
        {"clslogs": {"data": 7}},
        {"kind": "EventList", "items": [[[[]]]]},
    ],
)
def test_trigger_events_with_wrong_types_get_a_permanent_error(
    deps: Deps, invoker: StepQueue, event: dict[str, Any]
) -> None:
    router_handler.shell.use(deps)
    try:
        result = router_handler.main_handler(event, {"request_id": "r"})
    finally:
        router_handler.shell.use(None)
    assert result.get("ok") is False or result.get("errors"), result
    if result.get("ok") is False:
        assert result["error"] == "InvalidInput"
    assert invoker.calls == []


def test_a_key_rotation_loses_no_batch(deps: Deps, invoker: StepQueue, batch: dict[str, Any]) -> None:
    """Router first (new key + old as previous), relay after: batches signed with either key get through."""
    rotated = deps.settings.model_copy(
        update={"relay_hmac_key": SecretStr("the-new-key"), "relay_hmac_key_previous": SecretStr(HMAC_KEY)}
    )
    deps.settings = rotated
    assert route_signed(deps, signed(deps, batch)).status_code == 200  # relay not moved yet: old key
    again = copy.deepcopy(batch)
    again["batchId"] = "9" * 32
    assert route_signed(deps, signed(deps, again, key="the-new-key")).status_code == 200
    third = copy.deepcopy(batch)
    third["batchId"] = "8" * 32
    assert route_signed(deps, signed(deps, third, key="some-other-key")).status_code == 401


def _service_event(batch: dict[str, Any], rv: str, batch_id: str) -> dict[str, Any]:
    event = copy.deepcopy(batch)
    event["batchId"] = batch_id
    service = copy.deepcopy(batch["items"][1])
    service["object"]["metadata"]["resourceVersion"] = rv
    event["items"] = [service]
    return event


def test_a_forged_huge_resource_version_never_makes_real_events_stale(
    deps: Deps, invoker: StepQueue, batch: dict[str, Any]
) -> None:
    from shared.keys import version_key

    key = version_key("Service", "shop", "web", "uid-svc-web")
    deps.store.kv_set(key, "90", ttl_s=None, now=deps.clock.now())  # what a step read from the API server
    forged = json.loads(route_signed(deps, signed(deps, _service_event(batch, "999999999999", "f" * 32))).body)
    assert forged["accepted"] == 1  # routed: the step re-reads the Service and finds what is really there
    assert deps.store.kv_get(key, now=deps.clock.now()) == "90"  # never remembered
    invoker.calls.clear()
    real = json.loads(route_signed(deps, signed(deps, _service_event(batch, "91", "r" * 32))).body)
    assert (real["stale"], real["accepted"]) == (0, 1)
    assert invoker.steps() == ["service"]
    late = json.loads(route_signed(deps, signed(deps, _service_event(batch, "85", "l" * 32))).body)
    assert late["stale"] == 1  # older than what the API server returned: stale


def test_only_versions_the_api_server_returned_are_remembered(deps: Deps) -> None:
    from shared.domain.models import PodInfo, ServiceInfo
    from shared.keys import version_key
    from shared.versions import VersionConfirmingCluster
    from tests.support.fakes import FakeCluster

    fake = FakeCluster()
    fake.put_service(ServiceInfo(namespace="shop", name="web", uid="uid-svc-web", resource_version="120"))
    fake.put_pod(PodInfo(namespace="shop", name="p1", uid="u1", resource_version="130", labels={"app": "web"}))
    cluster = VersionConfirmingCluster(fake, deps.store, deps.clock, ttl_s=3600)
    assert cluster.get_service("shop", "web") is not None
    assert [p.name for p in cluster.list_pods("shop", {"app": "web"})] == ["p1"]
    now = deps.clock.now()
    assert deps.store.kv_get(version_key("Service", "shop", "web", "uid-svc-web"), now=now) == "120"
    assert deps.store.kv_get(version_key("Pod", "shop", "p1", "u1"), now=now) == "130"


def test_a_cls_decompression_bomb_is_refused(deps: Deps, invoker: StepQueue) -> None:
    import base64
    import gzip

    from shared.events.cls import MAX_DECOMPRESSED_BYTES

    bomb = base64.b64encode(gzip.compress(b" " * (MAX_DECOMPRESSED_BYTES + 1024))).decode()
    router_handler.shell.use(deps)
    try:
        result = router_handler.main_handler({"clslogs": {"data": bomb}}, {"request_id": "r"})
    finally:
        router_handler.shell.use(None)
    assert result["ok"] is False and "expands beyond" in result["message"]
    assert invoker.calls == []


def test_confirmed_versions_are_written_once_and_refreshed_before_they_expire(deps: Deps) -> None:
    from shared.domain.models import ServiceInfo
    from shared.versions import VersionConfirmingCluster, version_key
    from tests.support.fakes import FakeCluster

    fake = FakeCluster()
    fake.put_service(ServiceInfo(namespace="shop", name="web", uid="u", resource_version="7"))
    writes: list[str] = []
    original = deps.store.kv_set

    def counting(key: str, value: str, **kw: Any) -> None:
        writes.append(key)
        original(key, value, **kw)

    deps.store.kv_set = counting  # type: ignore[method-assign]
    cluster = VersionConfirmingCluster(fake, deps.store, deps.clock, ttl_s=100)
    for _ in range(3):
        cluster.get_service("shop", "web")
    assert len(writes) == 1  # a steady pass writes nothing
    deps.clock.advance(60)  # type: ignore[attr-defined]
    cluster.get_service("shop", "web")
    assert len(writes) == 2
    deps.clock.advance(90)  # type: ignore[attr-defined]
    assert deps.store.kv_get(version_key("Service", "shop", "web", "u"), now=deps.clock.now()) == "7"


@pytest.mark.parametrize(
    ("conditions", "field"),
    [
        ([{"type": [1], "status": "True"}], "conditions[0].type"),
        ([{"type": "Ready", "status": 5}], "conditions[0].status"),
    ],
)
def test_a_condition_of_the_wrong_type_is_named(
    deps: Deps, invoker: StepQueue, batch: dict[str, Any], conditions: list[Any], field: str
) -> None:
    item = copy.deepcopy(batch["items"][0])
    item["event"]["responseObject"]["status"]["conditions"] = conditions
    item["event"]["auditID"] = "bad-conditions"
    batch["items"].insert(0, item)
    result = json.loads(route_signed(deps, signed(deps, batch)).body)
    assert [e["index"] for e in result["errors"]] == [0]
    assert field in result["errors"][0]["reason"], result["errors"]
