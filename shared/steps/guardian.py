"""The guardian step: keep the admission webhook alive (certificates, Secret, webhook configuration).

Called through `run_step` for StepRequest(step="guardian") by the guardian function (timer, admission
cold start) and by reconcile. It plans the CA/serving certificate (`shared.certs.plan_certificates`),
builds the desired MutatingWebhookConfiguration (`domain.webhook_config`), and repairs whatever was
deleted or altered. The webhook's caBundle is written before a rotated Secret, so during the overlap the
API server already trusts both the old and the new CA whichever certificate the endpoint serves.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from shared.certs import plan_certificates
from shared.deps import Deps
from shared.domain.errors import ConfigError
from shared.domain.models import StepRequest
from shared.domain.webhook_config import desired_webhook_configuration, webhook_drift
from shared.steps.common import Recorder


def run_guardian(deps: Deps, request: StepRequest, rec: Recorder) -> dict[str, Any]:
    settings, cluster, now = deps.settings, deps.require_cluster(), deps.clock.now()
    url = settings.webhook_url
    host = urlsplit(url).hostname if url else None
    if not url or not host:
        raise ConfigError("the guardian needs the admission endpoint: set CLB_DIRECT_WEBHOOK_URL to its https:// URL")
    namespace, name = settings.webhook_secret_namespace, settings.webhook_secret_name
    secret = cluster.get_secret(namespace, name)
    plan = plan_certificates(
        secret,
        host=host,
        now=now,
        validity_days=settings.cert_validity_days,
        rotate_before_days=settings.cert_rotate_before_days,
    )
    desired = desired_webhook_configuration(
        name=settings.webhook_configuration_name,
        url=url,
        ca_bundle_pem=plan.ca_bundle,
        failure_policy=settings.webhook_failure_policy,
    )
    drift = webhook_drift(cluster.get_mutating_webhook_configuration(settings.webhook_configuration_name), desired)
    if drift:
        rec.do(
            "apply_webhook_configuration",
            lambda: cluster.apply_mutating_webhook_configuration(desired),
            name=settings.webhook_configuration_name,
            drift=drift,
        )
    if plan.action != "keep" or secret != plan.data:
        rec.do(
            "apply_secret",
            lambda: cluster.apply_secret(namespace, name, plan.data),
            secret=f"{namespace}/{name}",
            certificates=plan.action,
            why=plan.reason,
        )
    return {"certificates": plan.action, "reason": plan.reason, "webhook_drift": drift}
