"""Relay throughput and memory: the per-object lossless relay vs the previous drop-oldest relay, same run.

Each side runs in its own subprocess pinned to one CPU (so RSS is its own and it gets one core), fed
audit EventLists of 400 events generated on the fly and parsed from JSON as the endpoint does (the
HTTP layer is not what this measures):

- `relay throughput`: 50,000 events, 90 % irrelevant (reads, leases, Pods no direct-access Service
  selects), 10 % Pod writes over 2,500 distinct Pods; router up (a fake that accepts every batch);
  events/s from the first EventList until everything is delivered. Target >= 10,000 events/s.
- `relay flood`: 50,000 distinct Pod writes while the router is down, then the router comes back;
  peak RSS (VmHWM, whole process) and relevant objects lost. Target <= 100 MB, 0 lost.

Side A is `relay.app.Relay`. Side B re-creates what the relay did before (filter, an `AuditItem` per
event in a deque of 10,000 that drops the oldest when full, batches serialised by `RelayBatch`), so
the baseline is measured, not remembered.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EVENTS = 50_000
LIST_SIZE = 400
OLD_BUFFER = 10_000
DELIVERY_DEADLINE_S = 600.0  # generous: only a relay that stops delivering comes near it
MIB = 1024.0


FIXTURE = Path(__file__).resolve().parent.parent / "events" / "audit_eventlist.json"


def _fixture_items() -> list[dict[str, Any]]:
    # Read directly: the worker must not import the test suite (pytest would count in its RSS).
    return list(json.loads(FIXTURE.read_text())["items"])


def _template() -> dict[str, Any]:
    event = copy.deepcopy(_fixture_items()[1])
    event["objectRef"].pop("resourceVersion", None)
    return event


def _service_event() -> dict[str, Any]:
    return copy.deepcopy(_fixture_items()[3])


def _pod_template(app: str = "web") -> str:
    """One Pod write as JSON text with placeholders: generating 50,000 must cost next to nothing."""
    event = _template()
    event["auditID"] = "@ID@"
    event["objectRef"].update(name="@NAME@", uid="uid-@NAME@")
    meta = event["responseObject"]["metadata"]
    meta.update(name="@NAME@", uid="uid-@NAME@", resourceVersion="@RV@")
    if app != "web":
        meta["labels"] = {"app": app}
        event["responseObject"]["spec"].pop("readinessGates", None)
    return json.dumps(event)


def _fill(template: str, i: int, name: str, rv: int) -> str:
    return template.replace("@ID@", f"bench-{i}").replace("@NAME@", name).replace("@RV@", str(rv))


LEASE = (
    '{"kind":"Event","auditID":"lease-@ID@","stage":"ResponseComplete","verb":"update","objectRef":'
    '{"resource":"leases","namespace":"kube-node-lease","name":"@NAME@"}}'
)


def _mixed(web: str, read: str, other: str, i: int) -> str:
    """90 % irrelevant: reads, lease renewals, Pods nobody selects; 10 % writes to 2,500 web Pods."""
    kind = i % 10
    if kind == 0:
        return _fill(web, i, f"web-{(i // 10) % 2_500}", 100 + i)
    if kind in (1, 2, 3):
        return _fill(read, i, f"web-{i % 2_500}", 100 + i)
    if kind in (4, 5, 6):
        return _fill(LEASE, i, f"node-{i % 50}", 0)
    return _fill(other, i, f"batch-{i}", 100 + i)


def _event_lists(scenario: str) -> Iterator[str]:
    web, other = _pod_template(), _pod_template("other")
    read = web.replace('"verb": "patch"', '"verb": "get"')
    items: list[str] = [json.dumps(_service_event())] if scenario == "mix" else []
    for i in range(EVENTS):
        items.append(_mixed(web, read, other, i) if scenario == "mix" else _fill(web, i, f"flood-{i}", 10 + i))
        if len(items) == LIST_SIZE:
            yield '{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + ",".join(items) + "]}"
            items = []
    if items:
        yield '{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + ",".join(items) + "]}"


def _relevant(scenario: str) -> dict[str, str]:
    """object name -> newest resourceVersion of what the router must receive."""
    if scenario == "flood":
        return {f"flood-{i}": str(10 + i) for i in range(EVENTS)}
    newest: dict[str, str] = {}
    for i in range(0, EVENTS, 10):
        newest[f"web-{(i // 10) % 2_500}"] = str(100 + i)
    return newest


def _peak_rss_mib() -> float:
    """VmHWM of this process: unlike ru_maxrss it restarts at exec, so the forking parent's size is not in it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / MIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB


class _Router:
    def __init__(self, *, up: bool) -> None:
        self.up = up
        self.received: dict[str, str] = {}

    def post(self, _url: str, body: bytes, _headers: dict[str, str], _timeout_s: float) -> int:
        if not self.up:
            raise OSError("router down (bench flood)")
        for item in json.loads(body)["items"]:
            meta = item["event"]["responseObject"]["metadata"]
            self.received[meta["name"]] = meta["resourceVersion"]
        return 200


def _lost(router: _Router, scenario: str) -> int:
    return sum(1 for name, rv in _relevant(scenario).items() if router.received.get(name) != rv)


def _side_new(scenario: str) -> dict[str, float]:
    from relay.app import Relay
    from relay.auth import AuditAuth
    from relay.batcher import Batcher, BatcherConfig

    router = _Router(up=scenario == "mix")
    config = BatcherConfig(router_url="http://router/", hmac_key=b"bench", window_s=0.05, backoff_cap_s=0.05)
    relay = Relay(
        batcher=Batcher(config, post=router.post),
        sources=("audit",),
        audit_auth=AuditAuth(allow_unauthenticated=True),
    )
    relay.cache.mark_warm()  # as once the watch (or the first Service bodies) taught it the selectors
    lists = list(_event_lists(scenario)) if scenario == "mix" else _event_lists(scenario)
    relay.batcher.start()
    started = time.perf_counter()
    for raw in lists:
        relay._on_event_list(json.loads(raw))
    rss = _peak_rss_mib()
    router.up = True
    # The relay retries until delivered, so "lost" must be counted once it has delivered what it holds,
    # not when a fixed flush timeout ends (on a loaded core 50k objects take longer than stop()'s 10 s).
    deadline = time.monotonic() + DELIVERY_DEADLINE_S
    while relay.batcher.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    relay.batcher.stop(flush=True)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "rss_mib": rss, "lost": _lost(router, scenario), **relay.batcher.stats()}


def _side_old(scenario: str) -> dict[str, float]:
    from relay.filters import SelectorCache, keep_audit_event
    from shared.events.relay import AuditItem, RelayBatch

    router = _Router(up=scenario == "mix")
    cache = SelectorCache()
    cache.mark_warm()
    buffer: deque[AuditItem] = deque(maxlen=OLD_BUFFER)  # drop-oldest, as the previous relay
    lists = list(_event_lists(scenario)) if scenario == "mix" else _event_lists(scenario)
    started = time.perf_counter()

    def send_all() -> None:
        while buffer:
            items = [buffer.popleft() for _ in range(min(200, len(buffer)))]
            body = RelayBatch(batch_id="b" * 32, created_at=time.time(), items=items).to_body()  # type: ignore[arg-type]
            router.post("", body, {}, 0)

    for raw in lists:
        event_list = json.loads(raw)
        buffer.extend(AuditItem(event=e) for e in event_list["items"] if keep_audit_event(e, cache))
        if router.up and len(buffer) >= 200:
            send_all()
    rss = _peak_rss_mib()
    router.up = True
    send_all()
    return {"seconds": time.perf_counter() - started, "rss_mib": rss, "lost": _lost(router, scenario)}


def worker(side: str, scenario: str) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})  # one core
    from shared.logging import configure_logging

    configure_logging("error", force=True)
    result = (_side_new if side == "new" else _side_old)(scenario)
    print(json.dumps(result))


def _measure(side: str, scenario: str) -> dict[str, float]:
    code = f"from tests.bench.bench_relay import worker; worker({side!r}, {scenario!r})"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=900)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(quick: bool) -> list[Any]:
    from tests.bench.common import Row

    global EVENTS
    if quick:
        EVENTS = 10_000
    mix_new, mix_old = _measure("new", "mix"), _measure("old", "mix")
    flood_new, flood_old = _measure("new", "flood"), _measure("old", "flood")
    return [
        Row(
            "relay throughput",
            f"{EVENTS:,} audit events, 90 % irrelevant, one core, until delivered",
            "events/s",
            "per-object relay",
            EVENTS / mix_new["seconds"],
            "previous relay",
            EVENTS / mix_old["seconds"],
            {"new": mix_new, "old": mix_old, "target_events_per_s": 10_000},
        ),
        Row(
            "relay flood",
            f"{EVENTS:,} distinct Pod writes, router down then up; lost: A {flood_new['lost']:,.0f}, "
            f"B {flood_old['lost']:,.0f}",
            "peak RSS MiB",
            "per-object relay",
            flood_new["rss_mib"],
            f"previous relay (drop-oldest {OLD_BUFFER:,})",
            flood_old["rss_mib"],
            {"new": flood_new, "old": flood_old, "target_rss_mib": 100},
        ),
    ]
