"""SCF function `admission`: the mutating webhook behind the API gateway (`clientConfig.url`).

An API-gateway event carries the AdmissionReview as its body (maybe base64); the answer is the
integrated response with the review's response. Malformed reviews get HTTP 400 with a clear message.
Cold-start budget matters (the API server waits at most timeoutSeconds): only the store is built up
front; the Kubernetes client is imported only if the selector index is cold, and the first invocation
of a container asks the guardian (asynchronously) to check the webhook's certificates and configuration.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.deps import Deps
from shared.domain.errors import ClbDirectError, InvalidInput
from shared.events.apigw import ApiGatewayEvent, ApiGatewayResponse
from shared.ports import Cluster
from shared.shell import FunctionShell, http_error, log
from shared.steps.admission import review_admission

shell = FunctionShell("admission", with_clb=False, with_cluster=False, with_invoker=False)


def _cluster(deps: Deps) -> Cluster:
    if deps.cluster is None:
        from shared.adapters.kubernetes_api import KubernetesCluster

        deps.cluster = KubernetesCluster.from_settings(deps.settings)
    return deps.cluster


def _kick_guardian(deps: Deps) -> None:
    # An inline invoker would run the guardian inside this admission call and blow its time budget.
    if deps.settings.invoker == "inline" and deps.invoker is None:
        return
    try:
        if deps.invoker is None:
            from shared.adapters.invokers import build_invoker

            deps.invoker = build_invoker(deps.settings)
        deps.invoker.invoke_async("guardian", {"step": "guardian", "reason": "admission cold start"})
    except Exception as exc:  # best effort: the guardian's timer repairs the webhook anyway
        log.warning("admission.guardian_kick_failed", error=str(exc))


def main_handler(event: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    cold = shell.begin(context)
    try:
        if not ApiGatewayEvent.looks_like(event):
            raise InvalidInput("admission expects an API gateway event with the AdmissionReview as its body")
        request = ApiGatewayEvent.model_validate(event)
        deps = shell.deps()
        if cold:
            _kick_guardian(deps)
        decision = review_admission(
            deps.store,
            deps.clock,
            request.raw_body(),
            cluster_factory=lambda: _cluster(deps),
            settings=deps.settings,
        )
    except (ClbDirectError, ValidationError) as exc:
        return http_error(shell.name, exc)
    log.info(
        "admission.reviewed",
        uid=decision.uid,
        patched=bool(decision.patch),
        services=decision.services,
        prestop_protected=decision.protected,
    )
    return ApiGatewayResponse.of(200, decision.response()).to_wire()
