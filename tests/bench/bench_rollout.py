"""Rollout bench: a rolling update of N Pods under steady load, gated vs. no gate, with the product's own cost.

Three processes per case: the world (`tests/bench/rollout_world.py`: CLB emulator with real health checks
and forwarding, relay, cluster simulator with a real HTTP server per Pod), the functions runtime
(`clb-direct serve`, measured: CPU seconds from /proc, invocations from `/_runtime/stats`) and this one
(the user: kubernetes client, the load generator through the VIP, a Pod watch). Per N (maxSurge 25 %,
maxUnavailable 0) it prints, all measured in the same run:

- failed requests through the VIP, gated and with no gate (no admission webhook: no readiness gate and
  no termination protection injected) as the baseline;
- gate latency (CLB first reports the Pod Alive on its last listener -> gate True, from the Pod timelines
  the steps record), bind latency (the watch sees ContainersReady -> registered on the last listener),
  drain latency (the watch sees the deletion -> weight 0 applied on every listener), p50/p99;
- function invocations and CPU seconds per Pod replaced;
- CLB write calls against a per-Pod baseline of 3 writes per Pod and listener (register, weight 0,
  deregister one by one);
- rollout wall time (patch -> every new Pod Ready, no old Pod serving) against the floor
  waves x (Pod start + HealthNum x interval).
One more row repeats N = 100 with two direct-access Services over the Deployment.

`BENCH_ROLLOUT_SIZES=100,200` runs only those N (one Service each; `2x100` is N = 100 with two Services),
`BENCH_ROLLOUT_BASELINE=0` skips the no-gate runs, `BENCH_RUNTIME_WORKERS=8` widens the runtime's lanes
(invocations at once per function; 4 by default, as `clb-direct serve`), `BENCH_PROFILE=1` records the
functions runtime during the rollout with py-spy, when installed (every thread holding the GIL: CPU, not
waits), as collapsed stacks in the run directory's `profile.txt` (keep it with BENCH_KEEP=1).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from demo.load import LoadGenerator
from demo.runtime_process import listening
from demo.scenario import ScenarioOptions, deployment, service, tke_service_config
from demo.stack import free_port
from shared.adapters.store_factory import open_store
from shared.timeline import percentile, pod_timeline
from tests.bench.common import WRITE_ACTIONS, Row, format_table, temp_dir

HEALTH_INTERVAL_S = 3
HEALTH_NUM = 2  # healthNum of the demo's TkeServiceConfig
POD_START_S = 0.3
RPS = 50.0
DEFAULT_QUOTA = 200
NAMESPACE = "default"


@dataclass
class Case:
    n: int
    gated: bool
    services: int = 1

    @property
    def surge(self) -> int:
        return max(1, math.ceil(self.n * 0.25))

    @property
    def quota(self) -> int:
        """Backends per CLB at the rollout's peak (N + surge): the default 200 holds N = 200 only without
        surge, so above it the CLB quota is raised (and CLB_DIRECT_BACKEND_QUOTA with it), as a user must."""
        return max(DEFAULT_QUOTA, self.n + self.surge)

    @property
    def label(self) -> str:
        return f"N={self.n}" + (f", {self.services} Services" if self.services > 1 else "")


@dataclass
class PodWatch:
    """First time the user's watch saw each Pod ContainersReady, and deleted."""

    containers_ready: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    by_ip: dict[str, str] = field(default_factory=dict)  # the latest Pod seen with each IP
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, core: client.CoreV1Api) -> None:
        stream = watch.Watch()
        while not self.stop.is_set():
            try:
                for event in stream.stream(core.list_namespaced_pod, NAMESPACE, timeout_seconds=5):
                    self._see(event["object"])
                    if self.stop.is_set():
                        break
            except Exception:  # the bench's own observer: a broken watch restarts
                time.sleep(0.2)
        stream.stop()

    def _see(self, pod: Any) -> None:
        name, now = pod.metadata.name, time.time()
        env = pod.spec.containers[0].env or []
        self.versions.setdefault(name, next((e.value for e in env if e.name == "VERSION"), "?"))
        if pod.status.pod_ip:
            self.by_ip[pod.status.pod_ip] = name
        if pod.metadata.deletion_timestamp is not None:
            self.deleted.setdefault(name, now)
        for c in pod.status.conditions or []:
            if c.type == "ContainersReady" and c.status == "True":
                self.containers_ready.setdefault(name, now)


class World:
    """The world process: started from a config file, spoken to over stdin/stdout JSON lines."""

    def __init__(self, run_dir: Path, runtime_url: str, secrets_: dict[str, str], *, quota: int) -> None:
        cfg = {
            "run_dir": str(run_dir),
            "quota": quota,
            "runtime_url": runtime_url,
            "vip_block": secrets.randbelow(250) + 2,
            "pod_start_delay_s": POD_START_S,
            "max_grace_s": 30.0,
            **secrets_,
        }
        path = run_dir / "world.json"
        path.write_text(json.dumps(cfg))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.rollout_world", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()
        self._lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"rollout world exited ({self.proc.poll()}); see its world.log")
        data: dict[str, Any] = json.loads(line)
        return data

    def snapshot(self) -> dict[str, Any]:
        return self._ask("snapshot")

    def failed_connections(self, since: float) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self._ask(f"connections {since}")["connections"]
        return records

    def _ask(self, command: str) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            return self._read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)


def _runtime_env(
    run_dir: Path, world: World, secrets_: dict[str, str], port: int, gated: bool, quota: int
) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLB_DIRECT_")},
        "CLB_DIRECT_STORE_URL": f"sqlite:///{run_dir / 'state.db'}",
        "CLB_DIRECT_CLB_ENDPOINT": world.info["clb_endpoint"],
        "CLB_DIRECT_CLB_PROTOCOL": "http",
        "CLB_DIRECT_SECRET_ID": secrets_["secret_id"],
        "CLB_DIRECT_SECRET_KEY": secrets_["secret_key"],
        "CLB_DIRECT_VPC_ID": "vpc-bench",
        "CLB_DIRECT_CLUSTER_ID": "cls-bench",
        "CLB_DIRECT_KUBECONFIG": world.info["kubeconfig"],
        "CLB_DIRECT_INVOKER": "local",
        "CLB_DIRECT_LOCAL_INVOKE_URL": f"{url}/_invoke",
        "CLB_DIRECT_RELAY_HMAC_KEY": secrets_["hmac_key"],
        "CLB_DIRECT_HEALTH_NOTIFY_SECRET": secrets_["notify_secret"],
        "CLB_DIRECT_DRAIN_TIMEOUT_S": "10",
        "CLB_DIRECT_LOG_LEVEL": "info",
        "CLB_DIRECT_BACKEND_QUOTA": str(quota),
    }
    if gated:
        env["CLB_DIRECT_WEBHOOK_URL"] = f"https://127.0.0.1:{free_port()}/admission"
    return env


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _invocations(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_runtime/stats", timeout=10) as response:
        stats = json.loads(response.read())
    return int(sum(stats["invocations"].values()))


def _until(what: str, probe: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.25)
    raise RuntimeError(f"rollout bench: timed out after {timeout_s:.0f}s waiting for {what}")


def _services(case: Case) -> list[dict[str, Any]]:
    bodies = []
    for index in range(case.services):
        body = service()
        if index:
            body["metadata"]["name"] = f"web{index + 1}"
        bodies.append(body)
    return bodies


class Rollout:
    """One case: the three processes, the Deployment, the load, the measurements."""

    def __init__(self, case: Case, run_dir: Path) -> None:
        self.case, self.run_dir = case, run_dir
        self.secrets = {
            "secret_id": "AKIDbench" + secrets.token_hex(8),
            "secret_key": secrets.token_hex(16),
            "notify_secret": secrets.token_hex(16),
            "hmac_key": secrets.token_hex(16),
        }
        self.options = ScenarioOptions(
            replicas=case.n, max_surge=case.surge, max_unavailable=0, health_interval=HEALTH_INTERVAL_S
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.world = World(run_dir, self.url, self.secrets, quota=case.quota)
        env = _runtime_env(run_dir, self.world, self.secrets, self.port, case.gated, case.quota)
        self.log = (run_dir / "functions.log").open("w")
        self.runtime = subprocess.Popen(
            [
                *(sys.executable, "-m", "cli.main", "serve", "--port", str(self.port), "--health-poll", "2"),
                *("--workers", os.environ.get("BENCH_RUNTIME_WORKERS", "4")),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _until("the functions runtime", self._runtime_up, 60)
        api = config.new_client_from_config(self.world.info["kubeconfig"])
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.watch = PodWatch()
        if case.gated:
            # The guardian registers the webhook, then the runtime serves HTTPS with its certificate: a Pod
            # created in between is admitted without a gate (failurePolicy Ignore), so wait for both.
            _until("the admission webhook registration", self._webhook_registered, 60)
            port = int(env["CLB_DIRECT_WEBHOOK_URL"].rsplit(":", 1)[1].split("/", 1)[0])
            _until("the admission endpoint", lambda: listening(port), 60)

    def _webhook_registered(self) -> bool:
        items = self.admission.list_mutating_webhook_configuration().items
        return any(item.webhooks for item in items)

    def _runtime_up(self) -> bool:
        try:
            _invocations(self.url)
            return True
        except OSError:
            return False

    def stop(self) -> None:
        self.watch.stop.set()
        self.runtime.terminate()
        try:
            self.runtime.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.runtime.kill()
        self.log.close()
        self.world.stop()

    def serving(self, version: str) -> dict[str, Any] | None:
        """Every live Pod is `version`, Ready, and exactly them serving with weight > 0 on every CLB."""
        pods = [p for p in self.core.list_namespaced_pod(NAMESPACE).items if p.metadata.deletion_timestamp is None]
        wanted = [p for p in pods if self.watch.versions.get(p.metadata.name) == version]
        ready = [p for p in wanted if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        if len(pods) != self.case.n or len(ready) != self.case.n:
            return None
        ips = {p.status.pod_ip for p in ready}
        snap = self.world.snapshot()
        if len(snap["lbs"]) != self.case.services:
            return None
        for lb in snap["lbs"].values():
            for listener in lb["listeners"].values():
                live = {t["ip"] for t in listener["targets"] if t["weight"] > 0 and t["health"] == "Alive"}
                if live != ips:
                    return None
        return snap

    def drained(self, version: str) -> bool:
        snap = self.world.snapshot()
        ips = {p.status.pod_ip for p in self.core.list_namespaced_pod(NAMESPACE).items}
        gone = all(
            self.watch.versions.get(p.metadata.name) == version for p in self.core.list_namespaced_pod(NAMESPACE).items
        )
        targets = {t["ip"] for lb in snap["lbs"].values() for lst in lb["listeners"].values() for t in lst["targets"]}
        return gone and targets <= ips

    def run(self) -> dict[str, Any]:
        ns, n = NAMESPACE, self.case.n
        self.custom.create_namespaced_custom_object(
            "cloud.tencent.com", "v1alpha1", ns, "tkeserviceconfigs", tke_service_config(HEALTH_INTERVAL_S)
        )
        for body in _services(self.case):
            self.core.create_namespaced_service(ns, body)
        threading.Thread(target=self.watch.run, args=(self.core,), daemon=True, name="pod-watch").start()
        self.apps.create_namespaced_deployment(ns, deployment(self.options, "v1", n))
        snap = _until(f"{n} v1 Pods Ready and serving", lambda: self.serving("v1"), 120 + 2 * n)
        vip = next(iter(snap["lbs"].values()))["vip"]
        loads = [LoadGenerator(lb["vip"], 80, rps=RPS / self.case.services) for lb in snap["lbs"].values()]
        for load in loads:
            load.start()
        time.sleep(2.0)
        cpu0, inv0, counts0 = _cpu_s(self.runtime.pid), _invocations(self.url), snap["counts"]
        profiler = self._profile()
        t0 = time.time()
        self.apps.patch_namespaced_deployment("web", ns, deployment(self.options, "v2", n))
        _until(f"the rollout of {n} Pods to v2", lambda: self.serving("v2"), 120 + 3 * n)
        wall = time.time() - t0
        _until("old targets deregistered", lambda: self.drained("v2"), 60 + n)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        time.sleep(1.0)
        for load in loads:
            load.stop()
        cpu = _cpu_s(self.runtime.pid) - cpu0
        invocations = _invocations(self.url) - inv0
        counts = self.world.snapshot()["counts"]
        writes_by_action = {k: v - counts0.get(k, 0) for k, v in counts.items() if k in WRITE_ACTIONS}
        write_calls = sum(writes_by_action.values())
        failed = sum(load.between(t0 - 2.0, time.time() + 1)[1] for load in loads)
        ok = sum(load.between(t0 - 2.0, time.time() + 1)[0] for load in loads)
        errors: dict[str, int] = {}
        for load in loads:
            for kind, count in load.errors().items():
                errors[kind] = errors.get(kind, 0) + count
        attributed = self._attribute([f for load in loads for f in load.failures], t0 - 3.0)
        return {
            "vip": vip,
            "wall_s": wall,
            "cpu_s": cpu,
            "invocations": invocations,
            "write_calls": write_calls,
            "writes_by_action": {k: v for k, v in sorted(writes_by_action.items()) if v},
            "failed": failed,
            "ok": ok,
            "errors": errors,
            "failures_by_backend_state": attributed,
            "failures_by_10s": self._histogram([f.at for load in loads for f in load.failures], t0),
            **self._latencies(),
        }

    def _profile(self) -> subprocess.Popen[bytes] | None:
        """py-spy sampling the functions runtime's threads that hold the GIL (CPU, collapsed stacks), with
        BENCH_PROFILE=1."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if os.environ.get("BENCH_PROFILE") != "1" or not Path(spy).exists():
            return None
        out = self.run_dir / "profile.txt"
        command = [
            spy,
            "record",
            "--pid",
            str(self.runtime.pid),
            "--gil",
            "--format",
            "raw",
            "--rate",
            "50",
            "--nonblocking",
            "-o",
            str(out),
        ]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @staticmethod
    def _histogram(times: list[float], t0: float) -> dict[str, int]:
        """Failed requests per 10 s after the patch ("-10" is the 10 s before it): when they happened."""
        counts: dict[str, int] = {}
        for at in sorted(times):
            bucket = str(int((at - t0) // 10 * 10))
            counts[bucket] = counts.get(bucket, 0) + 1
        return counts

    def _attribute(self, failures: list[Any], since: float) -> dict[str, int]:
        """Failed requests by (proxy outcome, the backend Pod's version, terminating or not then)."""
        by_port: dict[int, list[dict[str, Any]]] = {}
        for record in self.world.failed_connections(since):
            by_port.setdefault(int(record["client_port"]), []).append(record)
        counts: dict[str, int] = {}
        for failure in failures:
            near = [r for r in by_port.get(failure.local_port, []) if abs(r["at"] - failure.at) <= 5.0]
            record = min(near, key=lambda r: abs(r["at"] - failure.at), default=None)
            if record is None:
                key = f"{failure.error}: no proxy record"
            else:
                pod = self.watch.by_ip.get(str(record["backend"]).rpartition(":")[0], "")
                deleted = self.watch.deleted.get(pod)
                state = "terminating" if deleted is not None and deleted <= failure.at else "live"
                where = f"{self.watch.versions.get(pod, '?')} {state}" if pod else "no backend"
                key = f"{record['outcome']} at {where}"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def _latencies(self) -> dict[str, Any]:
        store = open_store(f"sqlite:///{self.run_dir / 'state.db'}")
        gate, bind, drain = [], [], []
        try:
            for name, version in self.watch.versions.items():
                marks = pod_timeline(store, f"{NAMESPACE}/{name}")
                last = {m.stage: max(x.at for x in marks if x.stage == m.stage) for m in marks}
                if version == "v2":
                    if "alive" in last and "gate_true" in last:
                        gate.append(max(0.0, last["gate_true"] - last["alive"]))
                    if "registered" in last and name in self.watch.containers_ready:
                        bind.append(max(0.0, last["registered"] - self.watch.containers_ready[name]))
                elif name in self.watch.deleted and ("weight_zero" in last or "deregistered" in last):
                    # Out of rotation: weight 0, or deregistered at once when the Pod was already gone.
                    out = min(last.get("weight_zero", math.inf), last.get("deregistered", math.inf))
                    drain.append(max(0.0, out - self.watch.deleted[name]))
        finally:
            store.close()
        return {"gate_s": gate, "bind_s": bind, "drain_s": drain}


def _pq(values: list[float]) -> tuple[float, float]:
    return (percentile(values, 50), percentile(values, 99)) if values else (float("nan"), float("nan"))


def _measure(case: Case) -> dict[str, Any]:
    """One case in a fresh run directory (BENCH_KEEP=1 keeps it: functions.log, world.log, state.db)."""
    if os.environ.get("BENCH_KEEP"):
        run_dir = Path(tempfile.mkdtemp(prefix=f"bench-rollout-{case.n}-"))
        print(f"   keeping {run_dir}", file=sys.stderr, flush=True)
        return _measure_in(case, run_dir)
    with temp_dir(f"bench-rollout-{case.n}-") as run_dir:
        return _measure_in(case, run_dir)


def _measure_in(case: Case, run_dir: Path) -> dict[str, Any]:
    rollout = Rollout(case, run_dir)
    try:
        return rollout.run()
    finally:
        rollout.stop()


def _rows(case: Case, gated: dict[str, Any], baseline: dict[str, Any] | None, first: dict[str, Any]) -> list[Row]:
    """One case's rows; per-Pod costs are compared with the first (smallest) case of the run."""
    n, label = case.n, case.label
    waves = math.ceil(n / case.surge)
    # The emulator probes a new target within 0.5 s of its registration, so HealthNum successes take
    # (HealthNum - 1) intervals: that is the physical floor (the waves x (start + HealthNum x
    # interval) is in the details too).
    floor = waves * (POD_START_S + (HEALTH_NUM - 1) * HEALTH_INTERVAL_S)
    per_pod_writes = 3 * n * case.services
    g50, g99 = _pq(gated["gate_s"])
    b50, b99 = _pq(gated["bind_s"])
    d50, d99 = _pq(gated["drain_s"])
    details = {
        "pods": n,
        "services": case.services,
        "max_surge": case.surge,
        "waves": waves,
        "health_interval_s": HEALTH_INTERVAL_S,
        "health_num": HEALTH_NUM,
        "issue_floor_s": waves * (POD_START_S + HEALTH_NUM * HEALTH_INTERVAL_S),
        "errors": gated["errors"],
        "failures": gated["failures_by_backend_state"],
        "failures_by_10s": gated["failures_by_10s"],
        "ok_requests": gated["ok"],
        "baseline_errors": baseline["errors"] if baseline else None,
        "baseline_failures": baseline["failures_by_backend_state"] if baseline else None,
        "samples": {k: len(gated[k]) for k in ("gate_s", "bind_s", "drain_s")},
        "invocations": gated["invocations"],
        "cpu_s": gated["cpu_s"],
        "writes_by_action": gated["writes_by_action"],
    }
    ref = f"N={first['n']}"
    nan = float("nan")
    return [
        Row(
            "rollout",
            label,
            "failed requests",
            "gated",
            gated["failed"],
            "no gate",
            baseline["failed"] if baseline else nan,
            details,
        ),
        Row("rollout", label, "gate s Alive->True", "p50", g50, "p99", g99),
        Row("rollout", label, "bind s ContainersReady->registered", "p50", b50, "p99", b99),
        Row("rollout", label, "drain s deletion->out of rotation", "p50", d50, "p99", d99),
        Row(
            "rollout",
            label,
            "invocations per Pod",
            label,
            gated["invocations"] / n,
            ref,
            first["invocations"] / first["n"],
        ),
        Row("rollout", label, "function CPU s per Pod", label, gated["cpu_s"] / n, ref, first["cpu_s"] / first["n"]),
        Row("rollout", label, "CLB write calls", "gated", gated["write_calls"], "per-Pod", per_pod_writes),
        Row("rollout", label, "rollout wall s", "gated", gated["wall_s"], "floor", floor),
    ]


def _try(case: Case) -> dict[str, Any] | str:
    """The case's measurements, or what went wrong (one stuck case must not lose the others' rows)."""
    try:
        return {"n": case.n, **_measure(case)}
    except (RuntimeError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _cases(quick: bool) -> list[Case]:
    sizes = os.environ.get("BENCH_ROLLOUT_SIZES", "")
    if sizes:
        return [Case(int(n), True, int(s or 1)) for s, _, n in (p.strip().rpartition("x") for p in sizes.split(","))]
    return [Case(20, True)] if quick else [Case(50, True), Case(100, True), Case(200, True), Case(100, True, 2)]


def run(quick: bool) -> list[Row]:
    cases = _cases(quick)
    with_baseline = os.environ.get("BENCH_ROLLOUT_BASELINE", "1") != "0"
    rows: list[Row] = []
    first: dict[str, Any] | None = None
    for case in cases:
        print(f"   rollout {case.label} gated ...", file=sys.stderr, flush=True)
        gated = _try(case)
        baseline: dict[str, Any] | str | None = None
        if case.services == 1 and with_baseline:
            print(f"   rollout {case.label} without gate ...", file=sys.stderr, flush=True)
            baseline = _try(Case(case.n, False))
        if isinstance(gated, str):
            nan = float("nan")
            rows.append(Row("rollout", case.label, "failed requests", "gated", nan, "no gate", nan, {"error": gated}))
            print(f"   rollout {case.label}: {gated}", file=sys.stderr, flush=True)
            continue
        first = first or gated
        if isinstance(baseline, str):
            print(f"   rollout {case.label} baseline: {baseline}", file=sys.stderr, flush=True)
            baseline = None
        new_rows = _rows(case, gated, baseline, first)
        print(format_table(new_rows), file=sys.stderr, flush=True)
        rows.extend(new_rows)
    return rows
