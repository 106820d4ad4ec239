"""`make bench`: run the benchmarks, print one row per case (both sides measured in this run), write JSON.

Usage: `python -m tests.bench [--quick] [--out PATH] [--only NAME ...]`. Names: coalescing,
reconcile, store, admission, relay, rollout (`--only rollout --quick`: one N = 20 rollout, gated and
not, about a minute). The ratio column is B/A: how many times the baseline (B) costs what clb-direct's
way (A) does. Nothing here passes or fails on a number; the exit code is non-zero only when a benchmark
could not run or its side effects were wrong (e.g. a wave not fully bound).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.common import Row, format_table, quiet_logs

BENCHES = ("coalescing", "reconcile", "store", "admission", "relay", "rollout", "runtime")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (about 30 s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(".clb-direct/bench-results.json"),
        help="where to write the JSON (default: %(default)s)",
    )
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these benchmarks")
    args = parser.parse_args(argv)
    quiet_logs()
    rows: list[Row] = []
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for name in args.only or BENCHES:
        module = importlib.import_module(f"tests.bench.bench_{name}")
        print(f"== {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        new_rows: list[Row] = module.run(args.quick)
        timings[name] = time.perf_counter() - t0
        rows.extend(new_rows)
        print(format_table(new_rows), flush=True)
        print(flush=True)
    total = time.perf_counter() - started
    print("== summary (B/A = baseline over clb-direct)")
    print(format_table(rows))
    report: dict[str, Any] = {
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "total_s": total,
        "bench_s": timings,
        "rows": [row.to_dict() for row in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out} ({len(rows)} rows, {total:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
