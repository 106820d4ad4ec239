"""Termination protection, the pure part: the preStop hook admission adds, its token, and "drained".

Most apps stop accepting connections on SIGTERM, so a Pod's CLB weight must be 0 on every listener
before its containers hear SIGTERM. Kubernetes runs a container's preStop hook first and starts the
grace period's clock with it, so the admission step gives every container of a gated Pod that has no
preStop of its own one of these hooks (`plan_protection`):

- `http` (the default where the prestop endpoint is known): an `httpGet` hook whose `host` is our
  HTTPS endpoint. The kubelet makes the call and waits for the answer; the endpoint answers once the
  Pod is drained (`drain_state`) or its deletion deadline is near, whichever comes first. The Pod
  carries a random id label (`PRESTOP_ID_LABEL`) so the endpoint can find it (at admission a Pod has
  neither name nor UID yet), and the hook carries a per-Pod token, an HMAC of namespace and id
  (`prestop_token`), so a caller learns about, and holds a request for, at most the one Pod whose
  spec it could read.
- `sleep`: a native `lifecycle.preStop.sleep` sized to the expected drain time, where the endpoint
  cannot be reached from the nodes (Kubernetes >= 1.30 for the sleep action).

A container whose preStop the user wrote keeps it: it is never replaced, and the admission step says
so with a Warning Event (the hook must outlast the drain). A Pod whose grace period cannot hold the
drain plus the 2 s the kubelet leaves for SIGTERM gets a Warning naming the value to set. The Service
annotation `PROTECTION_ANNOTATION` ("false" / "sleep" / "true") turns the protection off or picks the
sleep hook; the settings pick the default.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from shared.domain.models import BindingRecord

PRESTOP_ID_LABEL = "clb-direct.cloud.tencent.com/prestop-id"
PRESTOP_TOKEN_HEADER = "X-Clb-Direct-Prestop-Token"
PROTECTION_ANNOTATION = "service.cloud.tencent.com/termination-protection"
DEFAULT_GRACE_S = 30  # Kubernetes' default terminationGracePeriodSeconds
SIGTERM_RESERVE_S = 2.0  # what the kubelet leaves for SIGTERM at least; the endpoint answers this early

ProtectionMode = Literal["http", "sleep", "off"]


def service_protection(annotations: Mapping[str, str]) -> ProtectionMode | None:
    """The mode a Service asks for: "off", "sleep", or None (the default). Raises ValueError on a bad value."""
    value = annotations.get(PROTECTION_ANNOTATION)
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("false", "off", "disabled"):
        return "off"
    if text == "sleep":
        return "sleep"
    if text in ("true", "on", "http", ""):
        return None
    raise ValueError(f"Service annotation {PROTECTION_ANNOTATION}={value!r}: expected true, false or sleep")


def admission_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """The Service annotations the admission step reads from the selector index."""
    return {key: annotations[key] for key in (PROTECTION_ANNOTATION,) if key in annotations}


def combine_modes(default: ProtectionMode, requested: Iterable[ProtectionMode | None]) -> ProtectionMode:
    """One mode for a Pod selected by several Services: any "off" wins, then "sleep", then the default."""
    wanted = set(requested)
    if "off" in wanted:
        return "off"
    if "sleep" in wanted:
        return "sleep"
    return default


def prestop_token(key: bytes, namespace: str, prestop_id: str) -> str:
    """The per-Pod token the hook sends: HMAC-SHA256 over the namespace and the Pod's prestop id."""
    return hmac.new(key, f"prestop:v1:{namespace}:{prestop_id}".encode(), hashlib.sha256).hexdigest()


def token_matches(key: bytes, namespace: str, prestop_id: str, token: str) -> bool:
    return hmac.compare_digest(prestop_token(key, namespace, prestop_id), token)


@dataclass(frozen=True)
class Endpoint:
    """Where the kubelet sends the hook: the parts of an https URL an `httpGet` action takes."""

    scheme: Literal["HTTP", "HTTPS"]
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"prestop URL {url!r} must be http(s)://host[:port]/path")
        default_port = 443 if parts.scheme == "https" else 80
        return cls(
            scheme="HTTPS" if parts.scheme == "https" else "HTTP",
            host=parts.hostname,
            port=parts.port or default_port,
            path=parts.path or "/",
        )


@dataclass(frozen=True)
class ProtectionOptions:
    mode: ProtectionMode
    endpoint: Endpoint | None
    drain_budget_s: float  # deletion -> weight 0 on every listener -> connections drained, expected
    sleep_s: float  # the sleep hook's length (capped by the grace period)


class PatchPod(BaseModel):
    """One JSONPatch `add` admission answers with (the readiness gate, a preStop hook, the prestop id
    label), and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["patch_pod"] = "patch_pod"
    adds: Literal["readiness_gate", "prestop_hook", "prestop_id_label"]
    path: str
    value: Any
    reason: str

    def json_op(self) -> dict[str, Any]:
        return {"op": "add", "path": self.path, "value": self.value}


@dataclass
class ProtectionPlan:
    ops: list[PatchPod] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)  # containers that got our hook
    kept: list[str] = field(default_factory=list)  # containers with the user's own preStop
    notices: list[tuple[str, str]] = field(default_factory=list)  # (reason, message) for Warning Events

    @property
    def patch(self) -> list[dict[str, Any]]:
        return [op.json_op() for op in self.ops]


def _pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def is_our_hook(handler: Mapping[str, Any]) -> bool:
    headers = (handler.get("httpGet") or {}).get("httpHeaders") or []
    return any(isinstance(h, Mapping) and h.get("name") == PRESTOP_TOKEN_HEADER for h in headers)


def grace_seconds(pod: Mapping[str, Any]) -> int:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return int(value) if isinstance(value, int) else DEFAULT_GRACE_S


def required_grace_s(drain_budget_s: float) -> int:
    """The grace period that holds the drain plus the kubelet's SIGTERM window."""
    return math.ceil(drain_budget_s + SIGTERM_RESERVE_S)


def _hook(options: ProtectionOptions, namespace: str, prestop_id: str, key: bytes, grace: int) -> dict[str, Any]:
    if options.mode == "http" and options.endpoint is not None:
        ep = options.endpoint
        return {
            "httpGet": {
                "scheme": ep.scheme,
                "host": ep.host,
                "port": ep.port,
                "path": f"{ep.path}?namespace={namespace}&id={prestop_id}",
                "httpHeaders": [{"name": PRESTOP_TOKEN_HEADER, "value": prestop_token(key, namespace, prestop_id)}],
            }
        }
    seconds = max(1, min(math.ceil(options.sleep_s), grace - int(SIGTERM_RESERVE_S)))
    return {"sleep": {"seconds": seconds}}


def plan_protection(
    pod: Mapping[str, Any], namespace: str, options: ProtectionOptions, *, prestop_id: str, key: bytes
) -> ProtectionPlan:
    """JSONPatch ops giving each container without a preStop our hook, plus the notices to emit."""
    plan = ProtectionPlan()
    if options.mode == "off":
        return plan
    spec = pod.get("spec") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    prestop_id = str(labels.get(PRESTOP_ID_LABEL) or prestop_id)  # a reinvoked webhook keeps the first id
    grace = grace_seconds(pod)
    containers: Sequence[Mapping[str, Any]] = spec.get("containers") or []
    for index, container in enumerate(containers):
        name = str(container.get("name") or index)
        lifecycle = container.get("lifecycle") or {}
        handler = lifecycle.get("preStop")
        if handler:
            (plan.protected if is_our_hook(handler) else plan.kept).append(name)
            continue
        if grace <= int(SIGTERM_RESERVE_S) and options.mode == "sleep":
            continue  # no room for a sleep: the short-grace notice below says what to set
        hook = _hook(options, namespace, prestop_id, key, grace)
        path, value = f"/spec/containers/{index}/lifecycle", {"preStop": hook}
        if lifecycle:
            path, value = f"{path}/preStop", hook
        plan.ops.append(PatchPod(adds="prestop_hook", path=path, value=value, reason=_hook_reason(name, hook)))
        plan.protected.append(name)
    if plan.ops and options.mode == "http" and options.endpoint is not None:
        why = "the prestop endpoint finds the terminating Pod by this id (at admission it has no name or UID)"
        if not labels:
            label = PatchPod(adds="prestop_id_label", path="/metadata/labels", value={PRESTOP_ID_LABEL: prestop_id},
                             reason=why)  # fmt: skip
            plan.ops.append(label)
        elif PRESTOP_ID_LABEL not in labels:
            path = f"/metadata/labels/{_pointer(PRESTOP_ID_LABEL)}"
            plan.ops.append(PatchPod(adds="prestop_id_label", path=path, value=prestop_id, reason=why))
    _add_notices(plan, grace, options)
    return plan


def _hook_reason(container: str, hook: Mapping[str, Any]) -> str:
    if "httpGet" in hook:
        return (
            f"container {container} has no preStop: the kubelet's call is held until the Pod's CLB weight is 0 "
            "and its connections drained, then SIGTERM"
        )
    return f"container {container} has no preStop: it sleeps {hook['sleep']['seconds']} s (the drain) before SIGTERM"


def _add_notices(plan: ProtectionPlan, grace: int, options: ProtectionOptions) -> None:
    needed = required_grace_s(options.drain_budget_s)
    if plan.kept:
        plan.notices.append(
            (
                "PreStopHookKept",
                f"container(s) {', '.join(plan.kept)} have their own preStop hook: clb-direct kept it and added no "
                f"drain wait there, so it must last until the CLB weight is 0 and connections drained (about "
                f"{options.drain_budget_s:g} s after deletion) or requests may reach a stopped container",
            )
        )
    if plan.protected and grace < needed:
        plan.notices.append(
            (
                "GracePeriodTooShort",
                f"terminationGracePeriodSeconds {grace} is shorter than the drain needs (about "
                f"{options.drain_budget_s:g} s to weight 0 and drained connections, plus {SIGTERM_RESERVE_S:g} s for "
                f"SIGTERM): requests may fail during rollouts; set terminationGracePeriodSeconds to at least {needed}",
            )
        )


DrainVerdict = Literal["drained", "waiting", "not-bound"]


def drain_state(bindings: Sequence[BindingRecord], *, now: float, linger_s: float) -> tuple[DrainVerdict, str]:
    """Is a terminating Pod drained? Every binding at weight 0 (draining or gone) for `linger_s` seconds.

    The unbind step writes a binding as draining only after the CLB accepted weight 0; `linger_s` lets
    the requests the CLB sent just before finish on connections still open.
    """
    if not bindings:
        return "not-bound", "no CLB binding: nothing to drain"
    live = [b for b in bindings if b.state != "deregistered"]
    pending = [b for b in live if b.state != "draining" or b.weight != 0]
    if pending:
        where = ", ".join(sorted(f"{b.lb_id}/{b.listener_id} ({b.state}, weight {b.weight})" for b in pending))
        return "waiting", f"weight not 0 yet on {where}"
    started = [b.drain_started_at for b in live if b.drain_started_at is not None]
    if started and now < max(started) + linger_s:
        return "waiting", f"weight 0 on every listener; connections draining for {linger_s:g} s"
    return "drained", f"weight 0 on {len(live)} listener(s), connections drained"
