"""Fencing through the real steps: a batch whose CLB lease is taken over mid-way makes no CLB write; its
work waits in the CLB's queue for the writer that took over. A write that waits for its CLB task longer
than the lease lasts keeps the lease (renewed at each task poll), so no second writer starts beside it."""

from __future__ import annotations

from typing import Any

from shared.domain.clb_work import ClbWork
from shared.domain.models import ServicePort
from shared.keys import lease_name, pending_queue, service_lease_name
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


def test_a_write_waiting_longer_than_its_lease_for_the_clb_task_keeps_the_lease(env: Env, monkeypatch: Any) -> None:
    env.cluster.put_service(service())
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    ttl, task_timeout = env.deps.settings.lease_ttl_s, env.deps.settings.clb_task_timeout_s
    assert ttl < task_timeout  # the shipped defaults: a task may take longer than the lease lasts
    env.clb.update_config({"task_duration_s": ttl * 1.5})
    edited = env.cluster.services[("default", "web")]
    ports = [*edited.ports, ServicePort(port=443, target_port=8443)]
    env.cluster.put_service(edited.model_copy(update={"ports": ports}))
    lease_of_service = service_lease_name("default/web")
    waited: list[tuple[float, str | None]] = []
    sleep = env.clock.sleep

    def watching_sleep(seconds: float) -> None:
        sleep(seconds)
        lease = env.deps.store.current_lease(lease_of_service, now=env.clock.now())
        waited.append((env.clock.now(), lease.holder if lease else None))

    monkeypatch.setattr(env.clock, "sleep", watching_sleep)
    start = env.clock.now()
    result = env.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
    assert result["ok"], result
    assert sorted(lst.port for lst in env.deps.require_clb().list_listeners(lb_id)) == [80, 443]
    assert waited and waited[-1][0] - start > ttl  # the CreateListener task outlasted one lease TTL
    assert all(holder is not None and holder.startswith("service-") for _, holder in waited), waited
    assert env.deps.store.current_lease(lease_of_service, now=env.clock.now()) is None  # released after
