"""`clb-direct invoke FUNCTION --event FILE`: run one function's handler locally and print its result.

The handler builds its dependencies from the environment (`CLB_DIRECT_*` settings: store, CLB endpoint,
kubeconfig, invoker) exactly as on SCF, so any event — a fixture from tests/events/, a StepRequest, an
API-gateway AdmissionReview — can be tried by hand against the configured endpoints. `--dry-run` asks
the step functions to plan without side effects.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import functions
from cli._stack import StderrAtWriteTime
from shared.domain.errors import ClbDirectError, RetryableError
from shared.logging import configure_logging

EX_TEMPFAIL = 75  # sysexits: a retryable failure (SCF would retry the invocation)


def available_functions() -> list[str]:
    root = Path(functions.__file__).parent
    return sorted(p.parent.name for p in root.glob("*/handler.py"))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="run a function handler locally with an event file and print its JSON result",
        description=(
            "Run one function's handler here with an event from a JSON file and print its result. The handler "
            "uses the CLB_DIRECT_* settings of this shell exactly as on SCF (store, CLB endpoint, kubeconfig, "
            "invoker), so any event (a tests/events/ fixture, a StepRequest, an API-gateway AdmissionReview) can "
            "be tried against the configured endpoints; --dry-run plans without side effects."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("function", metavar="FUNCTION", help=f"one of: {', '.join(available_functions())}")
    parser.add_argument("--event", required=True, metavar="FILE", help="JSON event file ('-' reads stdin)")
    parser.add_argument("--dry-run", action="store_true", help="step functions plan only, change nothing")
    parser.set_defaults(func=run)


def _load_event(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return json.loads(text)


def run(args: argparse.Namespace) -> int:
    if args.function not in available_functions():
        print(f"unknown function {args.function!r}; choose one of: {', '.join(available_functions())}", file=sys.stderr)
        return 2
    try:
        event = _load_event(args.event)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read event {args.event!r}: {exc}", file=sys.stderr)
        return 2
    configure_logging(os.environ.get("CLB_DIRECT_LOG_LEVEL", "info"), stream=StderrAtWriteTime(), force=True)  # type: ignore[arg-type]
    handler = importlib.import_module(f"functions.{args.function}.handler")
    context = {"request_id": f"cli-{uuid.uuid4().hex[:12]}", "function_name": args.function, "dry_run": args.dry_run}
    try:
        result = handler.main_handler(event, context)
    except RetryableError as exc:
        print(json.dumps(exc.to_dict(), indent=2))
        return EX_TEMPFAIL
    except ClbDirectError as exc:
        print(json.dumps(exc.to_dict(), indent=2))
        return 1
    print(json.dumps(result, indent=2, default=str))
    failed = isinstance(result, dict) and (result.get("ok") is False or int(result.get("statusCode", 200)) >= 400)
    return 1 if failed else 0
