"""The demo's report: a JSON document and a PNG timeline.

The timeline plots, against seconds since the start: Pods Ready, CLB backends healthy (Alive with weight > 0),
requests per second and failed requests per second, with each phase of the scenario shaded and labelled.
`--compare` renders the gated and the gateless run one above the other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Sample:
    t: float
    pods_ready: int
    pods_total: int
    backends_healthy: int
    backends_total: int


@dataclass
class Phase:
    name: str
    started: float
    ended: float | None = None
    expectation: str = ""
    met: bool | None = None
    detail: str = ""
    requests_ok: int = 0
    requests_failed: int = 0


@dataclass
class RunReport:
    label: str
    gate_enabled: bool
    started_at: float
    settings: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    traffic: dict[int, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)  # every failed request, attributed
    failure_summary: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(phase.met for phase in self.phases)

    def rollout_failures(self) -> int:
        return sum(p.requests_failed for p in self.phases if p.name == "rolling update")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["rollout_failed_requests"] = self.rollout_failures()
        data["traffic"] = {str(k): v for k, v in self.traffic.items()}
        return data


def write_json(path: Path, runs: list[RunReport]) -> None:
    document = {"runs": [run.to_dict() for run in runs], "ok": all(run.ok for run in runs if run.gate_enabled)}
    path.write_text(json.dumps(document, indent=2, default=str))


def write_png(path: Path, runs: list[RunReport]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(runs), 1, figsize=(12, 4.2 * len(runs)), squeeze=False)
    for axis, run in zip(axes[:, 0], runs, strict=True):
        _plot_run(axis, run)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_run(axis: Any, run: RunReport) -> None:
    start = run.started_at
    times = [s.t - start for s in run.samples]
    axis.step(times, [s.pods_ready for s in run.samples], where="post", label="Pods Ready", color="tab:blue")
    axis.step(
        times, [s.backends_healthy for s in run.samples], where="post", label="CLB backends healthy", color="tab:green"
    )
    axis.set_ylabel("Pods / backends")
    axis.set_xlabel("seconds")
    traffic = sorted(run.traffic.items())
    # Each traffic bucket covers one wall-clock second: centre it on that second.
    seconds = [t - start + 0.5 for t, _ in traffic]
    right = axis.twinx()
    right.plot(seconds, [v["ok"] for _, v in traffic], color="tab:gray", alpha=0.6, label="successful requests/s")
    failed_per_s = [v["failed"] for _, v in traffic]
    right.bar(seconds, failed_per_s, color="tab:red", alpha=0.55, width=1.0, label="failed requests/s")
    right.set_ylabel("requests per second")
    # Pods and backends stay readable on top of the traffic bars.
    axis.set_zorder(right.get_zorder() + 1)
    axis.patch.set_visible(False)
    for index, phase in enumerate(run.phases):
        end = (phase.ended or phase.started) - start
        axis.axvspan(phase.started - start, end, color=f"C{index % 10}", alpha=0.08)
        axis.text(
            phase.started - start,
            0.98,
            phase.name,
            rotation=90,
            va="top",
            fontsize=7,
            transform=axis.get_xaxis_transform(),
        )
    failed = run.rollout_failures()
    axis.set_title(f"{run.label}: {failed} failed requests during the rolling update")
    lines, labels = axis.get_legend_handles_labels()
    lines2, labels2 = right.get_legend_handles_labels()
    axis.legend(lines + lines2, labels + labels2, loc="lower left", fontsize=8)
