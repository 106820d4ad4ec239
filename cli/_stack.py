"""Helpers shared by the operator commands (`replay`, `plan`, `events`): settings, deps, JSON output.

Imported by `cli/cmd_replay.py`, `cli/cmd_plan.py` and `cli/cmd_events.py`; not a subcommand itself
(discovery only loads `cmd_*` modules).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from shared.config import Settings
from shared.deps import Deps, build_deps
from shared.domain.errors import ClbDirectError
from shared.logging import configure_logging


class StderrAtWriteTime:
    """A log stream that writes to whatever `sys.stderr` is at write time, never a stream bound once:
    the logging configuration outlives the command (one process runs several, e.g. under test) and a
    replaced, closed stderr must not break every later log line."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def stack_deps(*, with_clb: bool = True, with_cluster: bool = True, with_invoker: bool = True) -> Deps:
    """Adapters for the configured stack (CLB_DIRECT_* environment: store, CLB endpoint, kubeconfig).

    Step logs go to stderr: stdout carries only the command's JSON, so it can be piped into `jq`.
    """
    settings = Settings.load()
    configure_logging(settings.log_level, stream=StderrAtWriteTime())  # type: ignore[arg-type]
    return build_deps(settings, with_clb=with_clb, with_cluster=with_cluster, with_invoker=with_invoker)


def emit(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def fail(exc: ClbDirectError) -> int:
    print(json.dumps(exc.to_dict()), file=sys.stderr)
    return 1
