"""The local SCF-style runtime (`clb-direct serve`): every function behind HTTP(S), an async queue, timers.

- API gateway: `ANY /<function>[/...]` on the HTTP server (and on the HTTPS server, where the admission webhook is
  served with the guardian's certificate) becomes an API-gateway event for that function; the handler's integrated
  response becomes the HTTP response.
- Async invoke: `POST /_invoke {"function": ..., "payload": ...}` (what `HttpInvoker` sends) queues an
  `InvocationType=Event` invocation with SCF's retry semantics (`AsyncInvokeQueue`), in that function's own
  lane (`workers` at a time per function, as each SCF function scales apart from the others).
- Timers: each `TimerSpec` submits a timer event to its function every `interval_s`.
- `GET /_runtime/stats`: invocation counts, errors, queue statistics and dead letters.

Handlers are imported lazily from `functions.<name>.handler` after the runtime's environment is applied, so each
function builds its dependencies from the same `CLB_DIRECT_*` settings as it would on SCF. Every invocation gets a
fresh SCF context dict; invocations running past the function's time limit are counted as failed (SCF would have
killed them), which the async queue retries.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulators.cluster.tls import KeyPair
from emulators.runtime.invoke_queue import AsyncInvokeQueue
from emulators.runtime.scf_context import api_gateway_event, http_response_from_result, make_context, timer_event
from limited_http import HttpLimits, LimitedHTTPServer, LimitedRequestHandler

log = logging.getLogger(__name__)

TlsProvider = Callable[[], "tuple[bytes, bytes] | None"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    memory_mb: int = 256
    timeout_s: float = 60.0
    entry: str | None = None  # "module:callable"; default "functions.<name>.handler:main_handler"

    @property
    def entry_point(self) -> tuple[str, str]:
        module, _, attribute = (self.entry or f"functions.{self.name}.handler:main_handler").partition(":")
        return module, attribute or "main_handler"


@dataclass(frozen=True)
class TimerSpec:
    name: str
    function: str
    interval_s: float
    message: str = ""


DEFAULT_FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec("admission", memory_mb=128, timeout_s=10),
    FunctionSpec("router"),
    FunctionSpec("health"),
    FunctionSpec("reconcile", timeout_s=300),
    FunctionSpec("guardian"),
    # The timeouts serverless.yml deploys (a step's idempotency claim expires after its function's timeout).
    FunctionSpec("service", timeout_s=120),
    FunctionSpec("bind", timeout_s=120),
    FunctionSpec("unbind", timeout_s=120),
    FunctionSpec("flip", timeout_s=120),
    # Holds the kubelet's preStop call until the Pod is drained: bounded by the grace period (<= 300 s).
    FunctionSpec("prestop", memory_mb=128, timeout_s=330),
)


class FunctionTimeout(Exception):
    """The invocation ran past its function's time limit."""


@dataclass
class _Stats:
    invocations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    last_errors: list[dict[str, Any]] = field(default_factory=list)


class LocalRuntime:
    """Runs the project's functions locally with SCF's event shapes and async semantics."""

    def __init__(
        self,
        *,
        functions: Sequence[FunctionSpec] = DEFAULT_FUNCTIONS,
        timers: Sequence[TimerSpec] = (),
        host: str = "127.0.0.1",
        http_port: int = 0,
        https_port: int | None = None,
        tls_provider: TlsProvider | None = None,
        environ: Mapping[str, str] | None = None,
        workers: int = 4,
        max_retries: int = 2,
        retry_delay_s: float = 1.0,
        dead_letter_path: Path | None = None,
        http_limits: HttpLimits | None = None,
    ) -> None:
        self.http_limits = http_limits or HttpLimits()
        self.functions = {spec.name: spec for spec in functions}
        self.timers = list(timers)
        self.host = host
        self._http_port = http_port
        self._https_port = https_port
        self._tls_provider = tls_provider
        self._environ = dict(environ or {})
        self._saved_environ: dict[str, str | None] = {}
        self.stats = _Stats()
        self._stats_lock = threading.Lock()
        self._handlers: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {}
        self._import_lock = threading.Lock()
        self.queue = AsyncInvokeQueue(
            self._invoke_async_item,
            workers=workers,
            max_retries=max_retries,
            retry_delay_s=retry_delay_s,
            dead_letter_path=dead_letter_path,
        )
        self._http: LimitedHTTPServer | None = None
        self._https: LimitedHTTPServer | None = None
        self._tls_material: tuple[bytes, bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # ------------------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        assert self._http is not None, "runtime not started"
        return f"http://{self.host}:{self._http.server_address[1]}"

    @property
    def https_url(self) -> str | None:
        if self._https is None:
            return None
        return f"https://{self.host}:{self._https.server_address[1]}"

    @property
    def invoke_url(self) -> str:
        return f"{self.url}/_invoke"

    def start(self) -> None:
        # The functions read their settings from the process environment, as on SCF; stop() puts back what
        # was there so that a later runtime (or test) in this process never inherits this one's settings.
        for key, value in self._environ.items():
            self._saved_environ.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        self._stop.clear()
        self._http = LimitedHTTPServer((self.host, self._http_port), _make_handler(self), limits=self.http_limits)
        self._spawn(self._http.serve_forever, "runtime-http")
        self.queue.start()
        for timer in self.timers:
            self._spawn(functools.partial(self._run_timer, timer), f"timer-{timer.name}")

    def start_https(self, port: int | None = None) -> str:
        """Serve the same routes over HTTPS with the provider's certificate (the guardian's)."""
        if self._tls_provider is None:
            raise RuntimeError("no TLS provider configured for the HTTPS endpoint")
        material = self._tls_provider()
        if material is None:
            raise RuntimeError("the TLS provider has no certificate yet (run the guardian first)")
        context = KeyPair(*material).server_context()
        bind_port = port if port is not None else (self._https_port or 0)
        # The handshake runs on the connection's thread under the read deadline, never inside accept().
        server = LimitedHTTPServer(
            (self.host, bind_port), _make_handler(self), limits=self.http_limits, ssl_context=context
        )
        self._tls_material = material
        self._https = server
        self._spawn(server.serve_forever, "runtime-https")
        self._spawn(self._watch_tls, "runtime-tls-reload")
        return self.https_url or ""

    def stop(self) -> None:
        self._stop.set()
        for server in (self._http, self._https):
            if server is not None:
                server.shutdown()
                server.server_close()
        self.queue.stop()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()
        for key, saved in self._saved_environ.items():
            if saved is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = saved
        self._saved_environ.clear()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _swap_tls(self, material: tuple[bytes, bytes]) -> None:
        """Serve `material` from the next handshake on: a fresh context, fully loaded, then swapped in.

        The live context is never mutated: `load_cert_chain` sets the certificate and then the key, so a
        handshake between the two (or after a mismatched pair failed halfway) would present a certificate
        with no matching key. A connection already handshaking keeps the context it started with.
        """
        assert self._https is not None
        self._https.ssl_context = KeyPair(*material).server_context()
        self._tls_material = material

    def _watch_tls(self) -> None:
        """Pick up a rotated serving certificate (the guardian rewrites the Secret before expiry)."""
        rejected: tuple[bytes, bytes] | None = None
        while not self._stop.wait(2.0):
            assert self._tls_provider is not None
            try:
                material = self._tls_provider()
            except Exception:  # the cluster may be briefly unreachable; keep the current certificate
                continue
            if material is not None and material not in (self._tls_material, rejected):
                try:
                    self._swap_tls(material)
                except (ssl.SSLError, ValueError) as exc:
                    # A damaged Secret (the guardian repairs it): keep serving the last good certificate.
                    rejected = material
                    log.warning(
                        "runtime: unusable serving certificate from the TLS provider (%s); keeping the current one", exc
                    )

    def _run_timer(self, timer: TimerSpec) -> None:
        while not self._stop.wait(timer.interval_s):
            self.queue.submit(timer.function, timer_event(timer.name, timer.message))

    # ------------------------------------------------------------------------------------------ invocation

    def handler(self, function: str) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
        if function not in self.functions:
            raise KeyError(f"unknown function {function!r}; known: {sorted(self.functions)}")
        with self._import_lock:
            if function not in self._handlers:
                module_name, attribute = self.functions[function].entry_point
                self._handlers[function] = getattr(importlib.import_module(module_name), attribute)
            return self._handlers[function]

    def invoke(self, function: str, event: dict[str, Any], request_id: str | None = None) -> Any:
        """Run one invocation synchronously with a fresh SCF context."""
        spec = self.functions[function]
        handler = self.handler(function)
        context = make_context(function, memory_mb=spec.memory_mb, timeout_s=spec.timeout_s, request_id=request_id)
        started = time.monotonic()
        with self._stats_lock:
            self.stats.invocations[function] += 1
        try:
            result = handler(event, context)
        except Exception as exc:
            with self._stats_lock:
                self.stats.errors[function] += 1
                self.stats.last_errors = [
                    *self.stats.last_errors[-49:],
                    {"function": function, "error": f"{type(exc).__name__}: {exc}"},
                ]
            raise
        if time.monotonic() - started > spec.timeout_s:
            with self._stats_lock:
                self.stats.timeouts[function] += 1
            raise FunctionTimeout(f"{function} ran past its {spec.timeout_s:.0f} s time limit")
        return result

    def _invoke_async_item(self, function: str, payload: dict[str, Any], request_id: str) -> Any:
        return self.invoke(function, payload, request_id)

    def submit(self, function: str, payload: dict[str, Any]) -> str:
        if function not in self.functions:
            raise KeyError(f"unknown function {function!r}")
        return self.queue.submit(function, payload)

    def snapshot(self) -> dict[str, Any]:
        with self._stats_lock:
            return {
                "invocations": dict(self.stats.invocations),
                "errors": dict(self.stats.errors),
                "timeouts": dict(self.stats.timeouts),
                "last_errors": list(self.stats.last_errors),
                "queue": vars(self.queue.stats).copy(),
                "lanes": self.queue.lanes(),
                "dead_letters": list(self.queue.dead_letters),
            }


def _make_handler(runtime: LocalRuntime) -> type[LimitedRequestHandler]:
    class Handler(LimitedRequestHandler):
        server_version = "clb-direct-runtime"

        def _reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            self.send_all(status, headers, body)

        def _json(self, status: int, payload: object) -> None:
            self.send_json(status, payload)

        def _dispatch(self) -> None:
            path = self.path.split("?", 1)[0]
            body = self.read_body()
            if body is None:  # already answered (400/408/411/413)
                return
            if path == "/_invoke" and self.command == "POST":
                self._async_invoke(body)
                return
            if path == "/_runtime/stats":
                self._json(200, runtime.snapshot())
                return
            function = path.strip("/").split("/", 1)[0]
            if function not in runtime.functions:
                self._json(404, {"error": f"no function at {path!r}", "functions": sorted(runtime.functions)})
                return
            event = api_gateway_event(
                method=self.command,
                raw_path=self.path,
                headers=dict(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
            )
            try:
                result = runtime.invoke(function, event)
            except Exception as exc:
                self._json(502, {"error": f"{function} failed: {type(exc).__name__}: {exc}"})
                return
            self._reply(*http_response_from_result(result))

        def _async_invoke(self, body: bytes) -> None:
            try:
                request = json.loads(body or b"{}")
                function, payload = request["function"], request["payload"]
                if not isinstance(payload, dict):
                    raise TypeError("payload must be a JSON object")
                request_id = runtime.submit(str(function), payload)
            except (ValueError, KeyError, TypeError) as exc:
                self._json(400, {"error": f"bad invoke request: {exc}"})
                return
            self._json(202, {"RequestId": request_id})

        do_GET = _dispatch
        do_POST = _dispatch
        do_PUT = _dispatch
        do_DELETE = _dispatch
        do_PATCH = _dispatch

    return Handler
