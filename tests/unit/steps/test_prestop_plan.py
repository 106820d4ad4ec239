"""The prestop planners are pure: the Pod and its deletion deadline, then each poll's binding records, in; hold,
release or warn out, with the reason."""

from __future__ import annotations

from typing import Any

from shared.domain.models import BindingRecord, ObjectRef, PodInfo
from shared.domain.prestop_plan import (
    DrainSnapshot,
    Hold,
    PrestopLimits,
    PrestopPlan,
    PrestopSnapshot,
    Release,
    StartDrain,
    WarnPod,
    plan_drain_poll,
    plan_prestop,
)

NOW = 1000.0
LIMITS = PrestopLimits(drain_budget_s=10, linger_s=1, max_hold_s=60, poll_s=0.25)
POD = PodInfo(namespace="ns", name="web-1", uid="uid-1", deletion_timestamp="2026-01-01T00:00:00Z")
REF = ObjectRef(kind="Pod", namespace="ns", name="web-1", uid="uid-1")


def start(deadline: float | None, pod: PodInfo | None = POD) -> PrestopPlan:
    return plan_prestop(PrestopSnapshot(pod=pod, deletion_deadline=deadline, now=NOW, limits=LIMITS))


def binding(listener: str, state: str, weight: int, drain_started_at: float | None = None) -> BindingRecord:
    return BindingRecord(
        lb_id="lb-1",
        listener_id=listener,
        pod_uid="uid-1",
        namespace="ns",
        pod_name="web-1",
        service="ns/web",
        ip="10.0.0.5",
        port=8080,
        weight=weight,
        state=state,  # type: ignore[arg-type]
        drain_started_at=drain_started_at,
    )


def poll(bindings: list[BindingRecord], *, waited_s: float, hold_s: float = 28.0, now: float = NOW) -> PrestopPlan:
    return plan_drain_poll(
        DrainSnapshot(pod=REF, bindings=bindings, now=now, waited_s=waited_s, hold_s=hold_s, limits=LIMITS)
    )


def only(plan: PrestopPlan, kind: type[Any]) -> Any:
    (action,) = [a for a in plan.actions if isinstance(a, kind)]
    return action


def test_a_pod_gone_or_not_being_deleted_is_answered_at_once() -> None:
    assert only(start(None, pod=None), Release).status == "not-found"
    released = start(None)
    assert only(released, Release).status == "not-terminating" and released.pod_name == "ns/web-1"
    assert released.hold is None


def test_a_terminating_pod_is_held_until_its_deadline_less_the_sigterm_reserve() -> None:
    held = start(NOW + 30)
    assert [a.kind for a in held.actions] == ["hold"] and held.hold_s == 28.0 and held.pod == REF
    assert start(NOW + 3600).hold_s == 60.0  # never more than max_hold_s


def test_a_grace_period_too_short_for_the_drain_is_warned_about_before_holding() -> None:
    short = start(NOW + 5)
    assert [a.kind for a in short.actions] == ["warn_pod", "hold"]
    warning = only(short, WarnPod)
    assert warning.event == "GracePeriodTooShort" and "at least 12" in warning.message
    assert short.hold_s == 3.0


def test_a_held_call_is_released_once_every_listener_is_at_weight_0_for_the_linger() -> None:
    draining = [binding("a", "draining", 0, NOW - 0.5), binding("b", "draining", 0, NOW - 2)]
    assert only(poll(draining, waited_s=1), Hold).sleep_s == 0.25  # the later drain lingers 0.5 s more
    done = poll(draining, waited_s=1.5, now=NOW + 0.5)
    assert only(done, Release).status == "drained"
    assert only(poll([], waited_s=0), Release).status == "not-bound"


def test_a_weight_not_yet_0_keeps_the_call_held_never_past_the_window() -> None:
    waiting = poll([binding("a", "registered", 10)], waited_s=27.9)
    hold = only(waiting, Hold)
    assert abs(hold.sleep_s - 0.1) < 1e-9 and "weight not 0 yet on lb-1/a" in hold.reason


def test_the_end_of_the_window_releases_with_a_warning_saying_what_to_set() -> None:
    late = poll([binding("a", "registered", 10)], waited_s=28)
    assert [a.kind for a in late.actions] == ["warn_pod", "release"]
    warning, release = only(late, WarnPod), only(late, Release)
    assert warning.event == "DrainIncomplete" and release.status == "deadline" and release.message == warning.message
    assert "terminationGracePeriodSeconds to at least 12" in release.message


def test_a_hold_starts_the_drain_only_while_the_pod_still_takes_traffic() -> None:
    def holding(*bindings: BindingRecord) -> PrestopPlan:
        snap = PrestopSnapshot(pod=POD, deletion_deadline=NOW + 30, now=NOW, limits=LIMITS, bindings=list(bindings))
        return plan_prestop(snap)

    assert only(holding(binding("lbl-a", "registered", 10)), StartDrain).pod_uid == "uid-1"
    assert not [a for a in holding(binding("lbl-a", "draining", 0, NOW)).actions if isinstance(a, StartDrain)]
    assert not [a for a in holding().actions if isinstance(a, StartDrain)]  # never bound: nothing to drain
