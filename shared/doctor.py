"""`clb-direct doctor`: checks a deployment's settings, secrets, RBAC, webhook registration and CLB access.

Called by `cli/cmd_doctor.py` with the environment of a function (the same CLB_DIRECT_* variables
serverless.yml sets). Every check returns `Finding`s that say what is wrong and what to do; nothing is
changed anywhere. RBAC is checked with SelfSubjectAccessReview as the identity the functions use (their
token), one review per row of `shared.permissions.function_permissions`; the webhook against what the
guardian would write; CLB credentials with one read (DescribeLoadBalancers by the cluster's tag).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.config import Settings
from shared.domain.errors import ClbDirectError, ConfigError
from shared.domain.models import OWNER_TAG_CLUSTER
from shared.permissions import function_permissions

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    status: Status
    check: str
    message: str

    def line(self) -> str:
        return f"[{self.status}] {self.check}: {self.message}"


def check_settings(settings: Settings) -> list[Finding]:
    """What a production deployment must have set (a local runtime may differ; say so, don't guess)."""
    found: list[Finding] = []

    def add(status: Status, message: str) -> None:
        found.append(Finding(status, "settings", message))

    if settings.invoker != "scf":
        add("fail", f"CLB_DIRECT_INVOKER={settings.invoker}: on SCF it must be `scf` (async Invoke)")
    if not settings.store_url.startswith(("redis://", "rediss://")):
        add(
            "fail", f"CLB_DIRECT_STORE_URL={settings.store_url.split('://')[0]}://...: functions need a shared redis://"
        )
    if settings.invoker == "scf" and settings.function_name_template == "{function}":
        add("fail", "CLB_DIRECT_FUNCTION_NAME_TEMPLATE is `{function}`: multi-scf deploys <name>-<stage>-<app>-<key>")
    host = urlsplit(settings.webhook_url).hostname if settings.webhook_url else None
    if not host or not (settings.webhook_url or "").startswith("https://"):
        add("fail", "CLB_DIRECT_WEBHOOK_URL is not an https:// URL of the admission API")
    else:
        from shared.domain.guardian_plan import ca_mode

        mode = ca_mode(settings.webhook_ca_mode, host)
        if mode == "own" and host.endswith((".tencentcs.com", ".myqcloud.com")):
            add(
                "fail",
                f"CLB_DIRECT_WEBHOOK_CA_MODE gives `own` for {host}: the API gateway serves a public "
                "certificate, set it to `public`",
            )
    if not settings.secret_id:
        add("fail", "no Tencent credentials: bind the execution role (TENCENTCLOUD_SECRETID/...) to the function")
    if not found:
        add(
            "ok",
            f"region {settings.region}, cluster {settings.cluster_id}, store redis, invoker scf, "
            f"names {settings.function_name_template}, ownership {settings.service_ownership}",
        )
    return found


def check_secrets(settings: Settings, resolve: Callable[[Settings], Settings]) -> tuple[Settings, list[Finding]]:
    from shared.secrets import secret_references

    references = secret_references(settings)
    try:
        resolved = resolve(settings)
    except ConfigError as exc:
        return settings, [Finding("fail", "secrets", str(exc))]
    names = ", ".join(f"{k} ({v[0]})" for k, v in sorted(references.items())) or "none by reference"
    return resolved, [Finding("ok", "secrets", f"resolved {names}")]


def check_rbac(review: Callable[[Mapping[str, Any]], bool], settings: Settings) -> list[Finding]:
    """`review(resourceAttributes) -> allowed` is a SelfSubjectAccessReview as the functions' identity."""
    denied = []
    for permission in function_permissions(settings):
        attrs: dict[str, Any] = {"group": permission.group, "verb": permission.verb}
        resource, _, sub = permission.resource.partition("/")
        attrs["resource"] = resource
        if sub:
            attrs["subresource"] = sub
        if permission.namespace:
            attrs["namespace"] = permission.namespace
        if permission.name:
            attrs["name"] = permission.name
        if not review(attrs):
            denied.append(f"{permission.label} ({permission.why})")
    if denied:
        return [
            Finding(
                "fail",
                "rbac",
                f"denied: {'; '.join(denied)}; apply infra/k8s (rbac-functions.yaml) "
                "and check that the token belongs to ServiceAccount clb-direct/clb-direct-functions",
            )
        ]
    return [Finding("ok", "rbac", f"all {len(function_permissions(settings))} permissions the functions use")]


def check_webhook(live: Mapping[str, Any] | None, settings: Settings) -> list[Finding]:
    from shared.domain.guardian_plan import ca_mode
    from shared.domain.webhook_config import WEBHOOK_NAME

    name = settings.webhook_configuration_name
    if live is None:
        return [
            Finding(
                "fail",
                "webhook",
                f"MutatingWebhookConfiguration {name} is missing: no Pod gets the "
                "readiness gate; invoke the guardian function (or wait for its 5-minute timer)",
            )
        ]
    hooks = {w.get("name"): w for w in live.get("webhooks") or []}
    hook = hooks.get(WEBHOOK_NAME)
    if hook is None:
        return [Finding("fail", "webhook", f"{name} has no webhook {WEBHOOK_NAME}; invoke the guardian")]
    problems = []
    client_config = hook.get("clientConfig") or {}
    if client_config.get("url") != settings.webhook_url:
        problems.append(f"url is {client_config.get('url')!r}, not CLB_DIRECT_WEBHOOK_URL")
    host = urlsplit(settings.webhook_url or "").hostname or ""
    public = bool(host) and ca_mode(settings.webhook_ca_mode, host) == "public"
    if public and client_config.get("caBundle"):
        problems.append("caBundle is set although the endpoint serves a public certificate (TLS would fail)")
    if not public and not client_config.get("caBundle"):
        problems.append("caBundle is empty although the guardian's own CA serves the endpoint")
    if hook.get("failurePolicy") != settings.webhook_failure_policy:
        problems.append(f"failurePolicy {hook.get('failurePolicy')} != {settings.webhook_failure_policy}")
    if problems:
        return [Finding("fail", "webhook", "; ".join(problems) + "; the guardian repairs it on its next run")]
    return [
        Finding(
            "ok",
            "webhook",
            f"{name} -> {settings.webhook_url} ({'public CA' if public else 'own CA'}, "
            f"failurePolicy {settings.webhook_failure_policy})",
        )
    ]


def check_clb(find: Callable[[Mapping[str, str]], list[Any]], settings: Settings) -> list[Finding]:
    try:
        found = find({OWNER_TAG_CLUSTER: settings.cluster_id})
    except ClbDirectError as exc:
        code = getattr(exc, "code", None) or type(exc).__name__
        hint = (
            "check the execution role and its policy ClbDirectFunctions"
            if "Auth" in str(code) or "Unauthorized" in str(code)
            else "check CLB_DIRECT_REGION / CLB_DIRECT_CLB_ENDPOINT"
        )
        return [Finding("fail", "clb", f"DescribeLoadBalancers failed ({code}): {exc}; {hint}")]
    return [
        Finding(
            "ok",
            "clb",
            f"credentials work in {settings.region}; {len(found)} CLB(s) tagged "
            f"{OWNER_TAG_CLUSTER}={settings.cluster_id}",
        )
    ]
