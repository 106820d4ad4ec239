"""Admission latency: a warm selector index vs the cold fallback, and the admission module's import cost.

Per review (the real `review_admission` with an AdmissionReview from tests/events/): side A reads the
namespace's selectors from the store's index (warm marker present); side B finds the index cold and
lists the namespace's Services through `KubernetesCluster` (the real `kubernetes` client over HTTPS to
the cluster simulator's API server, 20 Services of which 5 are direct access) before deciding. The
import row starts fresh interpreters: importing `functions.admission.handler` alone vs together with
the Kubernetes adapter, and reports whether the admission import pulled in `kubernetes` (it must not).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from emulators.cluster.server import ClusterApiServer
from emulators.cluster.simulator import version_info
from emulators.cluster.store import ObjectStore
from shared.adapters.kubernetes_api import KubernetesCluster
from shared.adapters.store_factory import open_store
from shared.clock import SystemClock
from shared.config import Settings
from shared.keys import warm_key
from shared.steps.admission import review_admission
from tests.bench.common import Row, temp_dir
from tests.conftest import load_event

SERVICES = 20
DIRECT = 5
REPO_ROOT = Path(__file__).resolve().parents[2]

_IMPORT_PROBE = """
import json, sys, time
started = time.perf_counter()
import functions.admission.handler
pulled_kubernetes = "kubernetes" in sys.modules
if {with_kubernetes}:
    import shared.adapters.kubernetes_api
print(json.dumps({{"s": time.perf_counter() - started, "kubernetes": pulled_kubernetes}}))
"""


def _seed(store: ObjectStore) -> None:
    for i in range(SERVICES):
        annotations = {"service.cloud.tencent.com/direct-access": "true"} if i < DIRECT else {}
        store.create(
            "services",
            "default",
            {
                "metadata": {"name": f"svc-{i}", "annotations": annotations},
                "spec": {
                    "type": "LoadBalancer",
                    "selector": {"app": "web" if i == 0 else f"app-{i}"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                },
            },
        )


def _review_latency(reviews: int) -> tuple[list[float], list[float]]:
    body = load_event("admission_pod_create")["body"]
    clock = SystemClock()
    objects = ObjectStore(history_size=200)
    _seed(objects)
    server = ClusterApiServer.self_signed(objects, version=version_info("1.28.3")).start()
    store = open_store("memory://")
    try:
        with temp_dir("bench-admission-") as workdir:
            kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
            cluster = KubernetesCluster.from_settings(
                Settings.load({}, kubeconfig=str(kubeconfig), store_url="memory://"), clock=clock
            )
            try:
                warm: list[float] = []
                cold: list[float] = []
                for _ in range(reviews):
                    store.kv_delete(warm_key("default"))
                    started = time.perf_counter()
                    decision = review_admission(store, clock, body, cluster_factory=lambda: cluster)
                    cold.append(time.perf_counter() - started)
                    if not decision.patch:
                        raise RuntimeError("cold review did not add the gate for a selected Pod")
                    started = time.perf_counter()
                    decision = review_admission(store, clock, body, cluster_factory=lambda: cluster)
                    warm.append(time.perf_counter() - started)
                    if not decision.patch:
                        raise RuntimeError("warm review did not add the gate for a selected Pod")
            finally:
                cluster.close()
    finally:
        store.close()
        server.stop()
    return warm, cold


def _import_time(with_kubernetes: bool, runs: int) -> tuple[float, bool]:
    samples: list[float] = []
    pulled = False
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE.format(with_kubernetes=with_kubernetes)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        samples.append(float(result["s"]))
        pulled = pulled or bool(result["kubernetes"])
    return min(samples), pulled


def run(quick: bool) -> list[Row]:
    reviews = 30 if quick else 200
    warm, cold = _review_latency(reviews)
    ms = 1000.0
    rows = [
        Row(
            "admission",
            f"review, {SERVICES} Services ({DIRECT} direct)",
            "median ms",
            "warm index",
            statistics.median(warm) * ms,
            "cold: list Services",
            statistics.median(cold) * ms,
            {"reviews": reviews, "warm_p95_ms": _p95(warm) * ms, "cold_p95_ms": _p95(cold) * ms},
        )
    ]
    runs = 2 if quick else 5
    alone, pulled = _import_time(False, runs)
    both, _ = _import_time(True, runs)
    if pulled:
        print("WARNING: importing functions.admission.handler imported the kubernetes client", file=sys.stderr)
    rows.append(
        Row(
            "admission",
            "cold-start import (min of fresh interpreters)",
            "import ms",
            "admission handler",
            alone * ms,
            "+ kubernetes adapter",
            both * ms,
            {"admission_imports_kubernetes": pulled, "runs": runs},
        )
    )
    return rows


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
