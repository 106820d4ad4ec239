"""run_step dispatch, delayed requests and the handler shell's error mapping (no network)."""

from __future__ import annotations

import pytest

from shared.adapters.store_factory import open_store
from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.errors import InvalidInput
from shared.domain.models import ObjectKey, StepRequest
from shared.shell import FunctionShell, parse_step_event, run_step_event
from shared.steps import run_step
from tests.support.fakes import FakeCluster, StepQueue


@pytest.fixture
def deps() -> Deps:
    settings = Settings.load({}, store_url="memory://", function_timeout_s=60)
    return Deps(
        settings=settings, store=open_store("memory://"), clock=FakeClock(), cluster=FakeCluster(), invoker=StepQueue()
    )


def test_unknown_step_is_invalid(deps: Deps) -> None:
    with pytest.raises(InvalidInput, match="router"):
        run_step(deps, StepRequest(step="reconcile"))


def test_delayed_request_goes_into_the_schedule_and_nothing_sleeps(deps: Deps) -> None:
    clock = deps.clock
    assert isinstance(clock, FakeClock)
    later = StepRequest(step="flip", pods=[ObjectKey.parse("ns/gone")], not_before=clock.now() + 20)
    result = run_step(deps, later)
    assert clock.sleeps == [] and result["result"] == {"scheduled": ["flip:-:pod:ns/gone"]}
    [item] = deps.store.schedule_list()
    assert item.key == "flip:-:pod:ns/gone" and item.due_at == clock.now() + 20


def test_scheduled_claims_are_completed_only_when_the_step_succeeds(deps: Deps) -> None:
    from shared.schedule import drain_schedule

    clock = deps.clock
    queue = deps.invoker
    assert isinstance(clock, FakeClock) and isinstance(queue, StepQueue)
    run_step(deps, StepRequest(step="flip", pods=[ObjectKey.parse("ns/gone")], not_before=clock.now() + 20))
    clock.advance(20)
    assert drain_schedule(deps)["due"] == 1
    [(function, payload)] = queue.queue
    assert function == "flip" and payload["scheduled"][0]["key"] == "flip:-:pod:ns/gone"
    assert drain_schedule(deps)["due"] == 0  # claimed: a second timer does not take it
    run_step(deps, StepRequest.model_validate(payload))
    assert deps.store.schedule_list() == []


def test_flip_takes_no_idempotency_claim_so_duplicates_never_wait(deps: Deps) -> None:
    request = StepRequest(step="flip", pods=[ObjectKey.parse("ns/p")], correlation_id="audit-1")
    first = run_step(deps, request)
    cluster = deps.cluster
    assert isinstance(cluster, FakeCluster)
    from shared.domain.models import GATE_CONDITION_TYPE, PodInfo

    # The Pod appears afterwards: a redelivery of the same request acts on the new state (a flip is
    # level-triggered and writes only a changed condition), and nothing was claimed in the store.
    cluster.put_pod(PodInfo(namespace="ns", name="p", uid="u", readiness_gates=[GATE_CONDITION_TYPE]))
    again = run_step(deps, request)
    assert first["result"]["changed"] == 0 and again["result"]["changed"] == 1
    assert run_step(deps, request)["result"]["changed"] == 0, "the second redelivery finds nothing to do"


def test_parse_step_event() -> None:
    assert parse_step_event("bind", {"services": [{"namespace": "a", "name": "b"}]}).step == "bind"
    with pytest.raises(InvalidInput, match="sent to function"):
        parse_step_event("bind", {"step": "flip"})
    with pytest.raises(InvalidInput, match="JSON object"):
        parse_step_event("bind", ["not", "a", "dict"])


def test_shell_maps_errors(deps: Deps) -> None:
    shell = FunctionShell("flip")
    shell.use(deps)
    bad = run_step_event(shell, {"step": "flip", "pods": "nope"}, {})
    assert bad["ok"] is False and bad["error"] == "InvalidInput"
    later = run_step_event(shell, {"step": "flip", "not_before": deps.clock.now() + 3600}, {})
    assert later["ok"] and later["result"] == {"scheduled": ["flip:-:all"]}
    ok = run_step_event(shell, {"step": "flip"}, {"request_id": "r1"})
    assert ok["ok"] and ok["result"] == {"pods": [], "changed": 0}


def test_shell_release_closes_what_it_holds_and_starts_cold_again() -> None:
    class ClosingCluster(FakeCluster):
        closed = False

        def close(self) -> None:
            self.closed = True

    store = open_store("memory://")
    cluster = ClosingCluster()
    shell = FunctionShell("flip")
    shell.use(Deps(settings=Settings.load({}), store=store, clock=FakeClock(), cluster=cluster))
    shell.begin({"request_id": "r1"})
    shell.release()
    assert cluster.closed
    assert shell.begin({"request_id": "r2"}) is True  # the next container starts cold
    shell.release()  # nothing held: a no-op


def test_the_claim_expires_after_the_invocations_real_timeout(deps: Deps) -> None:
    from shared.shell import function_timeout_s

    assert function_timeout_s({"time_limit_in_ms": 120000}, deps.settings) == 120.0
    assert function_timeout_s({}, deps.settings) == 60.0  # CLB_DIRECT_FUNCTION_TIMEOUT_S
    assert function_timeout_s({"time_limit_in_ms": "bogus"}, deps.settings) == 60.0
    ttls = []
    original = deps.store.idem_claim

    def spy(*args, **kwargs):
        ttls.append(kwargs["in_progress_ttl_s"])
        return original(*args, **kwargs)

    deps.store.idem_claim = spy  # type: ignore[method-assign]
    shell = FunctionShell("bind")
    shell.use(deps)
    event = {"step": "bind", "correlation_id": "audit-1"}
    assert run_step_event(shell, event, {"request_id": "r1", "time_limit_in_ms": 120000})["ok"]
    assert run_step_event(shell, {**event, "correlation_id": "audit-2"}, {"request_id": "r2"})["ok"]
    assert ttls == [120.0, 60.0]
