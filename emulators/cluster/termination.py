"""How a simulated container stops: its preStop hook, then SIGTERM under an app model, then the kill.

Both node agents call this module: the in-process kubelet (`kubelet.py`) and the node agent that drives a
real API server. The caller hands `PodTermination` the Pod object (as the API server returned it), the
grace period it settled on, and per container the things that "run" it (`Stoppable`: the container's
HTTP servers); `start()` stops every container in parallel in background threads, `done` / `wait()`
tell when all have exited, and `on_done` is called once then (the caller confirms the deletion).

Timing is the real kubelet's (`killContainer` / `executePreStopHook`): the preStop hook and SIGTERM
share the grace period. The hook runs first, bounded by the whole grace period; the seconds it took
(truncated to whole seconds, as the kubelet does) are taken off; whatever is left goes to SIGTERM, but
never less than 2 s (the kubelet's minimum shutdown window: a hook that overran the grace period still
gets SIGTERM and 2 s before the kill). The kill is abrupt: listeners and open connections are reset.

preStop kinds: `exec` running `sleep N` (also through `sh -c "sleep N"`; any other command is reported
as a FailedPreStopHook, since the simulator has no shell), the native `sleep` action, and `httpGet`
(scheme, `host` — default the Pod IP — port by number or by container port name, path with query,
headers; a `Host` header sets the request's Host). Like the kubelet, HTTPS hooks do not verify the
server certificate, a hook's HTTP status does not matter, and a failed hook only yields a Warning Event.

App models (what the process does on SIGTERM), chosen per Pod by the annotation `ON_SIGTERM_ANNOTATION`
on the Pod (template): `exit` (the default, the common app: close the listener, finish the requests in
flight, exit), `serve:N` (keep serving N seconds, then do as `exit`), `ignore` (never exits; killed when
the grace period ends).
"""

from __future__ import annotations

import logging
import shlex
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

ON_SIGTERM_ANNOTATION = "sim.clb-direct.cloud.tencent.com/on-sigterm"
MIN_SIGTERM_GRACE_S = 2.0  # kubelet minimumGracePeriodInSeconds
FAILED_PRESTOP_HOOK = "FailedPreStopHook"

EventRecorder = Callable[[str, str, str], None]  # (type, reason, message)


class Stoppable(Protocol):
    """One listening part of a container (a `pod_servers.ContainerServer`)."""

    def close_listener(self) -> None: ...

    def wait_idle(self, timeout_s: float) -> bool: ...

    def kill(self) -> None: ...


class HookError(Exception):
    """The hook could not run or failed; the message is the FailedPreStopHook Event's."""


@dataclass(frozen=True)
class AppModel:
    kind: Literal["exit", "serve", "ignore"] = "exit"
    serve_s: float = 0.0

    @classmethod
    def parse(cls, value: str | None) -> AppModel:
        """`exit` | `serve:N` | `ignore`; raises ValueError naming the accepted forms."""
        text = (value or "exit").strip().lower()
        if text in ("exit", "ignore"):
            return cls(kind=text)  # type: ignore[arg-type]
        if text.startswith("serve:"):
            try:
                seconds = float(text.split(":", 1)[1])
            except ValueError:
                seconds = -1.0
            if seconds >= 0:
                return cls(kind="serve", serve_s=seconds)
        raise ValueError(f"{ON_SIGTERM_ANNOTATION}={value!r}: expected exit, serve:<seconds> or ignore")

    @classmethod
    def for_pod(cls, pod: Mapping[str, Any], default: AppModel | None = None) -> AppModel:
        """The Pod's annotation, else `default` (the node agent's; `exit` unless told otherwise)."""
        fallback = default or cls()
        value = ((pod.get("metadata") or {}).get("annotations") or {}).get(ON_SIGTERM_ANNOTATION)
        if value is None:
            return fallback
        try:
            return cls.parse(value)
        except ValueError as exc:
            log.warning("sim kubelet: %s; using %s", exc, fallback.kind)
            return fallback


@dataclass(frozen=True)
class PreStopHook:
    kind: Literal["sleep", "exec", "http"]
    seconds: float = 0.0
    command: tuple[str, ...] = ()
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        if self.kind == "http":
            return f"httpGet {self.url}"
        if self.kind == "exec":
            return f"exec {list(self.command)}"
        return f"sleep {self.seconds:g}s"


def _sleep_command_seconds(command: Sequence[str]) -> float | None:
    words = list(command)
    if len(words) == 3 and words[0].rsplit("/", 1)[-1] in ("sh", "bash") and words[1] == "-c":
        words = shlex.split(words[2])
    if len(words) == 2 and words[0].rsplit("/", 1)[-1] == "sleep":
        try:
            return max(float(words[1]), 0.0)
        except ValueError:
            return None
    return None


def _resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    if port in (None, ""):
        return 80
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for item in container.get("ports") or []:
        if item.get("name") == text:
            return int(item["containerPort"])
    raise HookError(f"couldn't find port: {text} in container {container.get('name')!r}")


def prestop_hook(container: Mapping[str, Any], pod_ip: str) -> PreStopHook | None:
    """The container's preStop handler, resolved for this Pod (host defaults to its IP); None without one."""
    handler = ((container.get("lifecycle") or {}).get("preStop")) or None
    if not handler:
        return None
    if "sleep" in handler:
        return PreStopHook("sleep", seconds=float((handler["sleep"] or {}).get("seconds") or 0))
    if "exec" in handler:
        command = tuple(str(word) for word in (handler["exec"] or {}).get("command") or [])
        seconds = _sleep_command_seconds(command)
        if seconds is not None:
            return PreStopHook("sleep", seconds=seconds, command=command)
        return PreStopHook("exec", command=command)
    if "httpGet" in handler:
        action = handler["httpGet"] or {}
        scheme = str(action.get("scheme") or "HTTP").lower()
        host = str(action.get("host") or pod_ip)
        port = _resolve_port(action.get("port"), container)
        path = str(action.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        headers = tuple((str(h.get("name")), str(h.get("value", ""))) for h in action.get("httpHeaders") or [])
        host_part = f"[{host}]" if ":" in host else host
        return PreStopHook("http", url=f"{scheme}://{host_part}:{port}{path}", headers=headers)
    return PreStopHook("exec", command=("<unsupported handler>",))


def run_hook(hook: PreStopHook, timeout_s: float, cancelled: threading.Event) -> None:
    """Run one hook to completion (the caller bounds it); raises HookError when it fails."""
    if hook.kind == "sleep":
        cancelled.wait(hook.seconds)
        return
    if hook.kind == "exec":
        raise HookError(f"Exec lifecycle hook ({list(hook.command)}) failed: the simulator runs only `sleep N`")
    request = urllib.request.Request(hook.url, method="GET")
    request.add_header("User-Agent", "kube-lifecycle/1.30")
    request.add_header("Accept", "*/*")
    for name, value in hook.headers:
        request.add_header(name, value)  # a `Host` header overrides the request's Host, as in the kubelet
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the kubelet's lifecycle client skips TLS verification
    try:
        with urllib.request.urlopen(request, timeout=max(timeout_s, 0.1), context=context) as response:
            response.read()
    except urllib.error.HTTPError as exc:  # any HTTP answer completes the hook, whatever its status
        exc.read()
    except (OSError, urllib.error.URLError) as exc:
        raise HookError(f"Http lifecycle hook ({hook.url}) failed - error: {exc}") from exc


def sigterm_budget_s(grace_s: float, prestop_elapsed_s: float | None) -> float:
    """Seconds from SIGTERM to the kill: the grace left after the hook (whole seconds), at least 2 s."""
    left = grace_s if prestop_elapsed_s is None else grace_s - int(prestop_elapsed_s)
    return max(left, MIN_SIGTERM_GRACE_S)


@dataclass
class ContainerOutcome:
    name: str
    prestop: str = ""
    prestop_s: float = 0.0
    prestop_error: str = ""
    prestop_timed_out: bool = False
    exit: Literal["", "graceful", "killed"] = ""


@dataclass
class PodTermination:
    """Stops one Pod's containers with kubelet timing; threads only, the caller owns the Pod object."""

    pod: Mapping[str, Any]
    stoppables: Mapping[str, Sequence[Stoppable]]
    grace_s: float
    pod_ip: str
    record_event: EventRecorder | None = None
    on_done: Callable[[], None] | None = None
    default_app: AppModel | None = None
    outcomes: dict[str, ContainerOutcome] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._left = 0
        self.app = AppModel.for_pod(self.pod, self.default_app)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def start(self) -> None:
        specs = {str(c.get("name")): c for c in (self.pod.get("spec") or {}).get("containers") or []}
        names = [name for name in self.stoppables if name in specs] or list(self.stoppables)
        self._left = len(names)
        if not names:
            self._finish_one()
            return
        for name in names:
            threading.Thread(
                target=self._stop_container, args=(name, specs.get(name) or {}), name=f"stop-{name}", daemon=True
            ).start()

    def abort(self) -> None:
        """Kill every container now (the node agent is shutting down)."""
        self._cancelled.set()
        for parts in self.stoppables.values():
            for part in parts:
                part.kill()

    def _event(self, kind: str, reason: str, message: str) -> None:
        if self.record_event is not None:
            try:
                self.record_event(kind, reason, message)
            except Exception:  # an Event is a hint: never let it stop a termination
                log.exception("sim kubelet: cannot record event %s", reason)

    def _stop_container(self, name: str, spec: Mapping[str, Any]) -> None:
        outcome = self.outcomes.setdefault(name, ContainerOutcome(name))
        try:
            elapsed = self._run_prestop(name, spec, outcome)
            self._event("Normal", "Killing", f"Stopping container {name}")
            outcome.exit = self._sigterm(self.stoppables.get(name) or (), sigterm_budget_s(self.grace_s, elapsed))
        finally:
            self._finish_one()

    def _run_prestop(self, name: str, spec: Mapping[str, Any], outcome: ContainerOutcome) -> float | None:
        try:
            hook = prestop_hook(spec, self.pod_ip)
        except HookError as exc:
            self._event("Warning", FAILED_PRESTOP_HOOK, f"PreStopHook failed: {exc}")
            return 0.0
        if hook is None or self.grace_s <= 0:
            return None
        outcome.prestop = hook.describe()
        errors: list[str] = []

        def target() -> None:
            try:
                run_hook(hook, self.grace_s, self._cancelled)
            except HookError as exc:
                errors.append(str(exc))

        started = time.monotonic()
        runner = threading.Thread(target=target, name=f"prestop-{name}", daemon=True)
        runner.start()
        runner.join(self.grace_s)  # a hook still running then is abandoned, as the kubelet does
        outcome.prestop_s = time.monotonic() - started
        outcome.prestop_timed_out = runner.is_alive()
        if errors:
            outcome.prestop_error = errors[0]
            self._event("Warning", FAILED_PRESTOP_HOOK, f"PreStopHook failed: {errors[0]}")
        return outcome.prestop_s

    def _sigterm(self, parts: Sequence[Stoppable], budget_s: float) -> Literal["graceful", "killed"]:
        deadline = time.monotonic() + budget_s
        if self.app.kind == "ignore":
            self._cancelled.wait(budget_s)
        else:
            if self.app.kind == "serve":
                self._cancelled.wait(min(self.app.serve_s, budget_s))
            for part in parts:
                part.close_listener()
            if all(part.wait_idle(max(deadline - time.monotonic(), 0.0)) for part in parts):
                for part in parts:
                    part.kill()  # nothing open any more: the process exits
                return "graceful"
        for part in parts:
            part.kill()
        return "killed"

    def _finish_one(self) -> None:
        with self._lock:
            self._left -= 1
            finished = self._left <= 0 and not self._done.is_set()
            if finished:
                self._done.set()
        if finished and self.on_done is not None:
            self.on_done()


def kubelet_event(
    pod: Mapping[str, Any], kind: str, reason: str, message: str, *, node: str, now: float
) -> dict[str, Any]:
    """A core/v1 Event about `pod` as the kubelet on `node` writes it (for `PodTermination.record_event`)."""
    meta = pod.get("metadata") or {}
    stamp = datetime.fromtimestamp(int(now), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
