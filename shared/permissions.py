"""The Kubernetes permissions the functions need, as `clb-direct doctor` checks them.

One row per (API group, resource, verb) the functions' adapter calls (`shared/adapters/kubernetes_api.py`
and `k8s_events.py`), with the namespace and object name where the grant is name-scoped. The RBAC test
derives the same set from the adapter's source and compares it with this table and with infra/k8s, so the
table, the code and the manifests cannot drift apart. `namespace=None` = cluster scope (any namespace);
`name=None` = any object.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.config import Settings
from shared.domain.models import CLUSTER_CONFIG_NAME, CLUSTER_CONFIG_NAMESPACE


class Permission(NamedTuple):
    group: str
    resource: str
    verb: str
    namespace: str | None = None
    name: str | None = None
    why: str = ""

    @property
    def label(self) -> str:
        scope = f" {self.namespace}/{self.name or '*'}" if self.namespace else (f" {self.name}" if self.name else "")
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {self.resource}{group}{scope}"


def function_permissions(settings: Settings) -> list[Permission]:
    hook, secret_ns, secret = (
        settings.webhook_configuration_name,
        settings.webhook_secret_namespace,
        settings.webhook_secret_name,
    )
    rows = [
        Permission("", "pods", "get", why="read a Pod before binding or flipping it"),
        Permission("", "pods", "list", why="list the Pods a Service selects"),
        Permission("", "pods/status", "get", why="read the gate condition before writing it"),
        Permission("", "pods/status", "patch", why="set the readiness gate condition"),
        Permission("", "services", "get", why="read a direct-access Service"),
        Permission("", "services", "list", why="list Services (reconcile, admission fallback)"),
        Permission("", "services", "patch", why="loadbalance-id annotation and cleanup finalizer"),
        Permission("", "services/status", "patch", why="publish the CLB VIPs in status.loadBalancer"),
        Permission("", "events", "create", why="report progress and failures as Events"),
        Permission("", "events", "patch", why="count repeated Events"),
        Permission("cloud.tencent.com", "tkeserviceconfigs", "get", why="read a Service's TkeServiceConfig"),
        Permission("", "configmaps", "get", CLUSTER_CONFIG_NAMESPACE, CLUSTER_CONFIG_NAME, "TKE cluster switches"),
        Permission(
            "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create", why="recreate the webhook"
        ),
        Permission("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get", name=hook, why="guardian"),
        Permission("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update", name=hook, why="repair"),
        Permission("", "secrets", "get", secret_ns, secret, "guardian's CA (webhook_ca_mode own only)"),
        Permission("", "secrets", "update", secret_ns, secret, "guardian's CA (webhook_ca_mode own only)"),
    ]
    return rows
