"""Stalled CLB writers: a batch's invocation stalls past its lease (GC pause, slow API, frozen container)
and another writer takes the CLB over. The fence must stop every write of the stalled writer, its work
must wait in the CLB's queue for the next writer, and the world must still converge. The same holds for a
service step that stalls past its Service's lease while it writes listeners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from shared.domain.models import Target
from shared.keys import lease_name, pending_queue, service_lease_name
from shared.leases import LeaseLost
from tests.chaos.test_rollout_faults import rolling_update
from tests.chaos.world import World, chaos_world

PHANTOM = "phantom-writer"  # took the lease over; never writes (it stalls in turn until its lease lapses)


class WatchedClb:
    """The CLB gateway, recording any target write made while the phantom holds the CLB's live lease."""

    def __init__(self, world: World, inner: Any) -> None:
        self._world, self._inner = world, inner
        self.unfenced: list[str] = []
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _check(self, action: str, lb_id: str) -> None:
        lease = self._world.store.current_lease(lease_name(lb_id), now=self._world.clock.now())
        if lease is not None and lease.holder == PHANTOM:
            self.unfenced.append(f"{action} on {lb_id} while {PHANTOM} held token {lease.token}")
        self.writes += 1

    def register_targets(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._check("register", lb_id)
        self._inner.register_targets(lb_id, targets)

    def deregister_targets(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._check("deregister", lb_id)
        self._inner.deregister_targets(lb_id, targets)

    def set_target_weights(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._check("weights", lb_id)
        self._inner.set_target_weights(lb_id, targets)


class Stalls:
    rate: float = 0.0
    tokens: list[int]


def stall_writers(world: World, rate: float) -> Stalls:
    """When a writer starts its batch (it reads the CLB's binding records), sometimes let its lease lapse
    and a phantom writer take the CLB over (and die with it: its work waits in the CLB's queue until the
    next writer after its lease lapsed)."""
    store, stalls = world.store, Stalls()
    stalls.rate, stalls.tokens = rate, []
    list_bindings = store.list_bindings

    def stalling_list_bindings(**filters: Any) -> Any:
        lb_id = filters.get("lb_id")
        lease = store.current_lease(lease_name(lb_id), now=world.clock.now()) if lb_id else None
        if lease is not None and lease.holder != PHANTOM and world.rng.random() < stalls.rate:
            ttl = world.settings.lease_ttl_s
            world.clock.advance(ttl + 1)
            taken = store.acquire_lease(lease_name(lb_id), PHANTOM, ttl_s=ttl, now=world.clock.now())
            if taken is not None:
                stalls.tokens.append(taken.token)
        return list_bindings(**filters)

    store.list_bindings = stalling_list_bindings  # type: ignore[method-assign]
    return stalls


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_stalled_writer_never_writes_and_its_work_is_done_by_the_next(seed: int) -> None:
    with chaos_world(seed) as world:
        lb_id = world.create_service()
        watched = WatchedClb(world, world.deps.clb)
        world.deps.clb = watched
        stalls = stall_writers(world, rate=0.3)
        old = [world.add_pod() for _ in range(6)]
        world.deliver()
        world.run_queue()
        rolling_update(world, old)
        stalls.rate = 0.0  # the chaos ends; what the stalled writers left is the next writers' work
        world.settle()
        assert stalls.tokens, "no writer stalled: the scenario tested nothing"
        assert watched.unfenced == []
        assert world.violations() == []
        assert world.store.pending_members(pending_queue(lb_id)) == []  # no work left behind


class WatchedServiceClb:
    """The CLB gateway, recording any listener or CLB write made while the phantom holds the Service's lease;
    the first listener create stalls past the lease (a slow call) and the phantom takes the Service over."""

    def __init__(self, world: World, inner: Any) -> None:
        self._world, self._inner = world, inner
        self.unfenced: list[str] = []
        self.writes: list[str] = []
        self.stalled: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _check(self, action: str) -> None:
        lease = self._world.store.current_lease(service_lease_name("default/web"), now=self._world.clock.now())
        if lease is not None and lease.holder == PHANTOM:
            self.unfenced.append(f"{action} while {PHANTOM} held token {lease.token}")
        self.writes.append(action)

    def create_listener(self, lb_id: str, spec: Any) -> str:
        self._check("CreateListener")
        listener_id: str = self._inner.create_listener(lb_id, spec)
        if not self.stalled:
            ttl = self._world.settings.lease_ttl_s
            self._world.clock.advance(ttl + 1)
            taken = self._world.store.acquire_lease(
                service_lease_name("default/web"), PHANTOM, ttl_s=ttl, now=self._world.clock.now()
            )
            assert taken is not None
            self.stalled.append(taken.token)
        return listener_id

    def modify_listener(self, lb_id: str, listener_id: str, spec: Any) -> None:
        self._check("ModifyListener")
        self._inner.modify_listener(lb_id, listener_id, spec)

    def delete_listener(self, lb_id: str, listener_id: str) -> None:
        self._check("DeleteListener")
        self._inner.delete_listener(lb_id, listener_id)

    def create_load_balancer(self, spec: Any) -> Any:
        self._check("CreateLoadBalancer")
        return self._inner.create_load_balancer(spec)

    def delete_load_balancer(self, lb_id: str) -> None:
        self._check("DeleteLoadBalancer")
        self._inner.delete_load_balancer(lb_id)


@pytest.mark.parametrize("seed", [21, 22])
def test_a_stalled_service_step_never_writes_and_the_next_run_converges(seed: int) -> None:
    with chaos_world(seed) as world:
        lb_id = world.create_service()
        pods = [world.add_pod() for _ in range(3)]
        world.deliver()
        world.run_queue()
        watched = WatchedServiceClb(world, world.deps.clb)
        world.deps.clb = watched
        # A port added and one removed: the service step creates a listener (and stalls in that call) and
        # would then delete one.
        world.toggle_port(82)
        world.toggle_port(81)
        with pytest.raises(LeaseLost):  # retryable: the handler raises it for SCF to retry
            run_service_step(world)
        assert watched.stalled
        assert watched.writes == ["CreateListener"] and watched.unfenced == []
        # The phantom dies with the Service's lease; once it lapses the next service step does the rest.
        world.clock.advance(world.settings.lease_ttl_s + 1)
        assert run_service_step(world)["ok"] is True, "the retry (or the next event) does the rest"
        assert watched.unfenced == [] and watched.writes == ["CreateListener", "DeleteListener"]
        assert sorted(lst.port for lst in world.deps.require_clb().list_listeners(lb_id)) == [80, 82]
        assert len(pods) == 3
        world.settle()
        assert world.violations() == []


def run_service_step(world: World) -> Any:
    return world.invoke("service", {"step": "service", "services": [{"namespace": "default", "name": "web"}]})
