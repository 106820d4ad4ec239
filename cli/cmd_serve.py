"""`clb-direct serve`: the local SCF-style runtime alone, every function behind HTTP(S), in the foreground.

Discovered by `cli/main.py`. Configured only from the environment (`CLB_DIRECT_*`, as each function is on SCF:
store, CLB endpoint and credentials, kubeconfig, `CLB_DIRECT_INVOKER=local` with `CLB_DIRECT_LOCAL_INVOKE_URL`
pointing at this runtime's `/_invoke`); with `CLB_DIRECT_WEBHOOK_URL` set, the guardian runs once and
`/admission` is also served over HTTPS on that URL's port with the guardian's certificate. The composition
lives in `demo/stack.py` (`serve_runtime`); this module prints the URLs and waits for SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cli._common import ForegroundUntilSignalled, positive


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run every function locally, SCF-style (HTTP events, async /_invoke queue, timers)",
        description=(
            "Run every function in one local SCF-style runtime: HTTP events on /<function>, async invocations "
            "through /_invoke, and the timers (reconcile, health poll, guardian), with the CLB_DIRECT_* settings "
            "of this shell. With CLB_DIRECT_WEBHOOK_URL set the admission endpoint is served over HTTPS."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port of the runtime (0 = any)")
    parser.add_argument(
        "--health-poll", type=positive(float), default=5.0, help="seconds between health poll timer events"
    )
    parser.add_argument(
        "--reconcile", type=positive(float), default=60.0, help="seconds between reconcile timer events"
    )
    parser.add_argument("--guardian", type=positive(float), default=300.0, help="seconds between guardian timer events")
    parser.add_argument(
        "--workers", type=positive(int), default=4, help="async invocations run at once per function (its lane's width)"
    )
    parser.add_argument(
        "--dead-letters", type=Path, default=None, help="append async events that exhausted their retries here"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from demo.stack import serve_runtime, stop_served_runtime
    from shared.domain.errors import ClbDirectError

    with ForegroundUntilSignalled() as foreground:
        try:
            runtime, provider = serve_runtime(
                dict(os.environ),
                health_poll_s=args.health_poll,
                reconcile_s=args.reconcile,
                guardian_s=args.guardian,
                port=args.port,
                workers=args.workers,
                dead_letter_path=args.dead_letters,
            )
        except (OSError, RuntimeError, ClbDirectError) as exc:
            print(f"clb-direct serve: {exc}", file=sys.stderr)
            return 1
        try:
            print(f"runtime: {runtime.url}  (functions at /<name>, async invoke at {runtime.invoke_url})", flush=True)
            if runtime.https_url:
                print(f"admission over HTTPS: {runtime.https_url}/admission", flush=True)
            print(f"functions: {', '.join(sorted(runtime.functions))}; Ctrl-C to stop", flush=True)
            foreground.wait()
        finally:
            stop_served_runtime(runtime, provider)
    return 0
