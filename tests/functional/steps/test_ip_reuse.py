"""A Pod re-created with its predecessor's IP keeps its target when the predecessor is unbound.

Regression: the bind step for the new Pod found the target already on the CLB (same IP:port) and
recorded it as its own, then asked unbind to clean up the old Pod's binding; unbind deregistered the
shared target, so the live Pod lost its backend until the next reconcile (architecture rule 1). And when the
new Pod had no binding yet (reconcile runs unbind before bind; or its bind had not run), unbind of the
old Pod deregistered the target the live Pod needed, and bind registered it again: an outage per pass.
"""

from __future__ import annotations

from shared.reconcile import reconcile_all
from tests.functional.steps.conftest import Env, pod, service


def test_unbinding_the_old_pod_keeps_the_target_the_new_pod_reuses(env: Env) -> None:
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-0", "10.0.0.1"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}

    # Deleted and re-created with the same IP (fixed-IP StatefulSet) before its delete was processed.
    env.cluster.remove_pod("default", "web-0")
    env.cluster.put_pod(pod("web-0b", "10.0.0.1"))
    assert env.invoke("bind", {"step": "bind", "pods": [{"namespace": "default", "name": "web-0b"}]})["ok"]
    env.drain()
    assert env.invoke("unbind", {"step": "unbind", "pod_uids": ["uid-web-0"], "reason": "late delete"})["ok"]
    env.drain()

    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    assert [(b.pod_name, b.state) for b in env.deps.store.list_bindings(lb_id=lb_id)] == [("web-0b", "registered")]
    assert env.counts().get("BatchDeregisterTargets", 0) == 0


def test_reconcile_keeps_the_target_a_live_pod_reusing_the_ip_needs_before_it_is_bound(env: Env) -> None:
    env.cluster.put_service(service())
    env.cluster.put_pod(pod("web-0", "10.0.0.1"))
    assert env.invoke("service", "service_web")["ok"]
    env.drain()
    lb_id = env.lb_id()
    # Re-created with the same IP; the old record still names the dead Pod and no event reached us.
    env.cluster.remove_pod("default", "web-0")
    env.cluster.put_pod(pod("web-0b", "10.0.0.1"))

    reconcile_all(env.deps)
    env.drain()

    assert env.targets(lb_id) == {("10.0.0.1", 8080, 10)}
    assert env.counts().get("BatchDeregisterTargets", 0) == 0
    assert [(b.pod_name, b.state) for b in env.deps.store.list_bindings(lb_id=lb_id)] == [("web-0b", "registered")]
