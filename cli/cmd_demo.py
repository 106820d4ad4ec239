"""`clb-direct demo` (what `make demo` runs): the whole system on this machine, a rolling update under load.

Discovered by `cli/main.py`. Parses the flags and hands over to `demo.runner.run_demo`, which starts the
local stack (`demo/stack.py`), runs the scenario (`demo/scenario.py`) with a live view, writes the JSON
report and the PNG timeline to `--out`, and exits 0 only if every phase met its expectation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli._common import ForegroundUntilSignalled, positive


def _non_negative(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value!r}")
    return int(value)


def _health_interval(value: str) -> int:
    number = positive(int)(value)
    if number < 3:  # the check's 2 s timeout must stay below the interval (CLB rule)
        raise argparse.ArgumentTypeError("the health check interval must be at least 3 seconds")
    return int(number)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole system locally: a zero-downtime rolling update you can watch",
        description=(
            "Run the whole system on this machine (CLB emulator, cluster simulator, relay, functions) and roll a "
            "Deployment under load: watch Pods turn Ready only once the CLB health check passes. Writes a JSON "
            "report and a timeline PNG to --out; exits 0 only if every phase met its expectation."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--replicas", type=positive(int), default=6, help="Deployment replicas")
    parser.add_argument("--max-surge", type=_non_negative, default=2, help="rolling update maxSurge (Pods)")
    parser.add_argument("--max-unavailable", type=_non_negative, default=0, help="rolling update maxUnavailable")
    parser.add_argument(
        "--health-interval", type=_health_interval, default=3, help="CLB health check interval, seconds (>= 3)"
    )
    parser.add_argument("--rps", type=positive(float), default=40.0, help="requests per second through the CLB")
    parser.add_argument("--seed", type=int, default=7, help="seed for the scenario's random choices")
    parser.add_argument("--out", type=Path, default=Path("demo-report"), help="report directory")
    parser.add_argument(
        "--compare", action="store_true", help="run the rollout again without the readiness gate, side by side"
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack and the Service running for clb-direct plan/replay/events"
    )
    parser.add_argument(
        "--control-plane",
        action="store_true",
        help="run on a real kube-apiserver + kube-controller-manager + etcd (scripts/build-k8s.sh) instead of the "
        "cluster simulator",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from demo.runner import DemoOptions, run_demo
    from demo.scenario import ScenarioOptions

    if args.max_surge == 0 and args.max_unavailable == 0:
        print("clb-direct demo: --max-surge and --max-unavailable cannot both be 0 (the rollout could not start)")
        return 2
    scenario = ScenarioOptions(
        replicas=args.replicas,
        max_surge=args.max_surge,
        max_unavailable=args.max_unavailable,
        health_interval=args.health_interval,
        rps=args.rps,
        seed=args.seed,
    )
    options = DemoOptions(
        scenario=scenario, out=args.out, compare=args.compare, keep=args.keep, control_plane=args.control_plane
    )
    return run_demo(options, wait_while_kept=_until_signalled)


def _until_signalled() -> None:
    with ForegroundUntilSignalled() as foreground:
        foreground.wait()
