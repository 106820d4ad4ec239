"""One writer per CLB, with coalescing and a fence on every write (rule 5).

The bind and unbind steps call `ClbWriter.run(lb_id, items, work)` for every CLB they must write to.
The typed items (`shared.domain.clb_work.ClbWork`) join the CLB's pending set; whoever holds the CLB's
lease drains that set in batches, so requests that arrive while a writer is busy ride along in its next
batch instead of racing it into `FailedOperation.ResourceInOperating`.

Each batch gets a `Fence` for the lease it runs under, and `work` makes its CLB writes through
`FencedLoadBalancer`: before every write call the fence renews the lease with its token, an atomic
compare-and-extend in the store that fails once another writer has acquired the lease (a higher token).
A writer whose lease was taken over therefore never makes its write: it raises `LeaseLost`, the writer
puts the batch back for the new holder and stops. The renewal also gives the write call a full lease
TTL in which no one else can acquire the lease, and every request of the call (retries, task polls)
starts with at least `REQUEST_LEASE_FACTOR` request timeouts of it left (`Fence.keep_alive` renews
first): a request that hangs is abandoned by the SDK and retried under the fence long before the lease
could lapse beneath it.

The service step writes a Service's CLB and listeners under its own lease (`exclusive`, one service step
per Service at a time) through the same `FencedLoadBalancer`, so a stalled service step whose lease was
taken over cannot write either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

import structlog

from shared import heartbeat
from shared.domain.clb_work import ClbWork
from shared.domain.errors import ConfigError, Conflict, RetryableError
from shared.domain.models import Listener, ListenerSpec, LoadBalancerInfo, LoadBalancerSpec, Target, TargetHealth
from shared.keys import lease_name, pending_queue
from shared.ports import Clock, LeaseStore, LoadBalancer, PendingSets

_log = structlog.get_logger(__name__)
_LEASE_POLL_S = 1.0
T = TypeVar("T")


class WriterStore(LeaseStore, PendingSets, Protocol):
    """What a `ClbWriter` needs of the store: the CLB's lease and its pending set."""


class LeaseLost(RetryableError):
    """Another writer acquired this CLB's lease: the write was not made (its batch goes back)."""


class Fence:
    """The fencing token of one lease; `check()` before every write made under it.

    `lease` is the lease's name (`shared.keys`), `subject` what it guards, for messages ("CLB lb-1")."""

    def __init__(
        self, store: LeaseStore, clock: Clock, *, lease: str, subject: str, holder: str, token: int, ttl_s: float
    ) -> None:
        self._store, self._clock = store, clock
        self.lease, self.subject, self.holder, self.token, self.ttl_s = lease, subject, holder, token, ttl_s
        self.renewed_at = clock.now()

    def keep_alive(self, action: str, lease_s: float = 0.0) -> None:
        """The heartbeat of a write that waits, run right before each of its requests: `check` once a third
        of the TTL passed since the last renewal (a store round trip per retry or task poll would be wasted
        while the lease is young), or when no more than `lease_s` is left, the lease the next request needs.

        The fence is not checked again until the request ends, so a lease that cannot cover it even when
        fresh (`ttl_s <= lease_s`) refuses the request; `Settings` rule that out for the CLB's timeout."""
        if self.ttl_s <= lease_s:
            raise ConfigError(
                f"{action} on {self.subject} not made: its request needs {lease_s:g}s of lease, the whole "
                f"{self.ttl_s:g}s lease it runs under or more; lower CLB_DIRECT_CLB_REQUEST_TIMEOUT_S or raise "
                "CLB_DIRECT_LEASE_TTL_S"
            )
        left = self.ttl_s - (self._clock.now() - self.renewed_at)
        if left <= self.ttl_s * 2 / 3 or left <= lease_s:
            self.check(action)

    def check(self, action: str) -> None:
        """Renew the lease if `token` is still current, else raise `LeaseLost` (the write is not made)."""
        now = self._clock.now()
        if self._store.renew_lease(self.lease, self.holder, self.token, ttl_s=self.ttl_s, now=now):
            self.renewed_at = now
            return
        _log.warning("clb.write_fenced", lease=self.lease, token=self.token, action=action)
        raise LeaseLost(
            f"{action} on {self.subject} not made: lease token {self.token} was taken over by another "
            "writer, which carries out the work",
            delay_s=1.0,
        )


@contextmanager
def exclusive(
    store: LeaseStore, clock: Clock, *, lease: str, subject: str, holder: str, ttl_s: float, wait_s: float
) -> Iterator[Fence]:
    """Hold `lease` for the block and yield its `Fence`; released afterwards.

    A live holder is waited for (it is doing the same level-triggered work and usually finishes within
    seconds) for at most `wait_s`, the budget a CLB call spends waiting out `ResourceInOperating`; then
    `Conflict` (retryable). A `LeaseLost` inside the block leaves the lease to whoever took it over."""
    deadline = clock.monotonic() + wait_s
    while (taken := store.acquire_lease(lease, holder, ttl_s=ttl_s, now=clock.now())) is None:
        if clock.monotonic() >= deadline:
            current = store.current_lease(lease, now=clock.now())
            raise Conflict(
                f"{subject} is being written by {current.holder if current else 'another writer'} (lease {lease}) "
                f"for longer than {wait_s:.0f}s; the step is retried and re-reads the state then",
                delay_s=min(ttl_s, 5.0),
            )
        clock.sleep(_LEASE_POLL_S)
    try:
        yield Fence(store, clock, lease=lease, subject=subject, holder=holder, token=taken.token, ttl_s=ttl_s)
    finally:
        store.release_lease(lease, holder, taken.token)


class FencedLoadBalancer:
    """A `LoadBalancer` whose write calls check the fence first and keep the lease alive while they wait
    (`shared.heartbeat`: at every retry and task poll); reads pass through unchanged."""

    def __init__(self, inner: LoadBalancer, fence: Fence) -> None:
        self._inner, self.fence = inner, fence

    def _write(self, action: str, call: Callable[[], T]) -> T:
        self.fence.check(action)
        with heartbeat.beating(lambda lease_s: self.fence.keep_alive(action, lease_s)):
            return call()

    def register_targets(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._write("RegisterTargets", lambda: self._inner.register_targets(lb_id, targets))

    def deregister_targets(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._write("DeregisterTargets", lambda: self._inner.deregister_targets(lb_id, targets))

    def set_target_weights(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._write("ModifyTargetWeight", lambda: self._inner.set_target_weights(lb_id, targets))

    def create_load_balancer(self, spec: LoadBalancerSpec) -> LoadBalancerInfo:
        return self._write("CreateLoadBalancer", lambda: self._inner.create_load_balancer(spec))

    def delete_load_balancer(self, lb_id: str) -> None:
        self._write("DeleteLoadBalancer", lambda: self._inner.delete_load_balancer(lb_id))

    def create_listener(self, lb_id: str, spec: ListenerSpec) -> str:
        return self._write("CreateListener", lambda: self._inner.create_listener(lb_id, spec))

    def modify_listener(self, lb_id: str, listener_id: str, spec: ListenerSpec) -> None:
        self._write("ModifyListener", lambda: self._inner.modify_listener(lb_id, listener_id, spec))

    def delete_listener(self, lb_id: str, listener_id: str) -> None:
        self._write("DeleteListener", lambda: self._inner.delete_listener(lb_id, listener_id))

    def describe_load_balancer(self, lb_id: str) -> LoadBalancerInfo | None:
        return self._inner.describe_load_balancer(lb_id)

    def find_load_balancers(self, tags: Mapping[str, str]) -> list[LoadBalancerInfo]:
        return self._inner.find_load_balancers(tags)

    def list_listeners(self, lb_id: str) -> list[Listener]:
        return self._inner.list_listeners(lb_id)

    def list_targets(self, lb_id: str) -> list[Target]:
        return self._inner.list_targets(lb_id)

    def describe_target_health(self, lb_ids: Sequence[str]) -> dict[str, list[TargetHealth]]:
        return self._inner.describe_target_health(lb_ids)


Work = Callable[[list[ClbWork], Fence], None]


class ClbWriter:
    """Serialises and coalesces writes per CLB through a store lease with a fencing token."""

    def __init__(self, store: WriterStore, clock: Clock, *, holder: str, ttl_s: float) -> None:
        self._store = store
        self._clock = clock
        self.holder = holder
        self.ttl_s = ttl_s

    def run(self, lb_id: str, items: Sequence[ClbWork], work: Work) -> bool:
        """Queue `items` for `lb_id` and, if the lease is free, drain the queue with `work(batch, fence)`.

        Returns False when another writer holds the lease (it will take the items), True when this call
        acted as the writer. If `work` raises, its batch goes back to the queue, the lease is released
        and the error propagates (the caller's retry, or the next writer, processes the batch); a
        `LeaseLost` from the fence instead leaves the batch to the writer that took over.
        """
        queue = pending_queue(lb_id)
        if items:
            self._store.pending_add(queue, [i.member() for i in items])
        wrote = False
        while True:
            lease = self._store.acquire_lease(lease_name(lb_id), self.holder, ttl_s=self.ttl_s, now=self._clock.now())
            if lease is None:
                if not wrote:
                    _log.info("clb.write_queued", lb_id=lb_id, items=len(items))
                return wrote
            wrote = True
            fence = Fence(
                self._store,
                self._clock,
                lease=lease_name(lb_id),
                subject=f"CLB {lb_id}",
                holder=self.holder,
                token=lease.token,
                ttl_s=self.ttl_s,
            )
            if not self._drain(lb_id, fence, work):
                continue  # taken over: the new holder has the batch, unless it finished first (look again)
            self._store.release_lease(lease_name(lb_id), self.holder, lease.token)
            # Lost-wakeup guard: items added after our last take but before the release saw the lease
            # held and were left for us; look once more and, if any, try to become the writer again.
            leftover = self._store.pending_take(queue)
            if not leftover:
                return True
            self._store.pending_add(queue, leftover)

    def _take(self, lb_id: str) -> list[ClbWork]:
        batch: list[ClbWork] = []
        for member in self._store.pending_take(pending_queue(lb_id)):
            item = ClbWork.decode(member)
            if item is None:
                # Written by an incompatible version: skipped (the reconcile pass repairs what it asked for).
                _log.error("clb.work_unreadable", lb_id=lb_id, member=member[:200])
            else:
                batch.append(item)
        return batch

    def _drain(self, lb_id: str, fence: Fence, work: Work) -> bool:
        """Process batches until the queue is empty. False if the lease was lost to another writer."""
        queue = pending_queue(lb_id)
        while batch := self._take(lb_id):
            try:
                work(batch, fence)
            except LeaseLost:
                self._store.pending_add(queue, [i.member() for i in batch])
                _log.warning("clb.lease_lost", lb_id=lb_id, token=fence.token)
                return False
            except BaseException:
                self._store.pending_add(queue, [i.member() for i in batch])
                self._store.release_lease(lease_name(lb_id), self.holder, fence.token)
                raise
            renewed = self._store.renew_lease(
                lease_name(lb_id), self.holder, fence.token, ttl_s=self.ttl_s, now=self._clock.now()
            )
            if not renewed:
                # Someone acquired the lease after ours lapsed; they drain what is left.
                _log.warning("clb.lease_lost", lb_id=lb_id, token=fence.token)
                return False
        return True

    def check_fence(self, lb_id: str, token: int) -> bool:
        """True while `token` is the current, live lease token for `lb_id`'s writer."""
        lease = self._store.current_lease(lease_name(lb_id), now=self._clock.now())
        return lease is not None and lease.token == token
