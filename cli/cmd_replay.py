"""`clb-direct replay EVENT_ID | --service NS/NAME | --pod NS/NAME`: re-run the steps now.

Discovered by `cli/main.py`. The same operations as the reconcile function's console test event
`{"replay": {...}}`, run in this process against the configured stack (`shared.reconcile`). Prints
the steps taken and their results as JSON; exits 1 with the error when the target is unknown.
"""

from __future__ import annotations

import argparse
from typing import Any

from cli._stack import emit, fail, stack_deps
from shared.domain.errors import ClbDirectError
from shared.domain.models import ObjectKey


def _key(value: str) -> ObjectKey:
    try:
        return ObjectKey.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a stored event, or re-converge one Service or Pod",
        description="Replay a stored event by id (see `clb-direct events`), or reconcile one Service or Pod now.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("event_id", nargs="?", help="an id from `clb-direct events`")
    target.add_argument("--service", type=_key, metavar="NS/NAME", help="reconcile this Service now")
    target.add_argument("--pod", type=_key, metavar="NS/NAME", help="reconcile this Pod now")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from shared.reconcile import reconcile_service, replay_event, replay_pod

    deps = stack_deps()
    try:
        if args.service is not None:
            emit(reconcile_service(deps, args.service, force=True, reason="clb-direct replay"))
        elif args.pod is not None:
            emit(replay_pod(deps, args.pod))
        else:
            emit(replay_event(deps, args.event_id))
    except ClbDirectError as exc:
        return fail(exc)
    finally:
        deps.store.close()
    return 0
