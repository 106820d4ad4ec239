"""Fail-safe termination protection: with our prestop endpoint down or hanging, a Pod still terminates.

The admission webhook gives a gated Pod the drain-wait `httpGet` preStop; the simulated kubelet calls it
as a real one does. When nothing listens there the hook fails at once (a FailedPreStopHook Warning) and
SIGTERM follows; when the endpoint accepts and never answers, the kubelet abandons the hook at the end
of the grace period. Either way the Pod is gone within its grace period (+ the kubelet's 2 s minimum).
"""

from __future__ import annotations

import socket
from typing import Any

from functions.admission import handler as admission_handler
from shared.adapters.store_factory import open_store
from shared.clock import SystemClock
from shared.deps import Deps
from shared.domain.termination import PRESTOP_ID_LABEL, PRESTOP_TOKEN_HEADER
from tests.integration.webhook.conftest import NS, WebhookStack, has_gate
from tests.support.polling import eventually


def _started(stack: WebhookStack, name: str) -> Any:
    def probe() -> Any:
        pod = stack.core.read_namespaced_pod(name, NS)
        statuses = pod.status.container_statuses or []
        return pod if statuses and statuses[0].state.running else None

    return eventually(probe, f"{name}'s container running")


def _failed_hook_events(stack: WebhookStack, name: str) -> list[Any]:
    events = stack.core.list_namespaced_event(NS).items
    return [e for e in events if e.involved_object.name == name and e.reason == "FailedPreStopHook"]


def _gone(stack: WebhookStack, name: str) -> bool:
    return name not in {p.metadata.name for p in stack.core.list_namespaced_pod(NS).items}


def test_with_the_prestop_endpoint_down_the_pod_still_terminates(stack: WebhookStack) -> None:
    stack.bring_up()
    stack.direct_access_service()
    pod = stack.create_pod("leaving")
    assert has_gate(pod)
    hook = pod.spec.containers[0].lifecycle.pre_stop.http_get
    assert (hook.scheme, hook.host, hook.port) == ("HTTPS", "127.0.0.1", stack.port)
    assert hook.path.startswith("/prestop?namespace=default&id=") and pod.metadata.labels[PRESTOP_ID_LABEL]
    assert [h.name for h in hook.http_headers] == [PRESTOP_TOKEN_HEADER]
    _started(stack, "leaving")
    stack.stop_endpoint()  # the runtime serving /admission and /prestop is down
    stack.core.delete_namespaced_pod("leaving", NS)
    eventually(lambda: _gone(stack, "leaving"), "the Pod removed although its preStop endpoint is down")
    (event,) = eventually(lambda: _failed_hook_events(stack, "leaving"), "FailedPreStopHook Warning")
    assert event.type == "Warning" and "/prestop" in event.message


def test_with_the_prestop_endpoint_hanging_the_kubelet_gives_up_at_the_grace_period(stack: WebhookStack) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"https://127.0.0.1:{silent.getsockname()[1]}/prestop"
        admission_handler.shell.use(
            Deps(settings=stack.settings(prestop_url=url), store=open_store(stack.store_url), clock=SystemClock())
        )
        stack.bring_up()
        stack.direct_access_service()
        pod = stack.create_pod("stuck", terminationGracePeriodSeconds=1)
        assert pod.spec.containers[0].lifecycle.pre_stop.http_get.port == silent.getsockname()[1]
        _started(stack, "stuck")
        stack.core.delete_namespaced_pod("stuck", NS)
        eventually(lambda: _gone(stack, "stuck"), "the Pod removed after its hook was abandoned")
