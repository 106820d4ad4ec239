"""The prestop step: hold a terminating Pod's preStop call until the CLB no longer sends it traffic.

Called by `functions/prestop/handler.py` (API gateway, `GET /prestop?namespace=..&id=..` with the
per-Pod token header), which the kubelet calls as the `httpGet` preStop hook admission added
(`shared.domain.termination`). The request is validated (400 naming the field), authenticated
(401: the token is an HMAC of namespace and id, compared in constant time), and the Pod is looked up
by its prestop id label. Then the call is held, re-reading the Pod's binding records (written by the
unbind step once the CLB accepted weight 0) every `prestop_poll_s`, until every binding is at weight 0
for `prestop_linger_s`, or until the hold deadline: the Pod's deletion deadline minus the 2 s the
kubelet keeps for SIGTERM, and never more than `prestop_max_hold_s`. A Pod that is not being deleted
(a container restart also runs preStop) or has no binding is answered at once.

What a caller can learn or cause is scoped: one Pod's drain state, and a held request only while that
Pod terminates. At most `prestop_max_holds` requests are held at once per instance (429 beyond; on
SCF each instance serves one request, so the function's concurrency quota is the global bound). Every
failure answers quickly and the kubelet goes on to SIGTERM, so the Pod always terminates within its
grace period (fail-safe); a drain that did not finish in time gets a Warning Event on the Pod.
"""

from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from shared.config import Settings
from shared.deps import Deps
from shared.domain.errors import InvalidInput
from shared.domain.models import ObjectRef, PodInfo
from shared.domain.termination import (
    PRESTOP_ID_LABEL,
    PRESTOP_TOKEN_HEADER,
    SIGTERM_RESERVE_S,
    drain_state,
    required_grace_s,
    token_matches,
)
from shared.keys import PRESTOP_HMAC_KEY
from shared.logging import get_logger
from shared.ports import Clock, KeyValueStore
from wire_time import parse_rfc3339

log = get_logger("clb_direct.prestop")

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HEX = re.compile(r"^[0-9a-f]+$")


class Unauthorized(InvalidInput):
    """The token does not match namespace and id: the handler answers 401 and says nothing more."""


class TooManyHolds(InvalidInput):
    """This instance holds `prestop_max_holds` requests already: the handler answers 429."""


def prestop_key(settings: Settings, store: KeyValueStore, clock: Clock) -> bytes:
    """The token key: the configured one, else a random key created once in the store (shared by all functions)."""
    if settings.prestop_hmac_key is not None:
        return settings.prestop_hmac_key.get_secret_value().encode()
    now = clock.now()
    store.kv_set_if_absent(PRESTOP_HMAC_KEY, secrets.token_hex(32), ttl_s=None, now=now)
    value = store.kv_get(PRESTOP_HMAC_KEY, now=now)
    if not value:
        raise InvalidInput("the prestop token key vanished from the store; set CLB_DIRECT_PRESTOP_HMAC_KEY")
    return value.encode()


@dataclass(frozen=True)
class PrestopCall:
    namespace: str
    prestop_id: str
    token: str

    @classmethod
    def parse(cls, query: dict[str, Any], token: str | None) -> PrestopCall:
        """Validate the kubelet's call; `InvalidInput` names the field that is wrong."""
        namespace, prestop_id = str(query.get("namespace") or ""), str(query.get("id") or "")
        if not _NAMESPACE.match(namespace):
            raise InvalidInput("query parameter 'namespace' must be a Kubernetes namespace name")
        if len(prestop_id) != 32 or not _HEX.match(prestop_id):
            raise InvalidInput("query parameter 'id' must be the 32 hex digits of the Pod's prestop id label")
        if not token or len(token) != 64 or not _HEX.match(token):
            raise InvalidInput(f"header '{PRESTOP_TOKEN_HEADER}' must be the 64 hex digits the hook carries")
        return cls(namespace, prestop_id, token)


@dataclass(frozen=True)
class PrestopResult:
    status: str  # drained | not-bound | not-terminating | not-found | deadline
    message: str
    waited_s: float = 0.0
    pod: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "waited_s": round(self.waited_s, 3), "pod": self.pod}


class HoldLimiter:
    """Bounds the requests one instance holds at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = 0

    def acquire(self, limit: int) -> bool:
        with self._lock:
            if self._held >= limit:
                return False
            self._held += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._held -= 1


HOLDS = HoldLimiter()


def _epoch(timestamp: str) -> float:
    return parse_rfc3339(timestamp).timestamp()


def _find_pod(deps: Deps, call: PrestopCall) -> PodInfo | None:
    pods = deps.require_cluster().list_pods(call.namespace, {PRESTOP_ID_LABEL: call.prestop_id})
    return pods[0] if len(pods) == 1 else None


def wait_for_drain(deps: Deps, call: PrestopCall, *, limiter: HoldLimiter = HOLDS) -> PrestopResult:
    """Authenticate, find the Pod, hold until drained or the deadline; raises `Unauthorized`/`TooManyHolds`."""
    settings, clock = deps.settings, deps.clock
    if not token_matches(prestop_key(settings, deps.store, clock), call.namespace, call.prestop_id, call.token):
        raise Unauthorized("the prestop token does not match this namespace and id")
    pod = _find_pod(deps, call)
    if pod is None:
        return PrestopResult("not-found", "no Pod carries this prestop id (already gone?)")
    name = f"{pod.namespace}/{pod.name}"
    if pod.deletion_timestamp is None:
        return PrestopResult("not-terminating", "the Pod is not being deleted (a container restart?)", pod=name)
    if not limiter.acquire(settings.prestop_max_holds):
        raise TooManyHolds(f"{settings.prestop_max_holds} prestop requests are held already; retry later")
    try:
        return _hold(deps, pod, name)
    finally:
        limiter.release()


def _hold(deps: Deps, pod: PodInfo, name: str) -> PrestopResult:
    settings, clock = deps.settings, deps.clock
    started, now = clock.monotonic(), clock.now()
    deletion_deadline = _epoch(pod.deletion_timestamp or "")
    remaining = min(deletion_deadline - SIGTERM_RESERVE_S - now, settings.prestop_max_hold_s)
    if deletion_deadline - now < settings.prestop_drain_budget_s + SIGTERM_RESERVE_S:
        _warn(deps, pod, "GracePeriodTooShort", _short_grace_message(deletion_deadline - now, settings))
    while True:
        now = clock.now()
        verdict, why = drain_state(
            deps.store.list_bindings(pod_uid=pod.uid), now=now, linger_s=settings.prestop_linger_s
        )
        waited = clock.monotonic() - started
        if verdict != "waiting":
            log.info("prestop.answered", pod=name, status=verdict, waited_s=round(waited, 3))
            return PrestopResult(verdict, why, waited, name)
        if waited >= remaining:
            message = (
                f"the grace period ended before the drain did ({why}); set terminationGracePeriodSeconds to at "
                f"least {required_grace_s(settings.prestop_drain_budget_s)} or check the unbind step"
            )
            _warn(deps, pod, "DrainIncomplete", message)
            return PrestopResult("deadline", message, waited, name)
        clock.sleep(min(settings.prestop_poll_s, max(remaining - waited, 0.0)))


def _short_grace_message(left_s: float, settings: Settings) -> str:
    return (
        f"only {max(left_s, 0):.0f} s of grace period were left when the drain wait started; the drain needs about "
        f"{settings.prestop_drain_budget_s:g} s plus {SIGTERM_RESERVE_S:g} s for SIGTERM: set "
        f"terminationGracePeriodSeconds to at least {required_grace_s(settings.prestop_drain_budget_s)}"
    )


def _warn(deps: Deps, pod: PodInfo, reason: str, message: str) -> None:
    try:
        deps.require_cluster().emit_event(
            ObjectRef(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid),
            type="Warning",
            reason=reason,
            message=message,
        )
    except Exception as exc:  # an Event is a hint; the answer to the kubelet matters more
        log.warning("prestop.event_failed", reason=reason, error=str(exc))
