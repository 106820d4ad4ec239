"""Contract check: the cluster simulator answers the product's client calls as the real kube-apiserver does.

Each check runs the same `kubernetes` client calls against the simulator and the session's real API
server and returns only what both should agree on (codes, reasons, Status details, merged conditions,
selected names, what webhooks saw); the test compares the two field by field. Where they must differ,
the check leaves the field out and docs/simulator-departures.md says why.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from emulators.cluster.simulator import ClusterSimulator
from emulators.cluster.tls import CertificateAuthority
from emulators.controlplane.cluster import RealCluster
from tests.support.polling import eventually

Answer = dict[str, Any]


def _status(exc: ApiException) -> Answer:
    body = json.loads(exc.body)
    details = body.get("details") or {}
    return {
        "http": exc.status,
        "code": body.get("code"),
        "reason": body.get("reason"),
        "status": body.get("status"),
        "details.name": details.get("name"),
        "details.kind": details.get("kind"),
        # The real server may list one cause twice (uid immutability on a status patch): compare the set.
        "causes": sorted({(c.get("reason"), c.get("field")) for c in details.get("causes") or []}),
        "message": body.get("message"),
    }


def _pod(name: str | None = None, *, generate: str | None = None, labels: dict[str, str] | None = None) -> Answer:
    meta: Answer = {"labels": labels or {"app": "web"}}
    if name:
        meta["name"] = name
    if generate:
        meta["generateName"] = generate
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "web", "image": "example/web:1"}], "nodeName": "nowhere"},
    }


# ---------------------------------------------------------------------------------------------- checks


def check_generate_name(api: client.ApiClient, ns: str) -> Answer:
    pod = client.CoreV1Api(api).create_namespaced_pod(ns, _pod(generate="web-"))
    name = pod.metadata.name
    return {
        "prefix": name.startswith("web-"),
        "length": len(name),
        "generateName": pod.metadata.generate_name,
        "uid set": bool(pod.metadata.uid),
        "rv set": bool(pod.metadata.resource_version),
        "namespace": pod.metadata.namespace == ns,
    }


def check_stale_resource_version(api: client.ApiClient, ns: str) -> Answer:
    core = client.CoreV1Api(api)
    first = core.create_namespaced_pod(ns, _pod("stale"))
    core.patch_namespaced_pod("stale", ns, {"metadata": {"labels": {"touched": "yes"}}})
    body = core.api_client.sanitize_for_serialization(first)
    body["metadata"]["labels"]["again"] = "yes"
    try:
        core.replace_namespaced_pod("stale", ns, body)
    except ApiException as exc:
        return _status(exc)
    return {"http": 200}


def check_invalid_422(api: client.ApiClient, ns: str) -> Answer:
    try:
        client.CoreV1Api(api).create_namespaced_pod(ns, _pod("Bad_Name"))
    except ApiException as exc:
        answer = _status(exc)
        answer.pop("message")  # the real server lists every failed rule; the simulator names the first
        return answer
    return {"http": 201}


def check_status_patch_with_uid_precondition(api: client.ApiClient, ns: str) -> Answer:
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod(ns, _pod("status"))
    gate = {"type": "example.com/gate", "status": "False", "reason": "Waiting"}
    core.patch_namespaced_pod_status("status", ns, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    merged = core.patch_namespaced_pod_status(
        "status", ns, {"metadata": {"uid": pod.metadata.uid}, "status": {"conditions": [gate]}}
    )
    answer: Answer = {"conditions": sorted((c.type, c.status) for c in merged.status.conditions or [])}
    try:
        core.patch_namespaced_pod_status(
            "status", ns, {"metadata": {"uid": str(uuid.uuid4())}, "status": {"conditions": [gate]}}
        )
    except ApiException as exc:
        wrong = _status(exc)
        wrong.pop("message")
        answer["wrong uid"] = wrong
    return answer


def check_selectors(api: client.ApiClient, ns: str) -> Answer:
    core = client.CoreV1Api(api)
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "web"}), ("c", {"app": "db"})):
        core.create_namespaced_pod(ns, _pod(name, labels=labels))

    def names(**kwargs: Any) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod(ns, **kwargs).items)

    answer: Answer = {
        "set-based": names(label_selector="app in (web),tier!=back"),
        "exists": names(label_selector="tier"),
        "not exists": names(label_selector="!tier"),
        "name field": names(field_selector="metadata.name=b"),
        "phase field": names(field_selector="status.phase=Pending,metadata.name!=a"),
    }
    try:
        core.list_namespaced_pod(ns, field_selector="spec.nope=1")
    except ApiException as exc:
        bad = _status(exc)
        answer["unsupported field"] = {k: bad[k] for k in ("http", "reason")}
    return answer


def check_watch_with_bookmarks(api: client.ApiClient, ns: str) -> Answer:
    core = client.CoreV1Api(api)
    listed = core.list_namespaced_pod(ns)
    core.create_namespaced_pod(ns, _pod("watched"))
    seen: list[str] = []
    for event in watch.Watch().stream(
        core.list_namespaced_pod,
        ns,
        resource_version=listed.metadata.resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=3,
    ):
        if event["type"] != "BOOKMARK":
            seen.append(f"{event['type']} {event['raw_object']['metadata']['name']}")
    answer: Answer = {"events": seen}
    return answer


class _Webhooks:
    """Two mutating webhooks on one HTTPS server: /first (IfNeeded) and /second; records every call."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.calls: list[tuple[str, str, bool]] = []
        self.queries: list[str] = []
        pair = ca.issue(["127.0.0.1"])
        webhooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                labels = (request["object"].get("metadata") or {}).get("labels") or {}
                path, _, query = self.path.partition("?")
                which = path.strip("/")
                webhooks.queries.append(query)
                webhooks.calls.append((which, labels.get("case", ""), bool(request.get("dryRun"))))
                response: Answer = {"uid": request["uid"], "allowed": True}
                if which not in labels:
                    patch = [{"op": "add", "path": f"/metadata/labels/{which}", "value": "1"}]
                    response |= {
                        "patchType": "JSONPatch",
                        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                    }
                body = json.dumps(
                    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = pair.server_context().wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _register_webhooks(api: client.ApiClient, ns: str, port: int, ca_pem: bytes) -> str:
    name = f"contract-{ns}"

    def webhook(which: str, reinvoke: str) -> Answer:
        return {
            "name": f"{which}.contract.example.com",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "reinvocationPolicy": reinvoke,
            "timeoutSeconds": 10,
            "clientConfig": {"url": f"https://127.0.0.1:{port}/{which}", "caBundle": base64.b64encode(ca_pem).decode()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        }

    client.AdmissionregistrationV1Api(api).create_mutating_webhook_configuration(
        {"metadata": {"name": name}, "webhooks": [webhook("first", "IfNeeded"), webhook("second", "Never")]}
    )
    return name


def check_admission_reinvocation_and_dry_run(api: client.ApiClient, ns: str) -> Answer:
    ca = CertificateAuthority("contract webhook CA")
    hooks = _Webhooks(ca)
    core = client.CoreV1Api(api)
    name = _register_webhooks(api, ns, hooks.port, ca.cert_pem)
    try:
        created = eventually(
            lambda: _create_or_none(core, ns, _pod("mutated", labels={"app": "web", "case": "real"})),
            "a Pod create through both webhooks (the configuration is live)",
            timeout=30,
        )
        dry = core.create_namespaced_pod(ns, _pod("dry", labels={"app": "web", "case": "dry"}), dry_run="All")
        stored = [p.metadata.name for p in core.list_namespaced_pod(ns).items]
        return {
            "labels": sorted(created.metadata.labels),
            "calls": [list(c) for c in hooks.calls if c[1] == "real"][-3:],
            "dry-run calls": [list(c) for c in hooks.calls if c[1] == "dry"],
            "dry-run labels": sorted(dry.metadata.labels),
            "dry-run uid set": bool(dry.metadata.uid),
            "dry-run rv": dry.metadata.resource_version or "",
            "webhook query": sorted(set(hooks.queries)),
            "stored": sorted(stored),
        }
    finally:
        client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(name)
        hooks.close()


def _create_or_none(core: client.CoreV1Api, ns: str, body: Answer) -> client.V1Pod | None:
    try:
        return core.create_namespaced_pod(ns, body)
    except ApiException as exc:
        if exc.status in (500, 400) and "webhook" in (exc.body or ""):
            return None
        raise


Check = Callable[[client.ApiClient, str], Answer]
CHECKS: list[Check] = [
    check_generate_name,
    check_stale_resource_version,
    check_invalid_422,
    check_status_patch_with_uid_precondition,
    check_selectors,
    check_watch_with_bookmarks,
    check_admission_reinvocation_and_dry_run,
]


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSimulator]:
    directory: Path = tmp_path_factory.mktemp("contract-sim")
    with ClusterSimulator(kubeconfig_path=directory / "kubeconfig", node_count=1) as sim:
        yield sim


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("check_") for c in CHECKS])
def test_the_simulator_answers_like_the_real_api_server(
    check: Check,
    simulator: ClusterSimulator,
    real_cluster: RealCluster,
    admin: client.ApiClient,
    namespace: str,
) -> None:
    real = check(admin, namespace)
    expected = REAL_FACTS.get(check.__name__, {})
    assert {key: real.get(key) for key in expected} == expected, "the real API server changed its answer"
    with config.new_client_from_config(config_file=str(simulator.kubeconfig_path)) as sim_api:
        simulated = check(sim_api, namespace)
    assert simulated == real


# What the real server answered when this check was written: keeps a check from passing vacuously.
REAL_FACTS: dict[str, Answer] = {
    "check_generate_name": {"prefix": True, "length": 9, "generateName": "web-", "rv set": True},
    "check_stale_resource_version": {"http": 409, "reason": "Conflict", "details.kind": "pods"},
    "check_invalid_422": {"http": 422, "reason": "Invalid", "causes": [("FieldValueInvalid", "metadata.name")]},
    "check_status_patch_with_uid_precondition": {
        "conditions": [("Ready", "False"), ("example.com/gate", "False")],  # merged by type, not replaced
    },
    "check_selectors": {"set-based": ["a", "b"], "exists": ["a"], "not exists": ["b", "c"], "name field": ["b"]},
    "check_watch_with_bookmarks": {"events": ["ADDED watched"]},
    "check_admission_reinvocation_and_dry_run": {
        "calls": [["first", "real", False], ["second", "real", False], ["first", "real", False]],
        "dry-run calls": [["first", "dry", True], ["second", "dry", True], ["first", "dry", True]],
        "dry-run rv": "",
        "webhook query": ["timeout=10s"],
    },
}
