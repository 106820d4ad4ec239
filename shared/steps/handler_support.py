"""Moved to `shared.shell` (the one handler shell and error seam); re-exported while callers move."""

from __future__ import annotations

from shared.shell import FunctionShell, parse_step_event, run_step_event

__all__ = ["FunctionShell", "parse_step_event", "run_step_event"]
