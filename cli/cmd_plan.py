"""`clb-direct plan --service NS/NAME`: print the steps a reconcile would take, without taking them.

Discovered by `cli/main.py`. Runs the reconcile of one Service with `dry_run=True`: every step
observes live state and returns its planned actions; nothing is written to the CLB, the cluster or
the store (no checkpoint either).
"""

from __future__ import annotations

import argparse
from typing import Any

from cli._stack import emit, fail, stack_deps
from cli.cmd_replay import _key
from shared.domain.errors import ClbDirectError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="dry run: the steps a reconcile of one Service would take",
        description="Print the service/unbind/bind/flip actions a reconcile would take for one Service.",
    )
    parser.add_argument("--service", type=_key, required=True, metavar="NS/NAME", help="the Service to plan for")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from shared.reconcile import reconcile_service

    deps = stack_deps(with_invoker=False)
    try:
        emit(reconcile_service(deps, args.service, dry_run=True, reason="clb-direct plan"))
    except ClbDirectError as exc:
        return fail(exc)
    finally:
        deps.store.close()
    return 0
