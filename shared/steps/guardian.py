"""The guardian step: keep the admission webhook alive (certificates, Secret, webhook configuration).

Called through `run_step` for StepRequest(step="guardian") by the guardian function (timer, admission
cold start) and by reconcile. Observe -> a typed `GuardianPlan` (pure, `shared.domain.guardian_plan`) ->
one applier: `observe_guardian` reads the live MutatingWebhookConfiguration and, in the own-CA mode, the
Secret's certificates as facts (`shared.certs.read_certificates`); `plan_guardian` decides whether to
mint (create, rotate, reissue), what caBundle the configuration must carry and whether the Secret must
be written; `apply_guardian_plan` mints and writes, the webhook's caBundle before a rotated Secret, so
during the overlap the API server already trusts both the old and the new CA whichever certificate the
endpoint serves. A dry run mints nothing, writes nothing and returns the plan.

Two trust modes (`Settings.webhook_ca_mode`): where the guardian's certificate also serves the endpoint
(the local runtime, an in-cluster endpoint mounting the Secret) the caBundle carries the guardian's CA;
behind the API gateway, which serves a publicly trusted certificate, the caBundle stays empty (the API
server's system roots) and the guardian touches no Secret at all.

Runs are serialised by a store lease (`guardian:<webhook configuration name>`) whose token fences every
write, so two overlapping runs never both mint a CA.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from shared.certs import CA_BUNDLE, issue_certificates, read_certificates
from shared.config import Settings
from shared.deps import Deps
from shared.domain.errors import ConfigError
from shared.domain.guardian_plan import (
    MINTED_CA_BUNDLE,
    ApplySecret,
    ApplyWebhookConfiguration,
    GuardianPlan,
    GuardianSnapshot,
    MintCertificates,
    WriteCaBundle,
    ca_mode,
    plan_guardian,
)
from shared.domain.models import StepRequest
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
    snap = observe_guardian(deps)
    plan = plan_guardian(snap)
    result = apply_guardian_plan(deps, snap, plan, rec, guard=guard)
    if rec.dry_run:
        result["plan"] = plan.model_dump(mode="json")
    return result


# ----------------------------------------------------------------------------------------------- observe
def observe_guardian(deps: Deps) -> GuardianSnapshot:
    """The live configuration and, in the own-CA mode, the Secret (its certificates also as facts)."""
    settings, cluster = deps.settings, deps.require_cluster()
    url = settings.webhook_url
    host = urlsplit(url).hostname if url else None
    if not url or not host:
        raise ConfigError("the guardian needs the admission endpoint: set CLB_DIRECT_WEBHOOK_URL to its https:// URL")
    trust = ca_mode(settings.webhook_ca_mode, host)
    now = deps.clock.now()
    namespace, name = settings.webhook_secret_namespace, settings.webhook_secret_name
    secret = cluster.get_secret(namespace, name) if trust == "own" else None
    return GuardianSnapshot(
        configuration_name=settings.webhook_configuration_name,
        url=url,
        host=host,
        trust=trust,
        failure_policy=settings.webhook_failure_policy,
        live=cluster.get_mutating_webhook_configuration(settings.webhook_configuration_name),
        secret=f"{namespace}/{name}",
        secret_data=dict(secret) if secret is not None else None,
        certificates=read_certificates(secret, host=host, now=now) if trust == "own" else None,
        now=now,
        rotate_before_days=settings.cert_rotate_before_days,
    )


# ------------------------------------------------------------------------------------------------- apply
def apply_guardian_plan(
    deps: Deps, snap: GuardianSnapshot, plan: GuardianPlan, rec: Recorder, *, guard: WriteGuard
) -> dict[str, Any]:
    """Carry out `plan` in order through `rec` (which only records in a dry run), each write fenced by
    `guard`; certificates are minted from the observed Secret (never in a dry run). Returns the summary."""
    settings, cluster = deps.settings, deps.require_cluster()
    data = dict(snap.secret_data or {})  # what the Secret becomes
    for action in plan.actions:
        if isinstance(action, MintCertificates):
            if not rec.dry_run:  # a dry run mints nothing: its plan names the minted bundle MINTED_CA_BUNDLE
                data = issue_certificates(action.certificates, snap.secret_data, host=snap.host, now=snap.now,
                                          validity_days=settings.cert_validity_days)  # fmt: skip
        elif isinstance(action, ApplyWebhookConfiguration):
            minted = action.ca_bundle == MINTED_CA_BUNDLE and not rec.dry_run
            desired = action.configuration(data[CA_BUNDLE] if minted else action.ca_bundle)
            guard("apply_webhook_configuration")
            rec.do("apply_webhook_configuration", partial(cluster.apply_mutating_webhook_configuration, desired),
                   name=action.name, drift=action.drift, reason=action.reason)  # fmt: skip
        elif isinstance(action, (ApplySecret, WriteCaBundle)):
            if isinstance(action, WriteCaBundle):
                data = {**data, CA_BUNDLE: action.bundle}
            certificates = action.certificates if isinstance(action, ApplySecret) else "update-bundle"
            namespace, name = action.secret.split("/", 1)
            guard("apply_secret")
            rec.do("apply_secret", partial(cluster.apply_secret, namespace, name, data), secret=action.secret,
                   certificates=certificates, reason=action.reason)  # fmt: skip
    return dict(plan.outcome)
