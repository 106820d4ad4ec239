"""`clb-direct timeline --pod ns/name` and `clb-direct latency --service ns/name`: stage latencies.

Discovered by `cli/main.py`. Both read only the store (`shared.timeline`): the stage marks the steps
recorded for a Pod (admitted, containers_ready, registered and alive per listener, gate_true;
deletion_seen, weight_zero and deregistered per listener) and, per Service, the Pods seen behind it.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from cli._stack import stack_deps
from shared.domain.errors import InvalidInput
from shared.domain.models import ObjectKey
from shared.timeline import percentile, pod_timeline, prune_service, service_latencies


def register(subparsers: Any) -> None:
    timeline = subparsers.add_parser(
        "timeline",
        help="one Pod's stage timeline",
        description="Print when each stage of a Pod's way onto and off the CLB was observed.",
    )
    timeline.add_argument("--pod", required=True, type=_key, help="namespace/name")
    timeline.add_argument("--json", action="store_true", help="print JSON instead of a table")
    timeline.set_defaults(func=run_timeline)
    latency = subparsers.add_parser(
        "latency",
        help="p50/p99 per stage for a Service",
        description="Summarise the stage latencies of every Pod recorded behind a Service.",
    )
    latency.add_argument("--service", required=True, type=_key, help="namespace/name")
    latency.add_argument("--json", action="store_true", help="print JSON instead of a table")
    latency.add_argument("--prune", action="store_true", help="first forget Pods whose records have expired")
    latency.set_defaults(func=run_latency)


def _key(value: str) -> str:
    try:
        return str(ObjectKey.parse(value))
    except (InvalidInput, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"expected namespace/name, got {value!r}") from exc


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def run_timeline(args: argparse.Namespace) -> int:
    deps = stack_deps(with_clb=False, with_cluster=False, with_invoker=False)
    try:
        marks = pod_timeline(deps.store, args.pod)
    finally:
        deps.store.close()
    if args.json:
        print(json.dumps([m.__dict__ for m in marks], indent=2))
        return 0 if marks else 1
    if not marks:
        print(f"no timeline recorded for Pod {args.pod}")
        return 1
    start = marks[0].at
    print(f"Pod {args.pod} (uid {marks[0].pod_uid})")
    for m in marks:
        where = f" {m.listener}" if m.listener else ""
        via = f"  [{m.service}]" if m.service else ""
        offset = f"+{m.at - start:.3f}s".rjust(10)
        print(f"  {_when(m.at)}  {offset}  {m.stage}{where}{via}")
    return 0


def run_latency(args: argparse.Namespace) -> int:
    deps = stack_deps(with_clb=False, with_cluster=False, with_invoker=False)
    try:
        if args.prune:
            prune_service(deps.store, args.service, now=deps.clock.now())
        durations = service_latencies(deps.store, args.service)
    finally:
        deps.store.close()
    rows = {
        name: {"count": len(v), "p50_s": percentile(v, 50), "p99_s": percentile(v, 99), "max_s": max(v)}
        for name, v in durations.items()
        if v
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if rows else 1
    if not rows:
        print(f"no timelines recorded for Service {args.service}")
        return 1
    print(f"Service {args.service}: seconds per stage over the Pods recorded")
    print(f"  {'stage':32} {'pods':>5} {'p50':>8} {'p99':>8} {'max':>8}")
    for name, row in rows.items():
        print(f"  {name:32} {row['count']:5d} {row['p50_s']:8.3f} {row['p99_s']:8.3f} {row['max_s']:8.3f}")
    return 0
