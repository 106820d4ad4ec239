"""`python -m tests.chaos` (`make chaos`): run seeded chaos scenarios and print the summary.

    python -m tests.chaos                  # 200 scenarios, seeds 0..199
    python -m tests.chaos --scenarios 500 --first-seed 1000
    python -m tests.chaos --seed 17        # replay one seed, printing each operation as it runs

Exits 1 if any scenario broke an invariant or did not converge, naming the seeds to replay.
"""

from __future__ import annotations

import argparse
import sys

from shared.logging import configure_logging
from tests.chaos.scenarios import run_scenario, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description="Run seeded chaos scenarios.")
    parser.add_argument("--scenarios", type=int, default=200, help="how many scenarios to run (default 200)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first scenario (default 0)")
    parser.add_argument("--seed", type=int, default=None, help="replay this one seed, printing its operations")
    parser.add_argument("--log-level", default="error", help="level of the product's own logs (default error)")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, sys.stderr, force=True)
    if args.seed is not None:
        result = run_scenario(args.seed, trace=print)
        print(summary([result]))
        return 0 if result.ok else 1
    results = []
    for seed in range(args.first_seed, args.first_seed + args.scenarios):
        result = run_scenario(seed)
        results.append(result)
        mark = "ok" if result.ok else "FAILED"
        print(f"seed {seed}: {mark} ({len(result.operations)} operations, {result.wall_s:.1f}s)", flush=True)
    print(summary(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
