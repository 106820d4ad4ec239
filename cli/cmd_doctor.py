"""`clb-direct doctor`: check a deployment (settings, secrets, RBAC, webhook, CLB credentials) and say what is wrong.

Run it with the environment of a deployed function (the CLB_DIRECT_* values of serverless.yml, plus
credentials). Changes nothing. Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

DESCRIPTION = (
    "Check a clb-direct deployment with the settings its functions use: required settings, secret "
    "references, the functions' Kubernetes permissions (SelfSubjectAccessReview as their identity), the "
    "admission webhook registration and the CLB credentials. Changes nothing; exits 1 if a check fails."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("doctor", help="check a deployment and say what is wrong", description=DESCRIPTION)
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["settings", "secrets", "rbac", "webhook", "clb"],
        help="leave one check out (repeatable), e.g. --skip clb where the CLB API is unreachable from here",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli._stack import StderrAtWriteTime
    from shared.config import Settings
    from shared.doctor import Finding, check_clb, check_secrets, check_settings
    from shared.domain.errors import ClbDirectError
    from shared.logging import configure_logging
    from shared.secrets import resolve_secrets

    settings = Settings.load()
    # Logs (and metric records) go to stderr: stdout carries only the findings.
    configure_logging("warning", stream=StderrAtWriteTime(), force=True)  # type: ignore[arg-type]
    findings: list[Finding] = []
    if "settings" not in args.skip:
        findings += check_settings(settings)
    if "secrets" not in args.skip:
        settings, found = check_secrets(settings, resolve_secrets)
        findings += found
    if {"rbac", "webhook"} - set(args.skip):
        findings += _cluster_checks(settings, args.skip)
    if "clb" not in args.skip:
        try:
            from shared.adapters.tencent_clb import TencentClbGateway

            gateway = TencentClbGateway.from_settings(settings)
            findings += check_clb(gateway.find_load_balancers, settings)
        except ClbDirectError as exc:
            findings.append(Finding("fail", "clb", str(exc)))
    if args.json:
        print(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for finding in findings:
            print(finding.line())
    return 1 if any(f.status == "fail" for f in findings) else 0


def _cluster_checks(settings: Any, skip: list[str]) -> list[Any]:
    from kubernetes import client

    from shared.adapters.kubernetes_api import KubernetesCluster
    from shared.doctor import Finding, check_rbac, check_webhook
    from shared.domain.errors import ClbDirectError

    try:
        cluster = KubernetesCluster.from_settings(settings)
    except ClbDirectError as exc:
        return [Finding("fail", "rbac", str(exc))]
    findings: list[Finding] = []
    try:
        authz = client.AuthorizationV1Api(cluster.api_client)

        def review(attrs: Mapping[str, Any]) -> bool:
            body = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(**attrs))
            )
            status = authz.create_self_subject_access_review(body).status
            return bool(status and status.allowed)

        if "rbac" not in skip:
            findings += check_rbac(review, settings)
        if "webhook" not in skip:
            findings += check_webhook(
                cluster.get_mutating_webhook_configuration(settings.webhook_configuration_name), settings
            )
    except ClbDirectError as exc:
        findings.append(Finding("fail", "cluster", str(exc)))
    except client.ApiException as exc:
        findings.append(Finding("fail", "cluster", f"the API server answered {exc.status} {exc.reason}"))
    except OSError as exc:
        findings.append(Finding("fail", "cluster", f"cannot reach the API server: {exc}"))
    finally:
        cluster.close()
    return findings
