"""The heartbeat of a long call: what must keep happening while an adapter waits inside one call.

`shared.leases.FencedLoadBalancer` runs each CLB write inside `beating(renew)`; the CLB adapter calls
`beat()` before every API attempt, retries and DescribeTaskStatus polls included. So a writer keeps its
lease while it waits for an async task (up to `clb_task_timeout_s`, longer than `lease_ttl_s`) instead of
losing it mid-wait to the next writer, and learns at the next attempt (`LeaseLost`) when it was taken
over all the same. Outside such a block `beat()` does nothing. A context variable, so a write's heartbeat
never leaks into another thread's calls (copied contexts carry it along on purpose).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[Callable[[], None] | None] = ContextVar("clb_direct_heartbeat", default=None)


@contextmanager
def beating(beat: Callable[[], None]) -> Iterator[None]:
    """Run `beat` at every `beat()` inside the block."""
    token = _current.set(beat)
    try:
        yield
    finally:
        _current.reset(token)


def beat() -> None:
    """Called by adapters at each attempt of a call: runs the heartbeat of the enclosing block, if any."""
    current = _current.get()
    if current is not None:
        current()
