"""The demo end to end at a small size: every phase met, zero failed requests in the gated rollout, reports.

Runs `demo.runner.run_demo` (what `clb-direct demo` runs) on the real local stack: CLB emulator with real
health probes and forwarding, the cluster simulator with HTTPS admission and the audit webhook, the relay,
the local runtime running every function. The gateless run is checked separately: its rollout must fail
requests, which is the reason the readiness gate exists.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from demo.runner import DemoOptions, run_demo, run_one
from demo.scenario import ScenarioOptions

SMALL = ScenarioOptions(replicas=3, max_surge=1, max_unavailable=0, health_interval=3, rps=20, steady_s=2)


@pytest.mark.timeout(240)
def test_gated_demo_meets_every_phase_with_zero_failed_requests(tmp_path: Path) -> None:
    out = tmp_path / "report"
    console = Console(file=io.StringIO(), width=200)
    code = run_demo(DemoOptions(scenario=SMALL, out=out), console)
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    document = json.loads((out / "report.json").read_text())
    [run] = document["runs"]
    assert code == 0, printed
    assert document["ok"] and run["ok"]
    names = [p["name"] for p in run["phases"]]
    assert names == [
        "apply Service",
        "create Deployment",
        "steady load",
        "rolling update",
        "scale to 4",
        "scale to 3",
        "delete a Pod",
        "delete Service",
    ]
    assert all(p["met"] for p in run["phases"]), run["phases"]
    rollout = next(p for p in run["phases"] if p["name"] == "rolling update")
    assert rollout["requests_failed"] == 0 and rollout["requests_ok"] > 0
    assert run["rollout_failed_requests"] == 0
    assert sum(second["failed"] for second in run["traffic"].values()) == 0
    # The scale-up was observed by the phase itself (4 live Pods, all Ready and serving). The 0.5 s samples may
    # miss it: with apps that exit on SIGTERM the old Pods are gone quickly and the next phase starts at once.
    scale_up = next(p for p in run["phases"] if p["name"] == "scale to 4")
    assert "4 v2 Pods Ready" in scale_up["detail"], scale_up
    assert run["stats"]["runtime"]["dead_letters"] == 0
    assert (out / "timeline.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "run-gated" / "functions.log").stat().st_size > 0
    assert "phase 4: rolling update" in printed and "PASS" in printed


@pytest.mark.timeout(180)
def test_without_the_gate_the_same_rollout_fails_requests(tmp_path: Path) -> None:
    options = DemoOptions(scenario=SMALL, out=tmp_path)
    report = run_one(options, gate=False, console=Console(file=io.StringIO()))
    assert [p.name for p in report.phases] == [
        "apply Service",
        "create Deployment",
        "steady load",
        "rolling update",
        "delete Service",
    ]
    assert report.ok, [(p.name, p.detail) for p in report.phases]
    # Old Pods are drained as soon as new ones run, before the CLB has seen the new ones healthy.
    assert report.rollout_failures() > 0
