"""Idle reconcile cost (architecture rule 10): a pass over K settled Services, checkpoint skip vs `force=True`.

K direct-access Services, each with its own CLB and 3 ready Pods, are converged by reconcile passes
until a pass walks nothing. Then, with nothing changed, one more normal pass (side A: checkpoints
match, one target read per CLB) is measured against one forced pass (side B: every step re-reads the
Service, its Pods and the CLB). The emulator's rate limit is lifted here: this measures calls and
CPU, not throttling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.adapters.store_factory import open_store
from shared.reconcile import reconcile_all
from tests.bench.common import (
    Row,
    call_counts,
    clb_model,
    clb_settings,
    diff_counts,
    make_deps,
    pod_ip,
    ready_pod,
    web_service,
    writes,
)
from tests.support.fakes import FakeCluster

PODS_PER_SERVICE = 3
SETTLE_PASSES = 4


@dataclass
class PassCost:
    idle_s: float
    idle_calls: dict[str, int]
    forced_s: float
    forced_calls: dict[str, int]


def _idle_pass(k: int) -> PassCost:
    with clb_model(rate_limit_per_s=1_000_000) as (model, endpoint):
        settings = clb_settings(endpoint, "memory://", clb_write_rate_per_s=1_000_000)
        cluster = FakeCluster()
        deps = make_deps(settings, open_store("memory://"), cluster)
        try:
            for s in range(k):
                name = f"svc-{s}"
                cluster.put_service(web_service(name))
                for p in range(PODS_PER_SERVICE):
                    cluster.put_pod(ready_pod(f"{name}-{p}", pod_ip(p, subnet=s + 1), app=name))
            for _ in range(SETTLE_PASSES):
                if reconcile_all(deps)["walked"] == 0:
                    break
            else:
                raise RuntimeError(f"{k} Services did not settle within {SETTLE_PASSES} reconcile passes")
            before = call_counts(model)
            started = time.perf_counter()
            idle = reconcile_all(deps)
            idle_s = time.perf_counter() - started
            idle_calls = diff_counts(before, call_counts(model))
            before = call_counts(model)
            started = time.perf_counter()
            reconcile_all(deps, force=True)
            forced_s = time.perf_counter() - started
            forced_calls = diff_counts(before, call_counts(model))
        finally:
            deps.store.close()
    if idle["skipped"] != k:
        raise RuntimeError(f"idle pass skipped {idle['skipped']} of {k} Services")
    return PassCost(idle_s, idle_calls, forced_s, forced_calls)


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    for k in (10,) if quick else (10, 50, 100):
        r = _idle_pass(k)
        idle_calls, forced_calls = r.idle_calls, r.forced_calls
        case = f"K={k} Services, nothing changed"
        details = {"idle_calls": idle_calls, "forced_calls": forced_calls, "idle_writes": writes(idle_calls)}
        rows.append(
            Row(
                "idle reconcile",
                case,
                "CLB API calls",
                "checkpoint skip",
                sum(idle_calls.values()),
                "force=True",
                sum(forced_calls.values()),
                details,
            )
        )
        rows.append(Row("idle reconcile", case, "wall s", "checkpoint skip", r.idle_s, "force=True", r.forced_s))
    return rows
