"""Coalescing (architecture rule 5): a rollout wave bound through the real bind step vs a per-Pod write loop.

Side A: N ready Pods of one Service; `binders` threads, each a separate "function instance" (its own
`TencentClbGateway`, its own SQLite connection to one shared store file), run the real bind step
(`run_step`, `ClbWriter`) for their share of the Pods at the same moment. Writers coalesce through the
CLB lease, so the wave should cost about ceil(N/500) BatchRegisterTargets calls. Side B: the same
threads register the same Pods one call per Pod (`register_targets(lb, [target])`), the naive loop.
Both sides use the production limits: the emulator's 20 requests/s per action and the gateway's shared
20 writes/s bucket, so wall time shows what the calls cost on a real CLB.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.domain.models import ListenerSpec, LoadBalancerSpec, ObjectKey, StepRequest, Target
from shared.steps import run_step
from tests.bench.common import (
    Row,
    call_counts,
    clb_model,
    clb_settings,
    diff_counts,
    make_deps,
    open_sqlite,
    pod_ip,
    ready_pod,
    temp_dir,
    web_service,
    writes,
)
from tests.support.fakes import FakeCluster

BINDERS = 8
QUOTA = 1000


def _run_threads(count: int, work: Callable[[int], None]) -> float:
    """Start `count` threads at one barrier; returns the wall time until the last one ends."""
    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"binder-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} binder thread(s) failed; first: {errors[0]!r}") from errors[0]
    return elapsed


def _wave(n: int, binders: int) -> dict[str, Any]:
    with temp_dir("bench-coalesce-") as workdir, clb_model(backend_quota=QUOTA) as (model, endpoint):
        settings = clb_settings(endpoint, "memory://", backend_quota=QUOTA)
        cluster = FakeCluster()
        service = web_service()
        pods = [ready_pod(f"web-{i}", pod_ip(i)) for i in range(n)]
        for pod in pods:
            cluster.put_pod(pod)
        stores = [open_sqlite(workdir) for _ in range(binders)]
        try:
            deps = [make_deps(settings, store, cluster) for store in stores]
            gateway = deps[0].require_clb()
            lb = gateway.create_load_balancer(LoadBalancerSpec(name="bench-web", vpc_id="vpc-bench"))
            naive_lb = gateway.create_load_balancer(LoadBalancerSpec(name="bench-naive", vpc_id="vpc-bench"))
            gateway.create_listener(lb.lb_id, ListenerSpec(port=80, protocol="TCP"))
            naive_listener = gateway.create_listener(naive_lb.lb_id, ListenerSpec(port=80, protocol="TCP"))
            annotated = service.model_copy(
                update={"annotations": {**service.annotations, "service.kubernetes.io/loadbalance-id": lb.lb_id}}
            )
            cluster.put_service(annotated)
            shares = [pods[i::binders] for i in range(binders)]
            # Let the write bucket refill so neither side starts with the other's leftovers.
            time.sleep(1.1)

            before = call_counts(model)

            def bind_share(index: int) -> None:
                keys = [ObjectKey(namespace=p.namespace, name=p.name) for p in shares[index]]
                run_step(deps[index], StepRequest(step="bind", pods=keys, reason="bench wave"))

            coalesced_s = _run_threads(binders, bind_share)
            coalesced = diff_counts(before, call_counts(model))
            bound = len(gateway.list_targets(lb.lb_id))
            time.sleep(1.1)

            before = call_counts(model)

            def naive_share(index: int) -> None:
                clb = deps[index].require_clb()
                for pod in shares[index]:
                    target = Target(listener_id=naive_listener, ip=pod.ip or "", port=8080, weight=10)
                    clb.register_targets(naive_lb.lb_id, [target])

            naive_s = _run_threads(binders, naive_share)
            naive = diff_counts(before, call_counts(model))
            naive_bound = len(gateway.list_targets(naive_lb.lb_id))
        finally:
            for store in stores:
                store.close()
    if bound != n or naive_bound != n:
        raise RuntimeError(f"wave of {n}: bound {bound} via steps, {naive_bound} naively; expected {n} each")
    return {
        "coalesced_s": coalesced_s,
        "coalesced_writes": writes(coalesced),
        "coalesced_calls": coalesced,
        "naive_s": naive_s,
        "naive_writes": writes(naive),
        "naive_calls": naive,
    }


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    for n in (50,) if quick else (50, 200, 500):
        result = _wave(n, BINDERS)
        details = {
            "pods": n,
            "binders": BINDERS,
            "expected_batch_calls": math.ceil(n / 500),
            "coalesced_calls": result["coalesced_calls"],
            "naive_calls": result["naive_calls"],
        }
        case = f"wave N={n}, {BINDERS} binders"
        rows.append(
            Row(
                "coalescing",
                case,
                "CLB write calls",
                "bind step",
                result["coalesced_writes"],
                "per-Pod loop",
                result["naive_writes"],
                details,
            )
        )
        rows.append(
            Row("coalescing", case, "wall s", "bind step", result["coalesced_s"], "per-Pod loop", result["naive_s"])
        )
    return rows
