"""Shared pieces of the benchmarks: result rows, the printed table, the CLB/step harness, a redis-server.

Every benchmark module (`bench_*.py`) exposes `run(quick: bool) -> list[Row]`; `tests/bench/__main__.py`
runs them, prints one table row per case with both sides measured side by side in the same run, and
writes all rows to `bench-results.json`. Nothing here asserts timings: the numbers are for people.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import SystemClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.models import GATE_CONDITION_TYPE, ContainerPort, PodInfo, ServiceInfo, ServicePort
from shared.logging import configure_logging
from shared.ports import Store
from tests.support.net import free_port

WRITE_ACTIONS = frozenset(
    {
        "BatchRegisterTargets",
        "BatchDeregisterTargets",
        "BatchModifyTargetWeight",
        "RegisterTargets",
        "DeregisterTargets",
        "ModifyTargetWeight",
        "CreateListener",
        "ModifyListener",
        "DeleteListener",
        "CreateLoadBalancer",
        "DeleteLoadBalancer",
    }
)


@dataclass
class Row:
    """One case: side A (what clb-direct does) against side B (the baseline), both measured now."""

    bench: str
    case: str
    metric: str
    a_label: str
    a: float
    b_label: str
    b: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """b / a: how many times more the baseline costs (or takes) than clb-direct's way."""
        return None if self.a == 0 else self.b / self.a

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def format_table(rows: list[Row]) -> str:
    header = ("bench", "case", "metric", "A", "value A", "B", "value B", "B/A")
    lines = [
        (
            r.bench,
            r.case,
            r.metric,
            r.a_label,
            _fmt(r.a),
            r.b_label,
            _fmt(r.b),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
        )
        for r in rows
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in lines)
    return "\n".join(out)


def quiet_logs() -> None:
    """Steps log every action at info; a benchmark of thousands of them must not time the printing."""
    configure_logging("error", force=True)


# --- the CLB + step harness ------------------------------------------------------------------------


def clb_settings(endpoint: str, store_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "clb_endpoint": endpoint,
        "secret_id": "AKIDbench",
        "secret_key": "bench-key",
        "store_url": store_url,
        "cluster_id": "cls-bench",
        "vpc_id": "vpc-bench",
        "clb_call_deadline_s": 120.0,
    }
    values.update(overrides)
    return Settings.load({}, **values)


@contextmanager
def clb_model(**config: Any) -> Iterator[tuple[ClbModel, str]]:
    """The CLB emulator model behind the `responses` transport (no sockets), task lock released at once."""
    with clb_fake(config=ClbEmulatorConfig(task_duration_s=0, **config)) as (model, endpoint):
        yield model, endpoint


def make_deps(settings: Settings, store: Store, cluster: Any, *, throttle: bool = True) -> Deps:
    """One function instance's dependencies: its own gateway; the shared bucket in `store` if `throttle`."""
    clock = SystemClock()
    gateway = TencentClbGateway.from_settings(settings, store=store if throttle else None, clock=clock)
    return Deps(settings=settings, store=store, clock=clock, clb=gateway, cluster=cluster, invoker=None)


def call_counts(model: ClbModel) -> dict[str, int]:
    return dict(model.calls()["counts"])


def diff_counts(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def writes(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k in WRITE_ACTIONS)


def web_service(name: str = "web", *, namespace: str = "default", app: str | None = None) -> ServiceInfo:
    return ServiceInfo(
        namespace=namespace,
        name=name,
        uid=f"svc-uid-{namespace}-{name}",
        type="LoadBalancer",
        annotations={"service.cloud.tencent.com/direct-access": "true"},
        selector={"app": app or name},
        ports=[ServicePort(name="http", port=80, target_port="http")],
    )


def ready_pod(name: str, ip: str, *, app: str = "web", namespace: str = "default", rv: str = "1") -> PodInfo:
    return PodInfo(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        resource_version=rv,
        labels={"app": app},
        ip=ip,
        phase="Running",
        containers_ready=True,
        creation_timestamp="2023-11-14T22:13:20Z",
        readiness_gates=[GATE_CONDITION_TYPE],
        owner_kind="ReplicaSet",
        owner_name=f"{app}-rs1",
        annotations={"tke.cloud.tencent.com/networks": "tke-route-eni"},
        container_ports=[ContainerPort(name="http", container_port=8080)],
    )


def pod_ip(index: int, *, subnet: int = 0) -> str:
    return f"10.{subnet}.{index // 250}.{index % 250 + 1}"


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


# --- a real redis-server on a free loopback port ------------------------------------------------------


@contextmanager
def redis_server(workdir: Path, *, start_deadline_s: float = 30.0) -> Iterator[str]:
    """Start `redis-server` (no persistence) on 127.0.0.1 and yield its URL; stopped on exit."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH; run scripts/ensure-redis.sh (make bench does)")
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen([*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        admin = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        deadline = time.monotonic() + start_deadline_s
        up = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                up = bool(admin.ping())
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        if up:
            try:
                yield f"redis://127.0.0.1:{port}/0"
            finally:
                admin.close()
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)
            return
        admin.close()
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate(timeout=15)
        last_error = stderr.decode(errors="replace")[-500:]
    raise RuntimeError(f"redis-server did not start on a free loopback port after 3 tries: {last_error}")


def open_sqlite(workdir: Path, name: str = "bench.db") -> Store:
    return open_store(f"sqlite:///{workdir / name}")
