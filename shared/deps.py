"""The dependencies a step needs, built once per cold start from `Settings`.

Handlers call `build_deps(settings)` at module level (cold start) or lazily on first invocation and
pass the result down. Tests construct `Deps(...)` directly with fakes or emulator-backed adapters.
Adapter modules are imported lazily so that a function that does not need one (e.g. admission does
not need the `kubernetes` client) never pays its import cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.clock import SystemClock
from shared.config import Settings
from shared.ports import Clock, Cluster, Invoker, LoadBalancer, Store


@dataclass
class Deps:
    settings: Settings
    store: Store
    clock: Clock = field(default_factory=SystemClock)
    clb: LoadBalancer | None = None
    cluster: Cluster | None = None
    invoker: Invoker | None = None

    def require_clb(self) -> LoadBalancer:
        if self.clb is None:
            raise RuntimeError("this function was built without a CLB gateway")
        return self.clb

    def require_cluster(self) -> Cluster:
        if self.cluster is None:
            raise RuntimeError("this function was built without a Kubernetes gateway")
        return self.cluster

    def require_invoker(self) -> Invoker:
        if self.invoker is None:
            raise RuntimeError("this function was built without an invoker")
        return self.invoker


def build_deps(
    settings: Settings,
    *,
    with_clb: bool = True,
    with_cluster: bool = True,
    with_invoker: bool = True,
    clock: Clock | None = None,
) -> Deps:
    """Build the real adapters named by `settings` (store URL, CLB endpoint, kubeconfig, invoker)."""
    from shared.adapters.store_factory import open_store

    clock = clock or SystemClock()
    deps = Deps(settings=settings, store=open_store(settings.store_connection_url()), clock=clock)
    if with_clb:
        from shared.adapters.tencent_clb import TencentClbGateway

        deps.clb = TencentClbGateway.from_settings(settings, store=deps.store, clock=clock)
    if with_cluster:
        from shared.adapters.kubernetes_api import KubernetesCluster
        from shared.versions import VersionConfirmingCluster

        # Every Service/Pod the steps read confirms its live resourceVersion for the router's stale filter.
        deps.cluster = VersionConfirmingCluster(
            KubernetesCluster.from_settings(settings), deps.store, clock, ttl_s=settings.event_log_ttl_s
        )
    if with_invoker:
        from shared.adapters.invokers import build_invoker

        deps.invoker = build_invoker(settings)
    return deps
