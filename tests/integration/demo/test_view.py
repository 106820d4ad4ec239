"""The demo's terminal view renders Pods, backends, load and phases from the scenario's latest snapshot."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

from rich.console import Console

from demo.observe import BackendView, PodView, Snapshot
from demo.report import Phase, RunReport
from demo.view import DemoView


def _scenario() -> SimpleNamespace:
    snap = Snapshot(
        t=time.time(),
        pods=[
            PodView("web-a", "Running", True, True, "v1", "127.10.0.2", terminating=True),
            PodView("web-b", "Running", False, False, "v2", "127.10.0.3", terminating=False),
        ],
        backends=[BackendView("127.10.0.2", 8080, 0, "Alive"), BackendView("127.10.0.3", 8080, 10, "Unknown")],
        lb_id="lb-12345678",
        vip="127.1.0.1",
    )
    report = RunReport(label="with readiness gate", gate_enabled=True, started_at=time.time(), settings={})
    report.phases.append(Phase(name="rolling update", started=time.time()))
    return SimpleNamespace(
        observer=SimpleNamespace(latest=snap),
        report=report,
        load=None,
        current_phase=lambda: report.phases[-1],
    )


def test_dashboard_shows_pods_gates_backends_and_phase() -> None:
    console = Console(file=io.StringIO(), width=160, force_terminal=False)
    view = DemoView(_scenario(), console)  # type: ignore[arg-type]
    console.print(view.render())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for expected in ("rolling update", "web-a", "Terminating", "web-b", "127.10.0.3:8080", "Unknown", "lb-12345678"):
        assert expected in text
    assert "0 ok" in text and "0 failed" in text


def test_plain_status_line_without_a_terminal() -> None:
    view = DemoView(_scenario(), Console(file=io.StringIO()))  # type: ignore[arg-type]
    assert not view.live
    line = view.status_line()
    assert line.startswith("[rolling update] pods ready 0/1 (v2), terminating 1, backends serving 0/2")
