"""Reconcile removes extra targets: hand-added ones, and a dead Pod's after the store lost its records.

End to end through the real CLB adapter against the emulator model (`clb_fake`), the fake cluster and
the step handlers; one `reconcile_all` is the timer pass. Listeners we do not manage on an adopted CLB
are never touched; a live Pod holding an extra target's IP has it drained first (IP reuse by a Pod
that needs the target is in test_ip_reuse.py).
"""

from __future__ import annotations

from dataclasses import replace

from shared.adapters.store_factory import open_store
from shared.domain.models import ListenerSpec, LoadBalancerSpec, Target
from shared.reconcile import reconcile_all
from tests.functional.steps.conftest import FUNCTIONS, Env, handler, pod, service


def bring_up(env: Env, *pods: tuple[str, str], **annotations: str) -> str:
    env.cluster.put_service(service(**annotations))
    for name, ip in pods:
        env.cluster.put_pod(pod(name, ip))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    return env.lb_id()


def our_listener(env: Env, lb_id: str) -> str:
    return next(
        lst.listener_id for lst in env.deps.require_clb().list_listeners(lb_id) if (lst.name or "").startswith("clb-")
    )


def reconcile(env: Env) -> None:
    reconcile_all(env.deps)
    env.drain()


def wipe_store(env: Env) -> None:
    """The KV store is lost (a new, empty one): binding records, checkpoints, everything."""
    env.deps.store.close()
    env.deps = replace(env.deps, store=open_store("memory://"))
    for function in FUNCTIONS:
        handler(function).shell.use(env.deps)


def service_events(env: Env, reason: str) -> list[str]:
    return [message for ref, _, why, message in env.cluster.events if ref.kind == "Service" and why == reason]


def test_a_hand_added_target_on_our_listener_is_removed_by_one_reconcile(env: Env) -> None:
    lb_id = bring_up(env, ("web-1", "10.0.0.1"))
    listener = our_listener(env, lb_id)
    env.deps.require_clb().register_targets(lb_id, [Target(listener_id=listener, ip="10.9.9.9", port=8080)])
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10), ("10.9.9.9", 8080, 10)}

    reconcile(env)

    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    [message] = service_events(env, "RemovedExtraTargets")
    assert f"10.9.9.9:8080/{listener}" in message and "no live Pod has IP 10.9.9.9" in message
    assert [(b.pod_name, b.state) for b in env.deps.store.list_bindings(lb_id=lb_id)] == [("web-1", "registered")]
    # Converged: the next pass finds nothing to remove and writes nothing.
    before = env.writes()
    reconcile(env)
    assert env.writes() == before


def test_after_the_store_is_wiped_a_dead_pods_target_goes_and_live_ones_stay(env: Env) -> None:
    lb_id = bring_up(env, ("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"), ("web-3", "10.0.0.3"))
    assert {ip for ip, _, _ in env.targets(lb_id)} == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    env.cluster.remove_pod("default", "web-2")  # dies, and its DELETED event is lost with the store
    wipe_store(env)

    reconcile(env)

    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10), ("10.0.0.3", 8080, 10)}
    records = env.deps.store.list_bindings(lb_id=lb_id)
    assert sorted((b.pod_name, b.state) for b in records) == [("web-1", "registered"), ("web-3", "registered")]
    assert env.counts()["BatchDeregisterTargets"] == 1
    [message] = service_events(env, "RemovedExtraTargets")
    assert "10.0.0.2:8080" in message and "10.0.0.1" not in message


def test_a_live_unready_pods_target_without_a_record_is_drained_then_deregistered(env: Env) -> None:
    lb_id = bring_up(env, ("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"))
    env.cluster.update_pod("default", "web-2", containers_ready=False)
    wipe_store(env)

    reconcile(env)  # the re-check goes into the schedule, due after the drain timeout

    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10), ("10.0.0.2", 8080, 0)}
    assert "default/web-2" in service_events(env, "DrainingExtraTargets")[0]
    # One drain path: the drained target is now a draining binding of the Pod holding its IP ...
    [record] = env.deps.store.list_bindings(pod_uid="uid-web-2")
    assert (record.state, record.origin, record.weight) == ("draining", "extra", 0)
    # ... whose drain re-check is the unbind step's, like any Pod's.
    [recheck] = env.deps.store.schedule_list()
    assert recheck.key == f"unbind:{lb_id}:uid:uid-web-2" and recheck.due_at == env.clock.now() + 30
    env.drain(delayed=True)  # the timer takes the re-check once it is due
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    assert "drain timeout of 30s elapsed" in service_events(env, "RemovedExtraTargets")[0]
    assert env.deps.store.list_bindings(pod_uid="uid-web-2") == []


def test_listeners_we_do_not_manage_on_an_adopted_clb_are_never_touched(env: Env) -> None:
    clb = env.deps.require_clb()
    existing = clb.create_load_balancer(LoadBalancerSpec(name="shared", tags={"team": "ops"}))
    foreign = clb.create_listener(existing.lb_id, ListenerSpec(port=9000, name="ops-listener"))
    clb.register_targets(existing.lb_id, [Target(listener_id=foreign, ip="10.9.9.9", port=9000)])
    lb_id = bring_up(env, ("web-1", "10.0.0.1"), **{"service.kubernetes.io/tke-existed-lbid": existing.lb_id})
    ours = our_listener(env, lb_id)
    clb.register_targets(lb_id, [Target(listener_id=ours, ip="10.9.9.8", port=8080)])
    wipe_store(env)

    reconcile(env)

    on_clb = {(t.listener_id, t.ip, t.port) for t in clb.list_targets(lb_id)}
    assert on_clb == {(foreign, "10.9.9.9", 9000), (ours, "10.0.0.1", 8080)}


def test_a_foreign_listener_on_the_service_port_is_left_to_its_owner(env: Env) -> None:
    """Not ours, so not managed (issue 15 #1): its backends stay, ours are never added, no extra-target removal."""
    clb = env.deps.require_clb()
    existing = clb.create_load_balancer(LoadBalancerSpec(name="shared", tags={"team": "ops"}))
    adopted = clb.create_listener(existing.lb_id, ListenerSpec(port=80, name="ops-http"))
    clb.register_targets(existing.lb_id, [Target(listener_id=adopted, ip="10.9.9.9", port=8080)])
    lb_id = bring_up(env, ("web-1", "10.0.0.1"), **{"service.kubernetes.io/tke-existed-lbid": existing.lb_id})

    reconcile(env)

    assert env.targets(lb_id) == {("10.9.9.9", 8080, 10)}
    assert service_events(env, "RemovedExtraTargets") == []
    assert service_events(env, "ListenerPortConflict")


def test_a_relabelled_pods_target_without_a_record_is_drained_not_cut(env: Env) -> None:
    lb_id = bring_up(env, ("web-0", "10.0.0.1"), ("web-1", "10.0.0.2"))
    # The Service stops selecting a live Pod, and the store (with the record unbind would drain) is lost:
    # the Pod may still hold connections, so its target goes to weight 0 first; the others are untouched.
    env.cluster.update_pod("default", "web-0", labels={"app": "other"})
    wipe_store(env)

    reconcile(env)

    assert env.targets(lb_id) == {("10.0.0.1", 8080, 0), ("10.0.0.2", 8080, 10)}
    assert env.counts().get("BatchDeregisterTargets", 0) == 0
