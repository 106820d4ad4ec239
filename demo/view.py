"""The demo's terminal view: a live `rich` dashboard on a TTY, plain progress lines otherwise (CI, pipes).

`DemoView(scenario)` is used by `clb-direct demo` (`cli/cmd_demo.py`) around `Scenario.run()`. The dashboard
shows the current phase, the Pods (phase, Ready, readiness gate, version, IP), the CLB's backends (health and
weight) and the load's success and failure counts, refreshed four times a second from the scenario's observer
(`demo/observe.py`). Without a TTY it prints one line per phase change and a status line every few seconds.
Function logs never reach the terminal: the stack writes them to its run directory.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from demo.scenario import Scenario

_HEALTH_STYLE = {"Alive": "green", "Dead": "red", "Unknown": "yellow", "Close": "dim"}


def _yes_no(value: bool | None, *, none: str = "-") -> Text:
    if value is None:
        return Text(none, style="dim")
    return Text("True", style="green") if value else Text("False", style="red")


class DemoView:
    def __init__(self, scenario: Scenario, console: Console | None = None, *, plain_every_s: float = 5.0) -> None:
        self.scenario = scenario
        self.console = console or Console()
        self.live = self.console.is_terminal
        self._plain_every_s = plain_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

    # -------------------------------------------------------------------------------------------- figures

    def _load_counts(self) -> tuple[int, int, float]:
        load = self.scenario.load
        if load is None:
            return 0, 0, 0.0
        now = time.time()
        ok, failed = load.between(load.started_at, now + 1)
        recent_ok, recent_failed = load.between(now - 2, now)
        return ok, failed, (recent_ok + recent_failed) / 2

    def status_line(self) -> str:
        snap = self.scenario.observer.latest
        live = snap.live_pods()
        phase = self.scenario.current_phase()
        ok, failed, _ = self._load_counts()
        versions = ",".join(sorted({p.version for p in live})) or "-"
        return (
            f"[{phase.name if phase else 'starting'}] pods ready {sum(p.ready for p in live)}/{len(live)} "
            f"({versions}), terminating {len(snap.pods) - len(live)}, backends serving "
            f"{sum(b.serving for b in snap.backends)}/{len(snap.backends)}, requests ok {ok} failed {failed}"
        )

    def render(self) -> Group:
        snap = self.scenario.observer.latest
        report = self.scenario.report
        phase = self.scenario.current_phase()
        title = Text.assemble(
            ("clb-direct demo ", "bold"),
            (f"({report.label}, readiness gate {'on' if report.gate_enabled else 'off'})  ", "dim"),
            ("phase: ", "bold"),
            (phase.name if phase else "starting", "cyan"),
        )
        pods = Table(title="Pods", expand=False, title_justify="left")
        for column in ("name", "version", "phase", "ready", "gate", "ip"):
            pods.add_column(column)
        for pod in snap.pods:
            name = Text(pod.name, style="dim strike" if pod.terminating else "")
            state = "Terminating" if pod.terminating else pod.phase
            pods.add_row(name, pod.version, state, _yes_no(pod.ready), _yes_no(pod.gate, none="(no gate)"), pod.ip)
        backends = Table(title=f"CLB {snap.lb_id or '-'} {snap.vip or ''}", expand=False, title_justify="left")
        for column in ("target", "weight", "health"):
            backends.add_column(column)
        for backend in snap.backends:
            style = _HEALTH_STYLE.get(backend.health, "")
            weight = Text(str(backend.weight), style="dim" if backend.weight == 0 else "")
            backends.add_row(f"{backend.ip}:{backend.port}", weight, Text(backend.health, style=style))
        ok, failed, rate = self._load_counts()
        load = Text.assemble(
            ("load: ", "bold"),
            (f"{ok} ok", "green"),
            ", ",
            (f"{failed} failed", "red bold" if failed else "green"),
            f", {rate:.0f} req/s",
        )
        phases = Text()
        for done in report.phases:
            mark = {True: ("✓", "green"), False: ("✗", "red"), None: ("…", "yellow")}[done.met]
            phases.append(f" {mark[0]} {done.name}", style=mark[1])
        if self.console.width < 140:  # side by side needs a wide terminal; stack the tables otherwise
            return Group(title, phases, pods, backends, load)
        grid = Table.grid(padding=(0, 2))
        grid.add_row(pods, backends)
        return Group(title, phases, grid, load)

    # -------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self.live:
            self._live = Live(
                console=self.console, get_renderable=self.render, refresh_per_second=4, redirect_stderr=False
            )
            self._live.start()
            return
        self._thread = threading.Thread(target=self._plain, name="demo-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _plain(self) -> None:
        announced = 0
        last_line = 0.0
        while not self._stop.wait(0.25):
            phases = self.scenario.report.phases
            while announced < len(phases):
                self.console.print(f"phase {announced + 1}: {phases[announced].name}", highlight=False, soft_wrap=True)
                announced += 1
            if time.monotonic() - last_line >= self._plain_every_s:
                last_line = time.monotonic()
                self.console.print("  " + self.status_line(), highlight=False, soft_wrap=True)

    def __enter__(self) -> DemoView:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
