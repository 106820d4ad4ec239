"""`clb-direct plan --service NS/NAME`: print the plans a reconcile would carry out, without carrying them out.

Discovered by `cli/main.py`. Runs the reconcile of one Service with `dry_run=True`: every step observes
live state and plans; nothing is written to the CLB, the cluster or the store (no checkpoint either).
The typed plans themselves (the service step's `ServicePlan`, each CLB's `BatchPlan`, the flip's `FlipPlan`:
every CLB, Kubernetes and store action with its reason) are gathered under `plans`, which is exactly what a
real run would apply; `--lines` prints them one action a line instead of the JSON.
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
        help="dry run: the plans a reconcile of one Service would carry out",
        description="Print the service/unbind/bind/flip plans a reconcile would carry out for one Service.",
    )
    parser.add_argument("--service", type=_key, required=True, metavar="NS/NAME", help="the Service to plan for")
    parser.add_argument("--lines", action="store_true", help="one planned action a line (step, action, reason)")
    parser.set_defaults(func=run)


def typed_plans(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """The typed plans the steps of a dry-run reconcile returned, in step order."""
    found: list[dict[str, Any]] = []
    for step in outcome.get("steps", []):
        result = (step.get("result") or {}).get("result") or {}
        for part in result.get("services", []) + result.get("clbs", []) + [result]:
            if "plan" in part:
                found.append({"step": step["step"], **part["plan"]})
    return found


def plan_lines(plans: list[dict[str, Any]]) -> list[str]:
    lines = []
    for plan in plans:
        # A flip plan's gate writes (one per Pod) come after its other actions, as they are applied.
        actions = plan["actions"] + [a for write in plan.get("writes", []) for a in write["actions"]]
        for action in actions:
            where = plan.get("service") or plan.get("lb_id") or _subject(action)
            name = action.get("action") or action["kind"]
            lines.append(f"{plan['step']:<8} {where}  {name}: {action.get('reason', '')}")
        if plan.get("refusal"):
            lines.append(f"{plan['step']:<8} {where}  fails: {plan['refusal']['message']}")
    return lines


def _subject(action: dict[str, Any]) -> str:
    """What a flip action is about: its Pod, or the object its Event regards."""
    regarding = action.get("regarding") or {}
    return str(action.get("pod") or f"{regarding.get('namespace')}/{regarding.get('name')}")


def run(args: argparse.Namespace) -> int:
    from shared.reconcile import reconcile_service

    deps = stack_deps(with_invoker=False)
    try:
        outcome = reconcile_service(deps, args.service, dry_run=True, reason="clb-direct plan")
    except ClbDirectError as exc:
        return fail(exc)
    finally:
        deps.store.close()
    plans = typed_plans(outcome)
    if args.lines:
        print("\n".join(plan_lines(plans)))
    else:
        emit({**outcome, "plans": plans})
    return 0
