"""`clb-direct events`: list recent accepted events (newest first) with the ids `replay` takes.

Discovered by `cli/main.py`. Reads only the store's event log (`Store.list_events`).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from cli._stack import stack_deps


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "events", help="recent events with their ids", description="List recent routed events, newest first."
    )
    parser.add_argument("--limit", type=int, default=50, help="newest N events (default 50)")
    parser.add_argument("--json", action="store_true", help="print the full stored events as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    deps = stack_deps(with_clb=False, with_cluster=False, with_invoker=False)
    try:
        events = deps.store.list_events(now=deps.clock.now(), limit=args.limit)
    finally:
        deps.store.close()
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return 0
    for event in events:
        when = datetime.fromtimestamp(event.received_at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"{event.id}  {when}  {event.summary}")
    return 0
