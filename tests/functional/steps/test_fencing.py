"""Fencing through the real bind step: a batch whose CLB lease is taken over mid-way makes no CLB write;
its work waits in the CLB's queue for the writer that took over."""

from __future__ import annotations

from typing import Any

from shared.domain.clb_work import ClbWork
from shared.keys import lease_name, pending_queue
from tests.functional.steps.conftest import Env, pod, service


def test_a_bind_whose_lease_was_taken_over_never_calls_the_clb(env: Env, monkeypatch: Any) -> None:
    env.cluster.put_service(service())
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    before = env.counts().get("BatchRegisterTargets", 0)
    env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    ttl = env.deps.settings.lease_ttl_s
    real_list_pods = env.cluster.list_pods
    taken: list[int] = []

    def stalls_then_loses_the_lease(namespace: str, selector: dict[str, str]) -> list[Any]:
        if not taken:  # the bind invocation stalls past its lease and another writer takes the CLB over
            env.clock.advance(ttl + 1)
            other = env.deps.store.acquire_lease(lease_name(lb_id), "other-writer", ttl_s=ttl, now=env.clock.now())
            assert other is not None
            taken.append(other.token)
        return real_list_pods(namespace, selector)

    monkeypatch.setattr(env.cluster, "list_pods", stalls_then_loses_the_lease)
    result = env.invoke("bind", {"step": "bind", "services": [{"namespace": "default", "name": "web"}]})
    assert result["ok"], result
    assert env.counts().get("BatchRegisterTargets", 0) == before  # the fenced call was never made
    assert env.targets(lb_id) == set()
    queued = [ClbWork.decode(m) for m in env.deps.store.pending_members(pending_queue(lb_id))]
    assert queued == [ClbWork.bind("default/web")]

    # The writer that took over drains the queue (here: it releases, and the next bind is the writer).
    env.deps.store.release_lease(lease_name(lb_id), "other-writer", taken[0])
    assert env.invoke("bind", {"step": "bind", "services": [{"namespace": "default", "name": "web"}]})["ok"]
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    assert env.deps.store.pending_members(pending_queue(lb_id)) == []
