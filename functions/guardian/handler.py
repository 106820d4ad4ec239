"""SCF function `guardian`: repairs the admission webhook (certificates, Secret, configuration).

Triggered by a timer (`{"Type": "Timer", ...}`), by the admission function's cold start and by reconcile
(a StepRequest). Any of those events runs the same guardian step; it needs no CLB access.
"""

from __future__ import annotations

from typing import Any

from shared.shell import FunctionShell, run_step_event

shell = FunctionShell("guardian", with_clb=False, with_invoker=False)


def main_handler(event: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("Type") == "Timer":
        # A timer event carries no StepRequest: run a full check, correlated with the trigger time.
        event = {"step": "guardian", "reason": f"timer {event.get('TriggerName', '')}".strip()}
    return run_step_event(shell, event, context)
