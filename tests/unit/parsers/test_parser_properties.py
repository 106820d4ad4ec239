"""Property tests over every parser: hostile input never raises, always gets a clear 4xx or permanent
error, and a rejected input writes nothing to the store and dispatches nothing.

Parsers covered: AdmissionReview (admission handler), audit EventList and CLS payload (router trigger
events), relay batch (signed router deliveries), health notification and alarm callback (health
handler), timer and replay events (reconcile handler), step requests (every step function) and
TkeServiceConfig, and the API gateway envelope of every HTTP function. Inputs are arbitrary JSON, hostile
bytes, and valid fixtures with nodes replaced or deleted (`strategies.mutated`). Derandomized with bounded
examples, so CI runs the same cases fast; set CLB_DIRECT_FUZZ_EXAMPLES to explore at random.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.admission import handler as admission_handler
from functions.health import handler as health_handler
from functions.prestop import handler as prestop_handler
from functions.reconcile import handler as reconcile_handler
from functions.router import handler as router_handler
from shared.adapters.store_factory import open_store
from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.errors import ClbDirectError, ConfigError, InvalidInput, PermanentError
from shared.domain.tke_service_config import parse_tke_service_config
from shared.events.cls import ClsEvent, ClsPayload, ClsRecord
from shared.router import route_signed
from shared.shell import parse_step_event
from shared.signing import BATCH_ID_HEADER, sign_batch
from tests.conftest import load_event
from tests.support.fakes import FakeCluster, StepQueue
from tests.unit.parsers.strategies import JSON, hostile_bytes, mutated, paths_of, replace_at
from tests.unit.plumbing.conftest import HMAC_KEY

# CI runs a fixed, fast set; `CLB_DIRECT_FUZZ_EXAMPLES=5000` explores randomly for as long as one likes.
_EXPLORE = int(os.environ.get("CLB_DIRECT_FUZZ_EXAMPLES", "0"))
PROPERTY = settings(
    max_examples=_EXPLORE or 40,
    derandomize=not _EXPLORE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

WRITES = frozenset(
    {
        "idem_claim",
        "idem_complete",
        "idem_release",
        "put_binding",
        "delete_binding",
        "acquire_lease",
        "renew_lease",
        "release_lease",
        "take_tokens",
        "append_event",
        "put_selector",
        "delete_selector",
        "kv_set",
        "kv_set_if_absent",
        "kv_delete",
        "pending_add",
        "pending_take",
    }
)


class WriteSpy:
    """A Store that records which write methods were called."""

    def __init__(self) -> None:
        self.inner = open_store("memory://")
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name in WRITES:
            self.writes.append(name)
        return attribute


class EmptyClb:
    def describe_target_health(self, lb_ids: Any) -> dict[str, list[Any]]:
        return {lb: [] for lb in lb_ids}

    def describe_load_balancer(self, lb_id: str) -> None:
        return None

    def find_load_balancers(self, tags: Any) -> list[Any]:
        return []

    def list_targets(self, lb_id: str) -> list[Any]:
        return []

    def list_listeners(self, lb_id: str) -> list[Any]:
        return []


@contextmanager
def world(**overrides: Any) -> Iterator[tuple[Deps, WriteSpy, StepQueue]]:
    store, invoker = WriteSpy(), StepQueue()
    values: dict[str, Any] = {"relay_hmac_key": HMAC_KEY, "store_url": "memory://", **overrides}
    deps = Deps(
        settings=Settings.load({}, **values),
        store=store,  # type: ignore[arg-type]
        clock=FakeClock(start=1_700_000_000.0),
        invoker=invoker,
        cluster=FakeCluster(),
        clb=EmptyClb(),  # type: ignore[arg-type]
    )
    try:
        yield deps, store, invoker
    finally:
        store.inner.close()


def api_event(body: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "requestContext": {"path": "/", "httpMethod": "POST", "requestId": "prop"},
        "httpMethod": "POST",
        "headers": headers or {},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def assert_clear_error(message: object) -> None:
    assert isinstance(message, str) and len(message) >= 10, message


def with_handler(module: Any, deps: Deps, event: Any) -> Any:
    module.shell.use(deps)
    try:
        return module.main_handler(event, {"request_id": "prop"})
    finally:
        module.shell.use(None)


# ------------------------------------------------------------------------------------------ admission

REVIEW = json.loads(load_event("admission_pod_create")["body"])


@PROPERTY
@given(body=hostile_bytes(REVIEW))
def test_admission_review_never_crashes_and_a_rejection_writes_nothing(body: bytes) -> None:
    with world() as (deps, store, _):
        result = with_handler(admission_handler, deps, api_event(body))
        assert result["statusCode"] in (200, 400), result
        if result["statusCode"] == 400:
            assert_clear_error(json.loads(result["body"])["message"])
            assert store.writes == []
        else:
            assert json.loads(result["body"])["response"]["allowed"] is True


# ------------------------------------------------------------------------------------ relay batches

RELAY_BATCH = load_event("relay_batch")


def signed_event(deps: Deps, body: bytes) -> Any:
    from shared.events.apigw import ApiGatewayEvent

    headers = sign_batch(HMAC_KEY.encode(), body, batch_id="p" * 32, now=deps.clock.now()).as_dict()
    del headers[BATCH_ID_HEADER]  # optional for relay batches; the body's batchId is the id
    return ApiGatewayEvent.model_validate(api_event(body, headers))


@PROPERTY
@given(body=hostile_bytes(RELAY_BATCH))
def test_relay_batch_never_crashes_and_a_rejected_body_changes_nothing(body: bytes) -> None:
    with world() as (deps, store, invoker):
        response = route_signed(deps, signed_event(deps, body))
        assert response.status_code in (200, 400, 401), response.body
        payload = json.loads(response.body)
        if response.status_code != 200:
            assert_clear_error(payload["message"])
            assert store.writes == [] and invoker.calls == []
        else:
            assert all(isinstance(e["index"], int) and e["reason"] for e in payload["errors"])


@PROPERTY
@given(items=st.lists(mutated(RELAY_BATCH["items"][0]["event"], times=3), min_size=1, max_size=3))
def test_one_poison_item_never_takes_the_valid_ones_with_it(items: list[Any]) -> None:
    batch = {**RELAY_BATCH, "items": [{"source": "audit", "event": i} for i in items] + RELAY_BATCH["items"][1:]}
    with world() as (deps, _, _invoker):
        response = route_signed(deps, signed_event(deps, json.dumps(batch).encode()))
        if response.status_code == 200:
            result = json.loads(response.body)
            assert result["received"] == len(batch["items"])
            # the two valid watch/audit items at the end are always accepted (or deduplicated)
            assert result["accepted"] + result["duplicates"] + result["stale"] >= 2, result
        else:
            assert response.status_code == 400  # an item that breaks the batch's own schema


# ------------------------------------------------------------------------------ EventList and CLS

EVENT_LIST = load_event("audit_eventlist")


@PROPERTY
@given(event=mutated(EVENT_LIST, times=3))
def test_audit_event_list_trigger_never_crashes(event: Any) -> None:
    with world() as (deps, _, _invoker):
        result = with_handler(router_handler, deps, event)
        assert isinstance(result, dict)
        if result.get("ok") is False:
            assert_clear_error(result["message"])
        else:
            assert all(isinstance(e["index"], int) and e["reason"] for e in result["errors"])


def _cls(records: Any) -> dict[str, Any]:
    try:
        payload = ClsPayload.model_validate({"records": records})
    except ValueError:
        payload = ClsPayload(records=[ClsRecord(content=json.dumps(records))])
    return ClsEvent.encode(payload).model_dump(by_alias=True)


@PROPERTY
@given(
    event=st.one_of(
        mutated({"clslogs": {"data": "H4sIAAAAAAAA"}}),
        st.lists(st.one_of(mutated(EVENT_LIST["items"][3]).map(json.dumps), st.text(max_size=30)), max_size=3).map(
            lambda contents: _cls([{"content": c} for c in contents])
        ),
        JSON.map(lambda v: {"clslogs": v}),
    )
)
def test_cls_trigger_never_crashes(event: Any) -> None:
    with world() as (deps, _, _invoker):
        result = with_handler(router_handler, deps, event)
        assert isinstance(result, dict)
        if result.get("ok") is False:
            assert_clear_error(result["message"])


# ------------------------------------------------------------------------------------------- health

NOTIFICATION = load_event("health_notification")
ALARM = load_event("alarm_callback")


@PROPERTY
@given(body=st.one_of(hostile_bytes(NOTIFICATION), hostile_bytes(ALARM)))
def test_health_callbacks_never_crash_and_a_rejection_dispatches_nothing(body: bytes) -> None:
    with world(health_notify_allow_unsigned=True) as (deps, _, invoker):
        result = with_handler(health_handler, deps, api_event(body))
        assert result["statusCode"] in (200, 400), result
        if result["statusCode"] == 400:
            assert_clear_error(json.loads(result["body"])["message"])
            assert invoker.calls == []


# ------------------------------------------------------------------------------ timer and replay


@PROPERTY
@given(
    event=st.one_of(
        mutated(load_event("timer")),
        mutated(load_event("replay_event")),
        mutated(load_event("replay_service")),
        mutated(load_event("replay_pod")),
        JSON,
    )
)
def test_timer_and_replay_events_never_crash(event: Any) -> None:
    with world() as (deps, _, _invoker):
        result = with_handler(reconcile_handler, deps, event)
        assert isinstance(result, dict)
        if result.get("ok") is False:
            assert_clear_error(result["message"])


# ---------------------------------------------------------------------------------- step requests


@PROPERTY
@given(
    function=st.sampled_from(["service", "bind", "unbind", "flip", "guardian"]),
    event=st.one_of(mutated(load_event("bind_pod")), mutated(load_event("service_web")), JSON),
)
def test_step_requests_parse_or_fail_with_invalid_input(function: str, event: Any) -> None:
    try:
        request = parse_step_event(function, event)
    except InvalidInput as exc:
        assert_clear_error(exc.message)
    else:
        assert request.step == function


# ------------------------------------------------------------------------------- TkeServiceConfig

TKE_CONFIG = {
    "apiVersion": "cloud.tencent.com/v1alpha1",
    "kind": "TkeServiceConfig",
    "metadata": {"name": "web-clb"},
    "spec": {
        "loadBalancer": {
            "l4Listeners": [
                {
                    "protocol": "TCP",
                    "port": 80,
                    "scheduler": "LEAST_CONN",
                    "session": {"enable": True, "sessionExpireTime": 60},
                    "healthCheck": {"enable": True, "intervalTime": 10, "timeout": 3, "healthNum": 2},
                }
            ]
        }
    },
}


@PROPERTY
@given(config=st.one_of(mutated(TKE_CONFIG, times=3), JSON))
def test_tke_service_config_parses_or_names_the_problem(config: Any) -> None:
    try:
        parse_tke_service_config(config, name="ns/web-clb")
    except (ConfigError, InvalidInput) as exc:
        assert_clear_error(exc.message)
        assert "ns/web-clb" in exc.message


def test_every_error_class_used_above_is_permanent() -> None:
    assert issubclass(ConfigError, PermanentError) and issubclass(InvalidInput, ClbDirectError)


# ------------------------------------------------------------------------- API gateway envelopes

ENVELOPE = load_event("admission_pod_create")


@PROPERTY
@given(
    module=st.sampled_from([admission_handler, router_handler, health_handler, prestop_handler]),
    event=st.one_of(mutated(ENVELOPE, times=2), JSON),
)
def test_a_broken_api_gateway_envelope_gets_a_4xx_or_a_permanent_error(module: Any, event: Any) -> None:
    with world(health_notify_allow_unsigned=True) as (deps, store, invoker):
        result = with_handler(module, deps, event)
        assert isinstance(result, dict)
        if "statusCode" in result:
            assert result["statusCode"] in (200, 400, 401, 429), result
            if result["statusCode"] != 200:
                assert_clear_error(json.loads(result["body"])["message"])
                assert invoker.calls == []
        else:
            assert result.get("ok") is False or "received" in result, result


# ------------------------------------------------------------------- the message names the field


def _one_node_changed(data: st.DataObject, fixture: Any) -> tuple[tuple[Any, ...], Any]:
    path = data.draw(st.sampled_from([p for p in paths_of(fixture) if p]))
    return path, replace_at(fixture, path, data.draw(JSON), delete=data.draw(st.booleans()))


def _names(path: tuple[Any, ...], message: str) -> bool:
    """The message names a key on the path that was changed (or the bound that was hit)."""
    keys = [k for k in path if isinstance(k, str)]
    return any(k in message for k in keys) or "number" in message or "surrogate" in message


@PROPERTY
@given(data=st.data())
def test_a_rejected_review_names_the_field_that_was_changed(data: st.DataObject) -> None:
    path, review = _one_node_changed(data, REVIEW)
    with world() as (deps, _, _invoker):
        result = with_handler(admission_handler, deps, api_event(json.dumps(review).encode()))
        if result["statusCode"] == 400:
            message = json.loads(result["body"])["message"]
            assert _names(path, message), (path, message)


@PROPERTY
@given(data=st.data())
def test_a_rejected_batch_or_item_names_the_field_that_was_changed(data: st.DataObject) -> None:
    path, batch = _one_node_changed(data, RELAY_BATCH)
    with world() as (deps, _, _invoker):
        response = route_signed(deps, signed_event(deps, json.dumps(batch).encode()))
        body = json.loads(response.body)
        if response.status_code == 400:
            assert _names(path, body["message"]), (path, body["message"])
        elif response.status_code == 200:
            assert all(_names(path, error["reason"]) for error in body["errors"]), (path, body["errors"])
