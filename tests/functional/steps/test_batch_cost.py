"""A Pod event's bind batch costs what changed, not the Service's size (issue 11).

A rollout was O(N^2): each Pod event's batch listed every Pod of the Service and read two store keys
per Pod. Here one more Pod is bound behind a Service of 4 and then of 60 serving Pods, and the batch's
Pod reads, store reads and CLB calls are counted (no timing): they must not grow with the Service.
"""

# ruff: noqa: F811  (the step harness fixtures are imported and requested by name)

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.functional.steps.conftest import Env, env, pod, service, settings_overrides  # noqa: F401

WEB = {"namespace": "default", "name": "web"}


def _serve(env: Env, first: int, last: int) -> None:
    """Pods web-<first>..web-<last> bound, healthy and gated True, through Service-wide binds."""
    for i in range(first, last + 1):
        env.cluster.put_pod(pod(f"web-{i}", f"10.0.{i // 250}.{i % 250 + 1}"))
    if first == 1:
        env.cluster.put_service(service())
        assert env.invoke("service", "service_web")["ok"]
    else:
        env.invoke("bind", {"step": "bind", "services": [WEB], "reason": "scale up"})
    env.drain()
    lb_id = env.lb_id()
    for i in range(first, last + 1):
        env.set_health(lb_id, f"10.0.{i // 250}.{i % 250 + 1}", 8080)
    env.invoke("flip", {"step": "flip", "services": [WEB], "reason": "healthy"})
    env.drain()
    gates = {i: env.gate(f"web-{i}") for i in range(first, last + 1)}
    assert all(g is not None and g[0] == "True" for g in gates.values()), gates


def _count_store_reads(monkeypatch: pytest.MonkeyPatch, env: Env) -> Counter[str]:
    reads: Counter[str] = Counter()
    store = env.deps.store
    for name in ("kv_get", "kv_get_many", "get_binding"):
        real = getattr(store, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            reads[_name] += 1
            if _name == "kv_get_many":
                reads["kv keys"] += len(set(args[0]))
            return _real(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    return reads


def _one_pod_bind(monkeypatch: pytest.MonkeyPatch, env: Env, i: int) -> dict[str, Any]:
    """What binding one new Pod on its own event costs: Pod reads, store reads, CLB calls of the batch."""
    name = f"web-{i}"
    env.cluster.put_pod(pod(name, f"10.0.{i // 250}.{i % 250 + 1}"))
    with monkeypatch.context() as patch:
        reads = _count_store_reads(patch, env)
        pods_before, calls_before = env.cluster.pods_read, Counter(env.counts())
        event = {"step": "bind", "services": [WEB], "pods": [{"namespace": "default", "name": name}], "reason": "ready"}
        result = env.invoke("bind", event)
        pods_read = env.cluster.pods_read - pods_before
        calls = Counter(env.counts()) - calls_before
    [clb] = result["result"]["clbs"]
    assert [r.split("@")[0] for r in clb["registered"]] == [f"default/{name}"]
    env.drain()
    return {"pods read": pods_read, "store reads": dict(reads), "clb calls": dict(calls)}


def test_a_pod_event_s_batch_costs_the_same_behind_4_and_60_serving_pods(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve(env, 1, 4)
    small = _one_pod_bind(monkeypatch, env, 5)
    _serve(env, 6, 60)
    large = _one_pod_bind(monkeypatch, env, 61)
    assert small == large
    # The event's Pod is read twice (the step finds its Services, the batch re-reads it): never the Service.
    assert small["pods read"] == 2
    assert small["store reads"].get("kv_get", 0) == 0 and small["store reads"]["kv keys"] == 2
    assert small["clb calls"]["BatchRegisterTargets"] == 1


def test_a_service_wide_bind_still_reads_the_whole_service_once(env: Env) -> None:
    _serve(env, 1, 10)
    before = env.cluster.pods_read
    env.invoke("bind", {"step": "bind", "services": [WEB], "reason": "reconcile"})
    assert env.cluster.pods_read - before == 10  # one list of the Service's Pods, no per-Pod reads


def _one_pod_leaves(env: Env, i: int, *, gone: bool) -> dict[str, Any]:
    """What taking one Pod out costs on its own event: drained while terminating, deregistered once gone."""
    name = f"web-{i}"
    if gone:
        env.cluster.remove_pod("default", name)
    else:
        env.cluster.update_pod("default", name, deletion_timestamp="2023-11-14T22:20:00Z")
    pods_before, calls_before = env.cluster.pods_read, Counter(env.counts())
    event = {"step": "unbind", "pods": [{"namespace": "default", "name": name}], "pod_uids": [f"uid-{name}"]}
    result = env.invoke("unbind", {**event, "reason": "deleted"})
    assert result["ok"], result
    return {"pods read": env.cluster.pods_read - pods_before, "clb calls": dict(Counter(env.counts()) - calls_before)}


def test_taking_one_pod_out_costs_the_same_behind_4_and_60_serving_pods(env: Env) -> None:
    _serve(env, 1, 5)
    small = (_one_pod_leaves(env, 5, gone=False), _one_pod_leaves(env, 5, gone=True))
    _serve(env, 6, 61)
    large = (_one_pod_leaves(env, 61, gone=False), _one_pod_leaves(env, 61, gone=True))
    assert small == large
    drained, deregistered = small
    assert drained["clb calls"]["BatchModifyTargetWeight"] == 1 and drained["pods read"] <= 2
    assert deregistered["clb calls"]["BatchDeregisterTargets"] == 1 and deregistered["pods read"] == 0
