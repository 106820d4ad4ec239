"""The termination protection on the whole local stack, with the realistic app model (exit on SIGTERM).

The same small gated rollout twice: with the protection (the default) every old Pod's containers wait in
their drain-wait preStop until the CLB weight is 0, so no request fails; with it turned off
(`CLB_DIRECT_PRESTOP_MODE=off`) the old Pods close their listeners on deletion while the CLB still sends
them traffic, and requests fail. Counts only, no timing.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from demo.report import RunReport
from demo.runner import DemoOptions, run_one
from demo.stack import LocalStack
from tests.integration.demo.test_demo import SMALL


@pytest.mark.timeout(240)
def test_a_gated_rollout_loses_nothing_because_old_pods_wait_for_their_drain(tmp_path: Path) -> None:
    answers: list[dict[str, object]] = []

    def inspect(stack: LocalStack, _report: RunReport) -> None:
        for line in stack.log_path.read_text().splitlines():
            if '"prestop.answered"' in line:
                answers.append(json.loads(line))

    report = run_one(
        DemoOptions(scenario=SMALL, out=tmp_path), gate=True, console=Console(file=io.StringIO()), while_kept=inspect
    )
    assert report.ok, [(p.name, p.detail) for p in report.phases]
    assert report.rollout_failures() == 0
    # Three old Pods replaced (and more deleted by the scale and delete phases): each held until drained.
    drained = [a for a in answers if a["status"] == "drained"]
    assert len(drained) >= 3, answers


@pytest.mark.timeout(240)
def test_the_same_rollout_without_the_protection_fails_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLB_DIRECT_PRESTOP_MODE", "off")
    report = run_one(DemoOptions(scenario=SMALL, out=tmp_path), gate=True, console=Console(file=io.StringIO()))
    assert report.rollout_failures() > 0, [(p.name, p.detail) for p in report.phases]
