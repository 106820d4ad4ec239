"""The pure rules of the termination protection: hook planning, modes, tokens and the drained verdict."""

from __future__ import annotations

from typing import Any

from shared.domain.models import BindingRecord
from shared.domain.termination import (
    PRESTOP_ID_LABEL,
    Endpoint,
    ProtectionOptions,
    combine_modes,
    drain_state,
    plan_protection,
    prestop_token,
    token_matches,
)

HTTP = ProtectionOptions(
    mode="http", endpoint=Endpoint.parse("https://gw.example/release/prestop"), drain_budget_s=10, sleep_s=10
)
SLEEP = ProtectionOptions(mode="sleep", endpoint=None, drain_budget_s=10, sleep_s=10)


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}], **spec}}


def test_endpoint_parts() -> None:
    assert Endpoint.parse("https://gw.example/release/prestop") == Endpoint(
        "HTTPS", "gw.example", 443, "/release/prestop"
    )
    assert Endpoint.parse("http://10.0.0.1:8080/prestop").port == 8080


def test_an_existing_lifecycle_gets_only_a_prestop_and_a_reinvocation_adds_nothing() -> None:
    pod = _pod(containers=[{"name": "web", "lifecycle": {"postStart": {"exec": {"command": ["true"]}}}}])
    plan = plan_protection(pod, "default", HTTP, prestop_id="a" * 32, key=b"k")
    assert [op["path"] for op in plan.patch] == [
        "/spec/containers/0/lifecycle/preStop",
        "/metadata/labels/clb-direct.cloud.tencent.com~1prestop-id",
    ]
    # the API server applied the patch and reinvoked the webhook: our hook is recognised, nothing added
    hooked = _pod(containers=[{"name": "web", "lifecycle": {"preStop": plan.patch[0]["value"]}}])
    hooked["metadata"]["labels"][PRESTOP_ID_LABEL] = "a" * 32
    again = plan_protection(hooked, "default", HTTP, prestop_id="b" * 32, key=b"k")
    assert again.patch == [] and again.protected == ["web"] and again.kept == [] and again.notices == []


def test_sleep_is_sized_to_the_drain_budget_within_the_grace_period() -> None:
    assert plan_protection(_pod(), "ns", SLEEP, prestop_id="", key=b"").patch[0]["value"] == {
        "preStop": {"sleep": {"seconds": 10}}
    }
    short = plan_protection(_pod(terminationGracePeriodSeconds=6), "ns", SLEEP, prestop_id="", key=b"")
    assert short.patch[0]["value"] == {"preStop": {"sleep": {"seconds": 4}}}
    assert [reason for reason, _ in short.notices] == ["GracePeriodTooShort"]
    none = plan_protection(_pod(terminationGracePeriodSeconds=2), "ns", SLEEP, prestop_id="", key=b"")
    assert none.patch == [] and [reason for reason, _ in none.notices] == []


def test_modes_combine_off_first() -> None:
    assert combine_modes("http", [None, "sleep"]) == "sleep"
    assert combine_modes("http", ["sleep", "off"]) == "off"
    assert combine_modes("sleep", [None]) == "sleep"


def test_tokens_are_per_namespace_and_id() -> None:
    token = prestop_token(b"key", "default", "a" * 32)
    assert token_matches(b"key", "default", "a" * 32, token)
    assert not token_matches(b"key", "other", "a" * 32, token)
    assert not token_matches(b"other-key", "default", "a" * 32, token)


def _binding(listener: str, state: str, weight: int, started: float | None = None) -> BindingRecord:
    return BindingRecord(
        lb_id="lb-1",
        listener_id=listener,
        pod_uid="u",
        namespace="ns",
        pod_name="p",
        service="ns/s",
        ip="10.0.0.1",
        port=80,
        weight=weight,
        state=state,  # type: ignore[arg-type]
        drain_started_at=started,
    )


def test_drained_means_weight_zero_everywhere_for_the_linger() -> None:
    assert drain_state([], now=0, linger_s=1)[0] == "not-bound"
    waiting = drain_state([_binding("a", "draining", 0, 10.0), _binding("b", "registered", 10)], now=20, linger_s=1)
    assert waiting[0] == "waiting" and "lb-1/b (registered, weight 10)" in waiting[1]
    assert drain_state([_binding("a", "draining", 0, 10.0)], now=10.5, linger_s=1)[0] == "waiting"
    assert (
        drain_state([_binding("a", "draining", 0, 10.0), _binding("b", "deregistered", 10)], now=11, linger_s=1)[0]
        == "drained"
    )
