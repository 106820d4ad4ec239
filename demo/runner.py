"""`clb-direct demo` end to end: run the scenario on a fresh `LocalStack`, once or twice, and report.

Called by `cli/cmd_demo.py` (which only parses flags). Each run gets its own stack and run directory under
`--out` (function logs, SQLite store, kubeconfig, dead letters), a live view while it runs, and a `RunReport`;
the reports are written as `report.json` and `timeline.png`, and summarised on the terminal. `--compare`
runs the same rollout again without the readiness gate and prints both side by side. `--keep` leaves the
(gated) stack running with its Service for `clb-direct plan/replay/events` until Ctrl-C.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from demo.report import RunReport, write_json, write_png
from demo.scenario import Scenario, ScenarioOptions
from demo.stack import LocalStack, StackOptions
from demo.view import DemoView

# Which variables `clb-direct plan/replay/events` need to join a kept stack (the rest is the runtime's own).
USER_ENV = (
    "CLB_DIRECT_STORE_URL",
    "CLB_DIRECT_CLB_ENDPOINT",
    "CLB_DIRECT_CLB_PROTOCOL",
    "CLB_DIRECT_SECRET_ID",
    "CLB_DIRECT_SECRET_KEY",
    "CLB_DIRECT_VPC_ID",
    "CLB_DIRECT_KUBECONFIG",
    "CLB_DIRECT_INVOKER",
    "CLB_DIRECT_LOCAL_INVOKE_URL",
)


@dataclass(frozen=True)
class DemoOptions:
    scenario: ScenarioOptions
    out: Path
    compare: bool = False
    keep: bool = False
    control_plane: bool = False  # a real kube-apiserver + controller manager + etcd instead of the simulator

    def stack_options(self, run_dir: Path, gate: bool) -> StackOptions:
        # Poll health at least as often as the CLB checks it: notifications are the fast path, the poll the net.
        return StackOptions(
            run_dir=run_dir,
            gate=gate,
            health_poll_s=float(max(2, self.scenario.health_interval)),
            control_plane=self.control_plane,
            runtime_process=True,
        )


def run_one(
    options: DemoOptions,
    *,
    gate: bool,
    console: Console,
    while_kept: Callable[[LocalStack, RunReport], None] | None = None,
) -> RunReport:
    label = "with readiness gate" if gate else "without readiness gate"
    scenario_options = replace(options.scenario, gate=gate, cleanup=while_kept is None)
    report = RunReport(label=label, gate_enabled=gate, started_at=time.time(), settings=scenario_options.settings())
    run_dir = options.out / ("run-gated" if gate else "run-gateless")
    console.print(f"[bold]{label}[/]: starting the local stack (logs: {run_dir / 'functions.log'})")
    with LocalStack(options.stack_options(run_dir, gate)) as stack:
        report.stats["stack_started_s"] = round(time.time() - report.started_at, 2)
        scenario = Scenario(stack, scenario_options, report)
        with DemoView(scenario, console):
            scenario.run()
        if while_kept is not None and report.ok:
            while_kept(stack, report)
    return report


def keep_running(console: Console, wait_until_stopped: Callable[[], None]) -> Callable[[LocalStack, RunReport], None]:
    """Print how to join the kept stack, then block in `wait_until_stopped` (the caller's, e.g. until SIGINT)."""

    def wait(stack: LocalStack, report: RunReport) -> None:
        console.print(summary_table([report]))
        console.print("\n[bold]The stack is still running.[/] Service default/web is bound; try:")
        exports = " ".join(f"{k}={shlex.quote(stack.env[k])}" for k in USER_ENV if k in stack.env)
        console.print(f"  export {exports}", highlight=False, soft_wrap=True)
        console.print("  clb-direct plan --service default/web")
        console.print("  clb-direct replay --service default/web    # or --pod default/<pod>")
        console.print("  clb-direct events")
        console.print(f"  kubectl --kubeconfig {stack.kubeconfig} get pods -o wide", highlight=False)
        for name, value in stack.describe().items():
            console.print(f"  {name}: {value}", highlight=False)
        console.print("Ctrl-C to stop.")
        wait_until_stopped()

    return wait


def summary_table(runs: list[RunReport]) -> Table:
    table = Table(title="clb-direct demo: phases", title_justify="left")
    table.add_column("phase")
    for run in runs:
        table.add_column(run.label)
    names = list(dict.fromkeys(p.name for run in runs for p in run.phases))
    for name in names:
        cells = []
        for run in runs:
            phase = next((p for p in run.phases if p.name == name), None)
            if phase is None:
                cells.append("[dim]not run[/]")
                continue
            mark = "[green]met[/]" if phase.met else "[red]NOT MET[/]"
            duration = (phase.ended or phase.started) - phase.started
            failed = f"[red]{phase.requests_failed} failed[/]" if phase.requests_failed else "0 failed"
            cell = f"{mark} {duration:.1f} s, {phase.requests_ok} ok / {failed}"
            cells.append(cell if phase.met else f"{cell}\n[dim]{phase.detail}[/]")
        table.add_row(name, *cells)
    table.add_row(
        "[bold]failed requests during the rollout[/]", *[f"[bold]{run.rollout_failures()}[/]" for run in runs]
    )
    return table


def explain(runs: list[RunReport]) -> list[str]:
    notes = []
    gateless = next((r for r in runs if not r.gate_enabled), None)
    if gateless is not None and gateless.rollout_failures() == 0:
        notes.append(
            "The run without the gate saw no failed requests this time: its old Pods were drained only after "
            "new ones had already passed the CLB health check (a slow machine or a long grace period can hide "
            "the race). Without the gate nothing guarantees that order; try a larger --health-interval."
        )
    return notes


def run_demo(
    options: DemoOptions,
    console: Console | None = None,
    *,
    wait_while_kept: Callable[[], None] | None = None,
) -> int:
    """Run the demo; with `options.keep`, `wait_while_kept` blocks while the stack stays up (the CLI's
    waits for SIGINT/SIGTERM; the demo package never imports the CLI)."""
    if options.keep and wait_while_kept is None:
        raise ValueError("DemoOptions(keep=True) needs wait_while_kept: the caller decides how long the stack stays")
    console = console or Console()
    options.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    runs = [
        run_one(
            options,
            gate=True,
            console=console,
            while_kept=keep_running(console, wait_while_kept) if wait_while_kept and options.keep else None,
        )
    ]
    if options.compare:
        runs.append(run_one(options, gate=False, console=console))
    write_json(options.out / "report.json", runs)
    write_png(options.out / "timeline.png", runs)
    console.print(summary_table(runs))
    for note in explain(runs):
        console.print(f"[yellow]{note}[/]")
    for run in runs:
        if run.failure_summary:
            console.print(f"[bold]{run.label}[/]: {len(run.failures)} failed requests, by backend (Pod, backend, state")
            console.print("then, CLB weight and health then -> what the CLB proxy saw):")
            for line in run.failure_summary:
                console.print(f"  {line}", highlight=False, soft_wrap=True)
    ok = all(run.ok for run in runs)
    gated = runs[0]
    console.print(
        f"{'[green]PASS[/]' if ok else '[red]FAIL[/]'}: {gated.rollout_failures()} failed requests during the gated "
        f"rollout; report {options.out / 'report.json'}, timeline {options.out / 'timeline.png'} "
        f"({time.time() - started:.0f} s)"
    )
    return 0 if ok else 1
