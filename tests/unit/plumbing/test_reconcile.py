from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulators.clb.model import ClbModel
from functions.reconcile import handler as reconcile_handler
from shared.clock import FakeClock
from shared.deps import Deps
from shared.domain.errors import NotFound, RetryableError
from shared.domain.models import (
    DIRECT_ACCESS_ANNOTATION,
    LB_ID_ANNOTATION,
    PodInfo,
    SelectorEntry,
    ServiceInfo,
    ServicePort,
    StepRequest,
    StoredEvent,
    Target,
)
from shared.normalize import normalize_audit
from shared.reconcile import reconcile_all, reconcile_service, replay_event, replay_pod
from tests.conftest import load_event
from tests.support.clb import emulated_clb, seeded_lb
from tests.support.fakes import FakeCluster, StepQueue


class Runner:
    def __init__(self, fail: str | None = None) -> None:
        self.requests: list[tuple[StepRequest, bool]] = []
        self.fail = fail

    def __call__(self, deps: Deps, request: StepRequest, *, dry_run: bool = False) -> dict[str, Any]:
        self.requests.append((request, dry_run))
        if request.step == self.fail:
            raise RetryableError("CLB busy", delay_s=1)
        return {"step": request.step, "dry_run": dry_run, "actions": []}

    def steps(self) -> list[str]:
        return [r.step for r, _ in self.requests]


def reads(model: ClbModel) -> dict[str, int]:
    counts = model.calls()["counts"]
    return {action: counts.get(action, 0) for action in ("DescribeListeners", "DescribeTargets")}


@pytest.fixture
def world(deps: Deps, clock: FakeClock) -> Iterator[tuple[FakeCluster, ClbModel]]:
    cluster = FakeCluster()
    cluster.put_service(
        ServiceInfo(
            namespace="shop",
            name="web",
            uid="s1",
            type="LoadBalancer",
            selector={"app": "web"},
            annotations={DIRECT_ACCESS_ANNOTATION: "true", LB_ID_ANNOTATION: "lb-1"},
            ports=[ServicePort(port=80, target_port=8080)],
        )
    )
    cluster.put_service(ServiceInfo(namespace="shop", name="plain", uid="s2"))
    cluster.put_pod(PodInfo(namespace="shop", name="p1", uid="u1", resource_version="5", labels={"app": "web"}))
    cluster.cluster_config = {}
    with emulated_clb(clock, seeded_lb("lb-1", listeners={"lbl": []})) as (model, gateway):
        deps.cluster, deps.clb = cluster, gateway
        yield cluster, model


def test_idle_pass_skips_by_checkpoint(deps: Deps, world: Any, invoker: StepQueue) -> None:
    runner = Runner()
    first = reconcile_all(deps, runner=runner)
    assert first["walked"] == 1 and runner.steps() == ["service", "unbind", "bind", "flip"]
    assert invoker.steps() == ["guardian"]
    runner.requests.clear()
    before = reads(world[1])
    second = reconcile_all(deps, runner=runner)
    assert second["skipped"] == 1 and runner.requests == []
    # A listener and a target read per CLB is the whole cost of an idle pass (reading the targets lists
    # the listeners whose targets to describe).
    after = reads(world[1])
    assert {k: after[k] - before[k] for k in after} == {"DescribeListeners": 2, "DescribeTargets": 1}


def test_drift_in_pods_or_targets_walks_again(deps: Deps, world: Any) -> None:
    cluster, _ = world
    runner = Runner()
    reconcile_all(deps, runner=runner)
    deps.require_clb().register_targets("lb-1", [Target(listener_id="lbl", ip="10.0.0.9", port=8080)])  # by hand
    runner.requests.clear()
    assert reconcile_all(deps, runner=runner)["walked"] == 1
    runner.requests.clear()
    cluster.pods[("shop", "p1")] = cluster.pods[("shop", "p1")].model_copy(update={"resource_version": "6"})
    assert reconcile_all(deps, runner=runner)["walked"] == 1


def test_failed_step_does_not_checkpoint_and_others_still_run(deps: Deps, world: Any) -> None:
    runner = Runner(fail="bind")
    result = reconcile_service(deps, world[0].services[("shop", "web")].key, runner=runner)
    assert runner.steps() == ["service", "unbind", "bind", "flip"]
    assert [s.get("error", {}).get("error") for s in result["steps"]][2] == "RetryableError"
    runner.fail = None
    runner.requests.clear()
    reconcile_all(deps, runner=runner)
    assert runner.steps() == ["service", "unbind", "bind", "flip"]


def test_orphaned_bindings_are_torn_down(deps: Deps, world: Any) -> None:
    from shared.domain.models import BindingRecord

    deps.store.put_binding(
        BindingRecord(
            lb_id="lb-9",
            listener_id="l",
            pod_uid="u9",
            namespace="old",
            pod_name="p9",
            service="old/gone",
            ip="1.1.1.1",
            port=80,
        )
    )
    runner = Runner()
    reconcile_all(deps, runner=runner)
    unbinds = [r for r, _ in runner.requests if r.step == "unbind" and r.services[0].name == "gone"]
    assert unbinds and unbinds[0].pod_uids == ["u9"] and unbinds[0].lb_id == "lb-9"


def test_plan_is_a_dry_run_without_checkpoint(deps: Deps, world: Any) -> None:
    runner = Runner()
    key = world[0].services[("shop", "web")].key
    result = reconcile_service(deps, key, dry_run=True, runner=runner)
    assert result["dryRun"] and all(dry for _, dry in runner.requests)
    assert deps.store.kv_get(f"checkpoint:{key}", now=deps.clock.now()) is None
    with pytest.raises(NotFound, match="shop/nope"):
        reconcile_service(deps, key.model_copy(update={"name": "nope"}), dry_run=True, runner=runner)


def test_replay_pod_and_event(deps: Deps, world: Any) -> None:
    runner = Runner()
    result = replay_pod(deps, world[0].pods[("shop", "p1")].key, runner=runner)
    assert [s["step"] for s in result["steps"]] == ["unbind", "bind", "flip"]
    assert runner.requests[1][0].services[0].name == "web"
    change = normalize_audit(load_event("audit_eventlist")["items"][1])
    assert change is not None
    deps.store.append_event(
        StoredEvent(
            id=change.event_id,
            received_at=0,
            source="audit",
            kind="Pod",
            summary=change.summary,
            payload=change.model_dump(mode="json"),
        ),
        ttl_s=3600,
        now=deps.clock.now(),
    )
    deps.store.put_selector(SelectorEntry(namespace="shop", service="web", selector={"app": "web"}, lb_id="lb-1"))
    runner.requests.clear()
    replayed = replay_event(deps, change.event_id, runner=runner)
    assert runner.steps() == ["bind"] and replayed["summary"]
    with pytest.raises(NotFound, match="clb-direct events"):
        replay_event(deps, "a-missing", runner=runner)


def test_console_events_through_the_handler(deps: Deps, world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner()
    monkeypatch.setattr("shared.reconcile._runner", lambda _r: runner)
    reconcile_handler.shell.use(deps)
    try:
        assert reconcile_handler.main_handler(load_event("replay_service"), {})["service"] == "shop/web"
        pod = {"replay": {"pod": "shop/p1"}}
        assert reconcile_handler.main_handler(pod, {})["pod"] == "shop/p1"
        missing = reconcile_handler.main_handler(load_event("replay_event"), {})
        assert missing["error"] == "NotFound"
        both = reconcile_handler.main_handler({"replay": {"pod": "a/b", "service": "a/b"}}, {})
        assert both["error"] == "InvalidInput" and "exactly one" in both["message"]
        bad_key = reconcile_handler.main_handler({"replay": {"service": "no-slash"}}, {})
        assert bad_key["error"] == "InvalidInput"
        assert reconcile_handler.main_handler(load_event("timer"), {})["skipped"] == 1  # replay checkpointed it
        forced = reconcile_handler.main_handler(StepRequest(step="reconcile").model_dump(mode="json"), {})
        assert forced["walked"] == 1
    finally:
        reconcile_handler.shell.use(None)
