"""Relay memory under a flood: tracemalloc peak of the bounded buffer vs an unbounded one, per flood size.

The relay runs in audit mode with its router unreachable (every POST fails, the sender backs off), and
N audit events (Pod writes, parsed fresh from JSON as the endpoint does) are pushed through its audit
sink in EventLists of 100. Side A: the relay's bounded buffer (drop-oldest at `BUFFER` items); side B:
the same events kept in an unbounded list, measured in the same run. A's peak should stay flat as N
grows while its drop counter grows; B's grows with N.
"""

from __future__ import annotations

import copy
import gc
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

from relay.app import Relay
from relay.batcher import Batcher, BatcherConfig
from relay.filters import SelectorCache, keep_audit_event
from shared.events.relay import AuditItem
from tests.bench.common import Row
from tests.conftest import load_event

BUFFER = 2_000
LIST_SIZE = 100
MIB = 1024 * 1024


def _router_down(_url: str, _body: bytes, _headers: dict[str, str], _timeout_s: float) -> int:
    raise OSError("router unreachable (bench flood)")


def _event_lists(n: int) -> list[str]:
    """The flood as the API server would send it: JSON EventLists of Pod writes with unique audit ids."""
    template = load_event("audit_eventlist")["items"][0]
    lists: list[str] = []
    for start in range(0, n, LIST_SIZE):
        items = []
        for i in range(start, min(n, start + LIST_SIZE)):
            event = copy.deepcopy(template)
            event["auditID"] = f"flood-{i}"
            event["objectRef"]["name"] = f"web-{i}"
            items.append(event)
        lists.append(json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}))
    return lists


def _peak(push: Callable[[dict[str, Any]], Any], lists: list[str]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        for raw in lists:
            push(json.loads(raw))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MIB


def _bounded(lists: list[str]) -> tuple[float, dict[str, int]]:
    config = BatcherConfig(router_url="http://127.0.0.1:9/unused", hmac_key=b"bench", buffer_size=BUFFER)
    relay = Relay(batcher=Batcher(config, post=_router_down), sources=("audit",))
    relay.start()
    try:
        # The audit endpoint's sink, called directly: the HTTP layer is not what this measures.
        peak = _peak(relay._on_event_list, lists)
        counters = dict(relay.batcher.counters)
        counters["pending"] = relay.batcher.pending()
    finally:
        relay.stop()
    return peak, counters


def _unbounded(lists: list[str]) -> float:
    kept: list[AuditItem] = []
    cache = SelectorCache()

    def push(event_list: dict[str, Any]) -> None:
        kept.extend(AuditItem(event=e) for e in event_list["items"] if keep_audit_event(e, cache))

    peak = _peak(push, lists)
    kept.clear()
    return peak


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    sizes = (2_000, 10_000) if quick else (2_000, 10_000, 50_000)
    first_peak: float | None = None
    for n in sizes:
        lists = _event_lists(n)
        bounded_peak, counters = _bounded(lists)
        unbounded_peak = _unbounded(lists)
        first_peak = first_peak or bounded_peak
        details = {
            "events": n,
            "buffer_size": BUFFER,
            "dropped_overflow": counters.get("dropped_overflow", 0),
            "pending": counters["pending"],
            "bounded_peak_vs_smallest_flood": bounded_peak / first_peak,
        }
        rows.append(
            Row(
                "relay flood",
                f"{n:,} events, buffer {BUFFER:,}, dropped {details['dropped_overflow']:,}",
                "peak MiB",
                "bounded buffer",
                bounded_peak,
                "unbounded list",
                unbounded_peak,
                details,
            )
        )
    return rows
