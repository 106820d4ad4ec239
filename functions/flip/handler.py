"""SCF function `flip`: runs the flip step for one StepRequest (async invocation from router/reconcile/steps).

Thin shell: the event is a StepRequest; dependencies are built once per cold start; the work is
`shared.steps.run_step`. Retryable failures raise (SCF retries); permanent ones return a JSON error.
"""

from __future__ import annotations

from typing import Any

from shared.shell import FunctionShell, run_step_event

shell = FunctionShell("flip")


def main_handler(event: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    return run_step_event(shell, event, context)
