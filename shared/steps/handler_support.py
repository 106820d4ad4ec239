"""The shell every step function shares: deps once per cold start, logging, parsing, error mapping.

Used by `functions/{service,bind,unbind,flip,guardian,admission}/handler.py`. A `FunctionShell` builds
its `Deps` from `Settings` (environment) on the first invocation and keeps them for the container's
life; tests and `clb-direct invoke` hand in their own with `use(deps)`. Error mapping follows SCF's
async semantics: a `RetryableError` (or an unexpected exception) is raised so the platform retries; a
`PermanentError` becomes a JSON error result, which SCF does not retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from shared.config import Settings
from shared.deps import Deps, build_deps
from shared.domain.errors import InvalidInput, PermanentError, RetryableError
from shared.domain.models import StepRequest
from shared.logging import bind_invocation, configure_logging, get_logger

log = get_logger("clb_direct.handler")


class FunctionShell:
    def __init__(self, name: str, *, with_clb: bool = True, with_cluster: bool = True, with_invoker: bool = True):
        self.name = name
        self._with_clb, self._with_cluster, self._with_invoker = with_clb, with_cluster, with_invoker
        self._deps: Deps | None = None
        self._invocations = 0

    def use(self, deps: Deps | None) -> None:
        """Inject dependencies (tests, the CLI); None makes the next invocation build them again."""
        self._deps = deps

    def release(self) -> None:
        """Close the adapters this container built and forget them, like a recycled SCF container.

        The local runtime calls it on stop so that a second runtime in the same process (the demo's
        `--compare` run, tests) builds fresh adapters from its own settings and no connection leaks.
        """
        deps, self._deps = self._deps, None
        self._invocations = 0
        if deps is None:
            return
        deps.store.close()
        close_cluster = getattr(deps.cluster, "close", None)
        if callable(close_cluster):
            close_cluster()

    def deps(self) -> Deps:
        if self._deps is None:
            from shared.secrets import resolve_secrets

            settings = resolve_secrets(Settings.load())
            configure_logging(settings.log_level)
            self._deps = build_deps(
                settings, with_clb=self._with_clb, with_cluster=self._with_cluster, with_invoker=self._with_invoker
            )
        return self._deps

    def begin(self, context: Mapping[str, Any] | None, correlation_id: str | None = None) -> bool:
        """Bind the invocation's log context; returns True on the container's first invocation."""
        self._invocations += 1
        cold = self._invocations == 1
        request_id = str((context or {}).get("request_id") or f"local-{self._invocations}")
        bind_invocation(function=self.name, request_id=request_id, cold_start=cold, correlation_id=correlation_id)
        return cold


def parse_step_event(function: str, event: Any) -> StepRequest:
    """The event of an async step invocation is a StepRequest (its `step` may be omitted)."""
    if not isinstance(event, Mapping):
        raise InvalidInput(f"{function} expects a JSON object (a StepRequest), got {type(event).__name__}")
    data = dict(event)
    data.setdefault("step", function)
    if data["step"] != function:
        raise InvalidInput(f"event is for step {data['step']!r} but was sent to function {function!r}")
    try:
        return StepRequest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid {function} event: {problems}") from exc


def error_result(function: str, exc: PermanentError) -> dict[str, Any]:
    log.error("step.failed", step=function, error=type(exc).__name__, message=exc.message)
    return {"ok": False, "function": function, **exc.to_dict()}


def run_step_event(shell: FunctionShell, event: Any, context: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse → run_step → result; permanent failures come back as data, retryable ones are raised."""
    from shared.steps import run_step

    correlation = event.get("correlation_id") if isinstance(event, Mapping) else None
    shell.begin(context, correlation if isinstance(correlation, str) else None)
    try:
        request = parse_step_event(shell.name, event)
        deps = shell.deps()
        outcome = run_step(deps, request, dry_run=bool((context or {}).get("dry_run")))
    except RetryableError as exc:
        log.warning("step.retry", step=shell.name, message=exc.message, delay_s=exc.delay_s)
        raise
    except PermanentError as exc:
        return error_result(shell.name, exc)
    log.info("step.done", step=shell.name, actions=len(outcome.get("actions", [])))
    return {"ok": True, "function": shell.name, **outcome}
