"""HealthTracker and HealthCheckSpec: the CLB's Unknown/Alive/Dead/Close rules, without any probing."""

from __future__ import annotations

import pytest

from emulators.clb.dataplane.health import HealthCheckSpec, HealthTracker, TargetKey, Transition

KEY = TargetKey("lb-1", "lbl-1", "127.0.10.1", 8080)


def spec(**fields: object) -> HealthCheckSpec:
    return HealthCheckSpec.from_api({"HealthNum": 2, "UnHealthNum": 3, **fields})


def feed(tracker: HealthTracker, results: str) -> list[Transition]:
    """Feed a string of probe results ('+' pass, '-' fail); return the transitions in order."""
    transitions = []
    for result in results:
        transition = tracker.record(KEY, result == "+")
        if transition is not None:
            transitions.append(transition)
    return transitions


def moves(transitions: list[Transition]) -> list[tuple[str, str]]:
    return [(t.old, t.new) for t in transitions]


def test_new_target_is_unknown_until_health_num_successes() -> None:
    tracker = HealthTracker()
    assert tracker.configure(KEY, spec()) is None
    assert tracker.status(KEY) == "Unknown"
    assert feed(tracker, "+") == []
    assert moves(feed(tracker, "+")) == [("Unknown", "Alive")]
    assert tracker.status(KEY) == "Alive"


def test_new_target_goes_dead_after_unhealth_num_failures() -> None:
    tracker = HealthTracker()
    tracker.configure(KEY, spec())
    assert moves(feed(tracker, "---")) == [("Unknown", "Dead")]


def test_counters_need_consecutive_results() -> None:
    tracker = HealthTracker()
    tracker.configure(KEY, spec())
    # Alternating results never reach either threshold.
    assert feed(tracker, "+-+-+--+-") == []
    assert tracker.status(KEY) == "Unknown"


def test_alive_dead_alive_cycle_uses_both_thresholds() -> None:
    tracker = HealthTracker()
    tracker.configure(KEY, spec())
    transitions = feed(tracker, "++" + "++--" + "---" + "-+" + "++")
    assert moves(transitions) == [("Unknown", "Alive"), ("Alive", "Dead"), ("Dead", "Alive")]


def test_one_failure_does_not_flap_an_alive_target() -> None:
    tracker = HealthTracker()
    tracker.configure(KEY, spec())
    feed(tracker, "++")
    assert feed(tracker, "--+--+") == []
    assert tracker.status(KEY) == "Alive"


def test_switch_off_reports_close_and_ignores_probes_and_switch_on_restarts() -> None:
    tracker = HealthTracker()
    tracker.configure(KEY, spec())
    feed(tracker, "++")
    off = tracker.configure(KEY, spec(HealthSwitch=0))
    assert off == Transition(KEY, "Alive", "Close")
    assert feed(tracker, "----") == []
    assert tracker.configure(KEY, spec(HealthSwitch=0)) is None
    on = tracker.configure(KEY, spec(HealthSwitch=1))
    assert on == Transition(KEY, "Close", "Unknown")
    assert moves(feed(tracker, "++")) == [("Unknown", "Alive")]


def test_new_target_under_disabled_checks_is_close_at_once() -> None:
    tracker = HealthTracker()
    assert tracker.configure(KEY, spec(HealthSwitch=0)) == Transition(KEY, "Unknown", "Close")


def test_threshold_change_applies_to_running_counters() -> None:
    tracker = HealthTracker()
    tracker.configure(KEY, spec(HealthNum=5))
    feed(tracker, "++")
    tracker.configure(KEY, spec(HealthNum=3))
    assert moves(feed(tracker, "+")) == [("Unknown", "Alive")]


def test_forget_and_untracked_results() -> None:
    tracker = HealthTracker()
    assert tracker.record(KEY, True) is None
    tracker.configure(KEY, spec())
    assert KEY in tracker and list(tracker) == [KEY]
    tracker.forget(KEY)
    assert KEY not in tracker and tracker.status(KEY) is None
    tracker.forget(KEY)


def test_spec_defaults_follow_the_clb_api() -> None:
    default = HealthCheckSpec.from_api({})
    assert (default.enabled, default.check_type, default.timeout_s, default.interval_s) == (True, "TCP", 2.0, 5.0)
    assert (default.healthy_threshold, default.unhealthy_threshold, default.http_codes) == (3, 3, 31)
    assert (default.http_method, default.http_path, default.check_port) == ("HEAD", "/", None)


def test_spec_reads_api_fields() -> None:
    parsed = HealthCheckSpec.from_api(
        {
            "HealthSwitch": 1,
            "TimeOut": 3,
            "IntervalTime": 7,
            "HealthNum": 4,
            "UnHealthNum": 6,
            "CheckType": "http",
            "HttpCode": 2,
            "HttpCheckPath": "/healthz",
            "HttpCheckDomain": "app.example",
            "HttpCheckMethod": "get",
            "CheckPort": 9000,
            "HttpVersion": "HTTP/1.0",
        }
    )
    assert parsed.check_type == "HTTP" and parsed.http_method == "GET"
    assert (parsed.timeout_s, parsed.interval_s, parsed.healthy_threshold, parsed.unhealthy_threshold) == (3, 7, 4, 6)
    assert (parsed.http_path, parsed.http_domain, parsed.http_version) == ("/healthz", "app.example", "HTTP/1.0")
    assert parsed.probe_port(8080) == 9000


@pytest.mark.parametrize("check_port", [None, -1, ""])
def test_check_port_unset_probes_the_backend_port(check_port: object) -> None:
    assert HealthCheckSpec.from_api({"CheckPort": check_port}).probe_port(8080) == 8080


@pytest.mark.parametrize(
    ("mask", "status", "accepted"),
    [
        (2, 200, True),
        (2, 204, True),
        (2, 302, False),
        (4, 302, True),
        (2 | 8, 404, True),
        (2 | 8, 500, False),
        (16, 503, True),
        (1, 101, True),
        (31, 600, False),
        (31, 99, False),
    ],
)
def test_http_code_bitmask(mask: int, status: int, accepted: bool) -> None:
    assert HealthCheckSpec.from_api({"HttpCode": mask}).accepts_status(status) is accepted
