"""The heartbeat of a long call: what must keep happening while an adapter waits inside one call.

`shared.leases.FencedLoadBalancer` runs each CLB write inside `beating(renew)`; the CLB adapter calls
`beat(lease_s)` right before every API request, retries and DescribeTaskStatus polls included, with the
lease that request may need (`REQUEST_LEASE_FACTOR` times its request timeout). So a writer keeps its
lease while it waits for an async task (up to `clb_task_timeout_s`, longer than `lease_ttl_s`) instead of
losing it mid-wait to the next writer, never sends a request its lease could lapse under (it renews first),
and learns at the next request (`LeaseLost`) when it was taken over all the same. Outside such a block
`beat()` does nothing. A context variable, so a write's heartbeat never leaks into another thread's calls
(copied contexts carry it along on purpose).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[Callable[[float], None] | None] = ContextVar("clb_direct_heartbeat", default=None)


@contextmanager
def beating(beat: Callable[[float], None]) -> Iterator[None]:
    """Run `beat(lease_s)` at every `beat(lease_s)` inside the block."""
    token = _current.set(beat)
    try:
        yield
    finally:
        _current.reset(token)


def beat(lease_s: float = 0.0) -> None:
    """Called by adapters right before each request of a call, with how long that request may take at
    most (the lease it needs left): runs the heartbeat of the enclosing block, if any."""
    current = _current.get()
    if current is not None:
        current(lease_s)
