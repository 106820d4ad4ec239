"""The one shell of every SCF handler: deps once per cold start, log context, and the one error seam.

Used by every `functions/<name>/handler.py`. A `FunctionShell` builds its `Deps` from `Settings`
(environment) on the first invocation and keeps them for the container's life; tests and
`clb-direct invoke` hand in their own with `use(deps)`. Handlers build their deps *inside* their error
handling and map every failure through one of two functions:

- `http_error(function, exc)`: the API-gateway response (relay batches, health callbacks, admission).
  401 for a rejected signature, 400 for bad input or another permanent failure, 500 for a configuration
  error (the caller cannot fix it), 503 for a transient failure (the caller may retry).
- `async_error(function, exc)`: the result of an async or timer invocation (SCF semantics). A
  `RetryableError` is raised again so the platform retries; a `PermanentError` becomes a JSON error
  result, which SCF does not retry. A `ConfigError` is permanent too, worded as what to fix: retrying
  an invocation whose settings are wrong can never succeed.

A pydantic `ValidationError` that reaches the seam is bad input (`InvalidInput`) naming the fields.
Unexpected exceptions are not caught: SCF records them as run errors (and retries async ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from shared.config import Settings
from shared.deps import Deps, build_deps
from shared.domain.errors import (
    AdmissionDenied,
    ClbDirectError,
    ConfigError,
    InvalidInput,
    PermanentError,
    RetryableError,
)
from shared.domain.models import StepRequest
from shared.events.apigw import ApiGatewayResponse
from shared.logging import bind_invocation, configure_logging, get_logger
from shared.signing import SignatureRejected

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
        """This container's adapters, built on first use; a bad setting raises `ConfigError`."""
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


# ---------------------------------------------------------------------------------------------- error seam


def invalid_input(what: str, exc: ValidationError) -> InvalidInput:
    """A pydantic validation failure as `InvalidInput` naming every bad field."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
    return InvalidInput(f"invalid {what}: {problems}")


def _as_error(function: str, exc: ClbDirectError | ValidationError) -> ClbDirectError:
    return invalid_input(f"{function} event", exc) if isinstance(exc, ValidationError) else exc


def _misconfigured(function: str, exc: ConfigError) -> dict[str, object]:
    log.error("function.misconfigured", error="ConfigError", message=exc.message)
    return {
        **exc.to_dict(),
        "message": f"function {function} is misconfigured and cannot run until its settings are fixed "
        f"(retrying will not help): {exc.message}",
    }


def http_error(function: str, exc: ClbDirectError | ValidationError) -> dict[str, Any]:
    """The API-gateway response for a failed HTTP invocation (see the module docstring for the codes)."""
    error = _as_error(function, exc)
    if isinstance(error, ConfigError):
        return ApiGatewayResponse.of(500, _misconfigured(function, error)).to_wire()
    if isinstance(error, SignatureRejected):
        status = 401
    elif isinstance(error, RetryableError):
        status = 503
    elif isinstance(error, AdmissionDenied):
        status = error.code
    elif isinstance(error, PermanentError):
        status = 400
    else:
        status = 500
    log_at = log.warning if status < 500 else log.error
    log_at("request.failed", status=status, error=type(error).__name__, message=error.message)
    return ApiGatewayResponse.of(status, error.to_dict()).to_wire()


def async_error(function: str, exc: ClbDirectError | ValidationError) -> dict[str, Any]:
    """The result of a failed async/timer invocation; raises a retryable error again so SCF retries it."""
    error = _as_error(function, exc)
    if isinstance(error, RetryableError):
        log.warning("function.retry", message=error.message, delay_s=error.delay_s)
        raise error
    if isinstance(error, ConfigError):
        return {"ok": False, "function": function, **_misconfigured(function, error)}
    log.error("function.failed", error=type(error).__name__, message=error.message)
    return {"ok": False, "function": function, **error.to_dict()}


# ---------------------------------------------------------------------------------------------- step functions


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
        raise invalid_input(f"{function} event", exc) from exc


def function_timeout_s(context: Mapping[str, Any] | None, settings: Settings) -> float:
    """This invocation's real timeout: SCF's `time_limit_in_ms` in the context where it gives one, else
    `CLB_DIRECT_FUNCTION_TIMEOUT_S` (which serverless.yml sets per function to its `timeout`)."""
    raw = (context or {}).get("time_limit_in_ms")
    try:
        limit_ms = float(raw) if raw is not None else 0.0
    except (TypeError, ValueError):
        limit_ms = 0.0
    return limit_ms / 1000.0 if limit_ms > 0 else settings.function_timeout_s


def run_step_event(shell: FunctionShell, event: Any, context: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse → run_step → result; permanent failures come back as data, retryable ones are raised."""
    from shared.steps import run_step

    correlation = event.get("correlation_id") if isinstance(event, Mapping) else None
    shell.begin(context, correlation if isinstance(correlation, str) else None)
    try:
        request = parse_step_event(shell.name, event)
        deps = shell.deps()
        outcome = run_step(
            deps,
            request,
            dry_run=bool((context or {}).get("dry_run")),
            timeout_s=function_timeout_s(context, deps.settings),
        )
    except ClbDirectError as exc:
        return async_error(shell.name, exc)
    log.info("step.done", step=shell.name, actions=len(outcome.get("actions", [])))
    return {"ok": True, "function": shell.name, **outcome}
