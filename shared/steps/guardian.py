"""The guardian step: keep the admission webhook alive (certificates, Secret, webhook configuration).

Called through `run_step` for StepRequest(step="guardian") by the guardian function (timer, admission
cold start) and by reconcile. It plans the CA/serving certificate (`shared.certs.plan_certificates`),
builds the desired MutatingWebhookConfiguration (`domain.webhook_config`), and repairs whatever was
deleted or altered. The webhook's caBundle is written before a rotated Secret, so during the overlap the
API server already trusts both the old and the new CA whichever certificate the endpoint serves.

Two trust modes (`Settings.webhook_ca_mode`): where the guardian's certificate also serves the endpoint
(the local runtime, an in-cluster endpoint mounting the Secret) the caBundle carries the guardian's CA;
behind the API gateway, which serves a publicly trusted certificate, the caBundle stays empty (the API
server's system roots) and the guardian touches no Secret at all.

Runs are serialised by a store lease (`guardian:<webhook configuration name>`) whose token fences every
write, so two overlapping runs never both mint a CA.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.certs import plan_certificates
from shared.config import Settings
from shared.deps import Deps
from shared.domain.errors import ConfigError
from shared.domain.models import StepRequest
from shared.domain.webhook_config import desired_webhook_configuration, webhook_drift
from shared.keys import guardian_lease_name
from shared.logging import get_logger
from shared.steps.common import Recorder

log = get_logger("clb_direct.guardian")


WriteGuard = Callable[[str], None]


class _LeaseLost(Exception):
    """Another guardian run holds the lease now: this one makes no further write."""


def guardian_lease(settings: Settings) -> str:
    return guardian_lease_name(settings.webhook_configuration_name)


def run_guardian(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    """One guardian run at a time, under a lease: two overlapping runs (timer, admission cold start) would
    each mint a CA, and the caBundle and the served certificate would then disagree. A run that finds the
    lease held leaves the work to its holder; every write is fenced by the lease token, so a run that
    stalled past its lease stops before writing anything more."""
    if rec.dry_run:
        return _run_guardian(deps, rec, guard=lambda action: None)
    store, clock, name = deps.store, deps.clock, guardian_lease(deps.settings)
    holder, ttl_s = uuid.uuid4().hex, deps.settings.function_timeout_s
    lease = store.acquire_lease(name, holder, ttl_s=ttl_s, now=clock.now())
    if lease is None:
        current = store.current_lease(name, now=clock.now())
        return {"skipped": f"another guardian run holds the lease {name} (token {current.token if current else '?'})"}

    def guard(action: str) -> None:
        if not store.renew_lease(name, holder, lease.token, ttl_s=ttl_s, now=clock.now()):
            raise _LeaseLost(f"{action} not made: the guardian lease {name} was taken over by another run")

    try:
        return _run_guardian(deps, rec, guard=guard)
    except _LeaseLost as lost:
        log.warning("guardian.lease_lost", lease=name, message=str(lost))
        return {"skipped": str(lost)}
    finally:
        store.release_lease(name, holder, lease.token)


def _run_guardian(deps: Deps, rec: Recorder, *, guard: WriteGuard) -> dict[str, Any]:
    settings, cluster, now = deps.settings, deps.require_cluster(), deps.clock.now()
    url = settings.webhook_url
    host = urlsplit(url).hostname if url else None
    if not url or not host:
        raise ConfigError("the guardian needs the admission endpoint: set CLB_DIRECT_WEBHOOK_URL to its https:// URL")
    if ca_mode(settings.webhook_ca_mode, host) == "public":
        return _ensure_configuration(deps, rec, ca_bundle_pem="", guard=guard) | {
            "certificates": "public",
            "reason": (f"{host} serves a publicly trusted certificate: caBundle left empty (system roots)"),
        }
    namespace, name = settings.webhook_secret_namespace, settings.webhook_secret_name
    secret = cluster.get_secret(namespace, name)
    plan = plan_certificates(
        secret,
        host=host,
        now=now,
        validity_days=settings.cert_validity_days,
        rotate_before_days=settings.cert_rotate_before_days,
    )
    drift = _ensure_configuration(deps, rec, ca_bundle_pem=plan.ca_bundle, guard=guard)["webhook_drift"]
    if plan.action != "keep" or secret != plan.data:
        guard("apply_secret")
        rec.do(
            "apply_secret",
            lambda: cluster.apply_secret(namespace, name, plan.data),
            secret=f"{namespace}/{name}",
            certificates=plan.action,
            why=plan.reason,
        )
    return {"certificates": plan.action, "reason": plan.reason, "webhook_drift": drift}


def ca_mode(mode: Literal["auto", "own", "public"], host: str) -> Literal["own", "public"]:
    """`auto`: our CA for loopback / IP / in-cluster (.svc) hosts, which only we can serve; else public."""
    if mode != "auto":
        return mode
    try:
        ipaddress.ip_address(host)
        return "own"
    except ValueError:
        pass
    if host == "localhost" or host.endswith((".svc", ".svc.cluster.local", ".localhost")):
        return "own"
    return "public"


def _ensure_configuration(deps: Deps, rec: Recorder, *, ca_bundle_pem: str, guard: WriteGuard) -> dict[str, Any]:
    settings, cluster = deps.settings, deps.require_cluster()
    desired = desired_webhook_configuration(
        name=settings.webhook_configuration_name,
        url=settings.webhook_url,
        ca_bundle_pem=ca_bundle_pem,
        failure_policy=settings.webhook_failure_policy,
    )
    drift = webhook_drift(cluster.get_mutating_webhook_configuration(settings.webhook_configuration_name), desired)
    if drift:
        guard("apply_webhook_configuration")
        rec.do(
            "apply_webhook_configuration",
            lambda: cluster.apply_mutating_webhook_configuration(desired),
            name=settings.webhook_configuration_name,
            drift=drift,
        )
    return {"webhook_drift": drift}
