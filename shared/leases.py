"""One writer per CLB, with coalescing (DESIGN.md §3 rule 5).

The bind/unbind/service steps call `ClbWriter.run(lb_id, items, work)` for every CLB they must write
to. The items join the CLB's pending set; whoever holds the CLB's lease drains that set in batches, so
requests that arrive while a writer is busy ride along in its next batch instead of racing it into
`FailedOperation.ResourceInOperating`. Each batch gets the lease's fencing token; `check_fence` lets
the work (or anything else) confirm the token is still current before a write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from shared.ports import Clock, Store

_log = structlog.get_logger(__name__)


def lease_name(lb_id: str) -> str:
    return f"clb:{lb_id}"


def pending_queue(lb_id: str) -> str:
    return f"lb:{lb_id}"


class ClbWriter:
    """Serialises and coalesces writes per CLB through a store lease with a fencing token."""

    def __init__(self, store: Store, clock: Clock, *, holder: str, ttl_s: float) -> None:
        self._store = store
        self._clock = clock
        self.holder = holder
        self.ttl_s = ttl_s

    def run(self, lb_id: str, items: Sequence[str], work: Callable[[list[str], int], None]) -> bool:
        """Queue `items` for `lb_id` and, if the lease is free, drain the queue with `work(batch, token)`.

        Returns False when another writer holds the lease (it will take the items), True when this call
        acted as the writer. If `work` raises, its batch goes back to the queue, the lease is released
        and the error propagates (the caller's retry, or the next writer, processes the batch).
        """
        queue = pending_queue(lb_id)
        if items:
            self._store.pending_add(queue, list(items))
        wrote = False
        while True:
            lease = self._store.acquire_lease(lease_name(lb_id), self.holder, ttl_s=self.ttl_s, now=self._clock.now())
            if lease is None:
                if not wrote:
                    _log.info("clb.write_queued", lb_id=lb_id, items=len(items))
                return wrote
            wrote = True
            if not self._drain(lb_id, lease.token, work):
                return True
            self._store.release_lease(lease_name(lb_id), self.holder, lease.token)
            # Lost-wakeup guard: items added after our last take but before the release saw the lease
            # held and were left for us; look once more and, if any, try to become the writer again.
            leftover = self._store.pending_take(queue)
            if not leftover:
                return True
            self._store.pending_add(queue, leftover)

    def _drain(self, lb_id: str, token: int, work: Callable[[list[str], int], None]) -> bool:
        """Process batches until the queue is empty. False if the lease was lost to another writer."""
        queue = pending_queue(lb_id)
        while batch := self._store.pending_take(queue):
            try:
                work(batch, token)
            except BaseException:
                self._store.pending_add(queue, batch)
                self._store.release_lease(lease_name(lb_id), self.holder, token)
                raise
            renewed = self._store.renew_lease(
                lease_name(lb_id), self.holder, token, ttl_s=self.ttl_s, now=self._clock.now()
            )
            if not renewed:
                # Someone acquired the lease after ours lapsed; they drain what is left.
                _log.warning("clb.lease_lost", lb_id=lb_id, token=token)
                return False
        return True

    def check_fence(self, lb_id: str, token: int) -> bool:
        """True while `token` is the current, live lease token for `lb_id`'s writer."""
        lease = self._store.current_lease(lease_name(lb_id), now=self._clock.now())
        return lease is not None and lease.token == token
