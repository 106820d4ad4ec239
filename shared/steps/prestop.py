"""The prestop step: hold a terminating Pod's preStop call until the CLB no longer sends it traffic.

Called by `functions/prestop/handler.py` (API gateway, `GET /prestop?namespace=..&id=..` with the
per-Pod token header), which the kubelet calls as the `httpGet` preStop hook admission added
(`shared.domain.termination`). The request is validated (400 naming the field), authenticated
(401: the token is an HMAC of namespace and id, compared in constant time), and the Pod is looked up
by its prestop id label. Then the call is held, re-reading the Pod's binding records (written by the
unbind step once the CLB accepted weight 0) every `prestop_poll_s`, until every binding is at weight 0
for `prestop_linger_s`, or until the hold deadline: the Pod's deletion deadline minus the 2 s the
kubelet keeps for SIGTERM, and never more than `prestop_max_hold_s`. A Pod that is not being deleted
(a container restart also runs preStop) or has no binding is answered at once. The decisions are pure
(`shared.domain.prestop_plan`): `observe_prestop` -> `plan_prestop` once per call, then per poll the
binding records -> `plan_drain_poll`; `_hold` carries out each plan: its Warning Events, then the answer
or the sleep until the next poll.

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
from shared.dispatch import dispatch
from shared.domain.errors import InvalidInput
from shared.domain.models import ObjectKey, ObjectRef, PodInfo, StepRequest
from shared.domain.prestop_plan import (
    DrainSnapshot,
    PrestopLimits,
    PrestopPlan,
    PrestopSnapshot,
    PrestopStatus,
    Release,
    StartDrain,
    WarnPod,
    plan_drain_poll,
    plan_prestop,
)
from shared.domain.termination import PRESTOP_ID_LABEL, PRESTOP_TOKEN_HEADER, token_matches
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
    status: PrestopStatus
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


def wait_for_drain(deps: Deps, call: PrestopCall, *, limiter: HoldLimiter = HOLDS) -> PrestopResult:
    """Authenticate, find the Pod, hold until drained or the deadline; raises `Unauthorized`/`TooManyHolds`."""
    settings = deps.settings
    if not token_matches(prestop_key(settings, deps.store, deps.clock), call.namespace, call.prestop_id, call.token):
        raise Unauthorized("the prestop token does not match this namespace and id")
    snap = observe_prestop(deps, call)
    plan = plan_prestop(snap)
    release = plan.release
    if release is not None or snap.pod is None:  # (a plan that found no Pod always releases)
        answer = release or Release(status="not-found", message="no Pod carries this prestop id")
        return PrestopResult(answer.status, answer.message, pod=plan.pod_name)
    if not limiter.acquire(settings.prestop_max_holds):
        raise TooManyHolds(f"{settings.prestop_max_holds} prestop requests are held already; retry later")
    try:
        _start_drain(deps, plan, snap.pod)
        return _hold(deps, plan, snap.pod)
    finally:
        limiter.release()


# ----------------------------------------------------------------------------------------------- observe
def observe_prestop(deps: Deps, call: PrestopCall) -> PrestopSnapshot:
    """The Pod carrying the call's prestop id (exactly one, else none) and its deletion deadline."""
    pods = deps.require_cluster().list_pods(call.namespace, {PRESTOP_ID_LABEL: call.prestop_id})
    pod = pods[0] if len(pods) == 1 else None
    deadline = parse_rfc3339(pod.deletion_timestamp).timestamp() if pod and pod.deletion_timestamp else None
    bindings = deps.store.list_bindings(pod_uid=pod.uid) if pod is not None and deadline is not None else []
    return PrestopSnapshot(
        pod=pod, deletion_deadline=deadline, now=deps.clock.now(), limits=_limits(deps.settings), bindings=bindings
    )


def _observe_poll(deps: Deps, pod: PodInfo, hold_s: float, waited_s: float) -> DrainSnapshot:
    """The Pod's binding records (the unbind step writes one as draining once the CLB accepted weight 0)."""
    bindings = deps.store.list_bindings(pod_uid=pod.uid)
    limits = _limits(deps.settings)
    return DrainSnapshot(pod=_ref(pod), bindings=bindings, now=deps.clock.now(), waited_s=waited_s,
                         hold_s=hold_s, limits=limits)  # fmt: skip


def _ref(pod: PodInfo) -> ObjectRef:
    return ObjectRef(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.uid)


def _limits(settings: Settings) -> PrestopLimits:
    return PrestopLimits(
        drain_budget_s=settings.prestop_drain_budget_s,
        linger_s=settings.prestop_linger_s,
        max_hold_s=settings.prestop_max_hold_s,
        poll_s=settings.prestop_poll_s,
    )


# ------------------------------------------------------------------------------------------------- apply
def _hold(deps: Deps, start: PrestopPlan, pod: PodInfo) -> PrestopResult:
    """Carry out `start` (its Warning), then poll until a poll's plan releases the call."""
    clock, ref = deps.clock, _ref(pod)
    started = clock.monotonic()
    plan = start
    while True:
        _warn(deps, ref, plan)
        release, hold = plan.release, plan.hold
        if release is not None:
            waited = clock.monotonic() - started
            log.info("prestop.answered", pod=start.pod_name, status=release.status, waited_s=round(waited, 3))
            return PrestopResult(release.status, release.message, waited, start.pod_name)
        if hold is not None and hold.sleep_s > 0:
            clock.sleep(hold.sleep_s)
        plan = plan_drain_poll(_observe_poll(deps, pod, start.hold_s, clock.monotonic() - started))


def _start_drain(deps: Deps, plan: PrestopPlan, pod: PodInfo) -> None:
    """Invoke the unbind step for the Pod (async); a failure only costs the head start (the Pod's deletion
    event still asks for the same drain), never the hold."""
    for action in plan.actions:
        if not isinstance(action, StartDrain):
            continue
        request = StepRequest(
            step="unbind",
            pods=[ObjectKey(namespace=pod.namespace, name=pod.name)],
            pod_uids=[action.pod_uid],
            reason="preStop: the Pod is terminating",
        )
        try:
            dispatch(deps, [request])
        except Exception as exc:  # the hold matters more than the head start
            log.warning("prestop.start_drain_failed", pod=plan.pod_name, error=str(exc))


def _warn(deps: Deps, pod: ObjectRef, plan: PrestopPlan) -> None:
    for action in plan.actions:
        if not isinstance(action, WarnPod):
            continue
        try:
            deps.require_cluster().emit_event(pod, type="Warning", reason=action.event, message=action.message)
        except Exception as exc:  # an Event is a hint; the answer to the kubelet matters more
            log.warning("prestop.event_failed", reason=action.event, error=str(exc))
