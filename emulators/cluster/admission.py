"""Mutating admission: calls MutatingWebhookConfiguration webhooks on Pod CREATE, as the apiserver does.

Installed as the object store's admission hook (``AdmissionChain(store)`` then
``store.admission = chain``); the store calls it outside its lock with the defaulted Pod before a name
is generated. For every matching webhook (``rules``, ``namespaceSelector`` on the Namespace's labels,
``objectSelector``) it POSTs an ``admission.k8s.io/v1`` AdmissionReview over HTTPS, verifying the
server against ``caBundle`` (system roots when absent), within ``timeoutSeconds``. A denial rejects
the request with the webhook's status; a call error follows ``failurePolicy``; the returned base64
JSONPatch is applied; ``reinvocationPolicy: IfNeeded`` webhooks run once more if a later webhook
changed the object. Only ``clientConfig.url`` is supported.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonpatch

from emulators.cluster.errors import ApiError, internal_error, status_body
from emulators.cluster.resources import ResourceType
from emulators.cluster.selectors import match_label_selector_object

if TYPE_CHECKING:
    from emulators.cluster.store import ObjectStore

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class WebhookCallError(Exception):
    """The webhook could not be called or answered unusably; ``failurePolicy`` decides what follows."""


@dataclass(frozen=True)
class _Webhook:
    config_name: str
    spec: Obj

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))


def _rule_matches(rule: Obj, rtype: ResourceType, operation: str) -> bool:
    def allows(values: list[str] | None, wanted: str) -> bool:
        return bool(values) and ("*" in values or wanted in values)  # type: ignore[operator]

    scope = rule.get("scope", "*")
    scope_ok = scope in ("*", "Namespaced" if rtype.namespaced else "Cluster")
    resources = rule.get("resources") or []
    # "pods", "*" and "*/*" match the main resource; "pods/*" names only its subresources.
    resource_ok = bool({rtype.plural, "*", "*/*"} & set(resources))
    return (
        scope_ok
        and resource_ok
        and allows(rule.get("operations"), operation)
        and allows(rule.get("apiGroups"), rtype.group)
        and allows(rule.get("apiVersions"), rtype.version)
    )


class AdmissionChain:
    """The mutating-webhook admission plugin for the simulator (Pod CREATE only)."""

    def __init__(self, store: ObjectStore, *, default_timeout_s: float = 10.0) -> None:
        self._store = store
        self._default_timeout_s = default_timeout_s

    def __call__(self, rtype: ResourceType, namespace: str | None, obj: Obj, actor: str, dry_run: bool = False) -> Obj:
        return self.admit(rtype, namespace, obj, actor, dry_run=dry_run)

    def admit(self, rtype: ResourceType, namespace: str | None, obj: Obj, actor: str, *, dry_run: bool = False) -> Obj:
        webhooks = [w for w in self._webhooks() if self._matches(w, rtype, namespace, obj)]
        current = copy.deepcopy(obj)
        seen_by: dict[str, Obj] = {}
        for webhook in webhooks:
            current = self._invoke(webhook, rtype, namespace, current, actor, dry_run=dry_run)
            seen_by[webhook.name] = copy.deepcopy(current)
        for webhook in webhooks:
            if webhook.spec.get("reinvocationPolicy") == "IfNeeded" and seen_by[webhook.name] != current:
                current = self._invoke(webhook, rtype, namespace, current, actor, dry_run=dry_run)
        return current

    def _webhooks(self) -> list[_Webhook]:
        configs, _ = self._store.list("mutatingwebhookconfigurations")
        return [
            _Webhook(config["metadata"]["name"], webhook)
            for config in sorted(configs, key=lambda c: str(c["metadata"]["name"]))
            for webhook in config.get("webhooks") or []
        ]

    def _matches(self, webhook: _Webhook, rtype: ResourceType, namespace: str | None, obj: Obj) -> bool:
        if not any(_rule_matches(rule, rtype, "CREATE") for rule in webhook.spec.get("rules") or []):
            return False
        if rtype.namespaced and namespace:
            ns_obj = self._store.get("namespaces", None, namespace)
            # A namespace the store will create implicitly carries only its automatic name label.
            labels = (ns_obj or {}).get("metadata", {}).get("labels") or {"kubernetes.io/metadata.name": namespace}
            if not match_label_selector_object(webhook.spec.get("namespaceSelector"), labels):
                return False
        object_labels = (obj.get("metadata") or {}).get("labels")
        return match_label_selector_object(webhook.spec.get("objectSelector"), object_labels)

    def _invoke(
        self, webhook: _Webhook, rtype: ResourceType, namespace: str | None, obj: Obj, actor: str, *, dry_run: bool
    ) -> Obj:
        request_uid = str(uuid.uuid4())
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": request_uid,
                "kind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
                "resource": {"group": rtype.group, "version": rtype.version, "resource": rtype.plural},
                "requestKind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
                "requestResource": {"group": rtype.group, "version": rtype.version, "resource": rtype.plural},
                "name": (obj.get("metadata") or {}).get("name", ""),
                "namespace": namespace or "",
                "operation": "CREATE",
                "userInfo": user_info(actor),
                "object": obj,
                "oldObject": None,
                "dryRun": dry_run,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }
        try:
            response = self._call(webhook, review)
            if response.get("uid") != request_uid:
                raise WebhookCallError(f"expected response.uid={request_uid!r}, got {response.get('uid')!r}")
            if not response.get("allowed"):
                raise ApiError(_denial(webhook.name, response.get("status")))
            return _apply_response_patch(obj, response)
        except WebhookCallError as exc:
            if webhook.spec.get("failurePolicy", "Fail") == "Ignore":
                log.warning("webhook %s failed, ignored by failurePolicy: %s", webhook.name, exc)
                return obj
            raise internal_error(f'failed calling webhook "{webhook.name}": {exc}') from exc

    def _call(self, webhook: _Webhook, review: Obj) -> Obj:
        client_config = webhook.spec.get("clientConfig") or {}
        url = client_config.get("url")
        if not url:
            raise WebhookCallError(
                "clientConfig.service is not supported by the cluster simulator; set clientConfig.url to the "
                "webhook's https:// address"
            )
        try:
            context = _tls_context(client_config.get("caBundle"))
        except (ValueError, ssl.SSLError) as exc:
            raise WebhookCallError(f"invalid caBundle: {exc}") from exc
        timeout = float(webhook.spec.get("timeoutSeconds") or self._default_timeout_s)
        # The real API server tells the webhook its deadline in the query string: ?timeout=10s.
        separator = "&" if "?" in url else "?"
        request = urllib.request.Request(
            f"{url}{separator}timeout={int(timeout)}s",
            data=json.dumps(review).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            raise WebhookCallError(f"failed to call webhook: the server responded with HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WebhookCallError(f'failed to call webhook: Post "{url}": {reason}') from exc
        if status != 200:
            raise WebhookCallError(f"failed to call webhook: the server responded with HTTP {status}")
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise WebhookCallError(f"received invalid webhook response: {exc}") from exc
        if document.get("apiVersion") != "admission.k8s.io/v1" or document.get("kind") != "AdmissionReview":
            raise WebhookCallError("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview")
        response = document.get("response")
        if not isinstance(response, dict):
            raise WebhookCallError("webhook response was absent")
        return response


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    if not ca_bundle:
        return ssl.create_default_context()
    return ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())


def _apply_response_patch(obj: Obj, response: Obj) -> Obj:
    patch = response.get("patch")
    if not patch:
        return obj
    if response.get("patchType") != "JSONPatch":
        raise WebhookCallError(f"unsupported patch type {response.get('patchType')!r}; only JSONPatch is allowed")
    try:
        operations = json.loads(base64.b64decode(patch))
        patched = jsonpatch.JsonPatch(operations).apply(obj, in_place=False)
    except (ValueError, TypeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise WebhookCallError(f"the webhook's JSONPatch could not be applied: {exc}") from exc
    if not isinstance(patched, dict):
        raise WebhookCallError("the webhook's JSONPatch did not produce an object")
    return patched


def _denial(webhook_name: str, result: Obj | None) -> Obj:
    """``ToStatusErr`` of the apiserver: the webhook's status, made a failure of at least code 400."""
    result = dict(result or {})
    denied_by = f'admission webhook "{webhook_name}" denied the request'
    if result.get("message"):
        message = f"{denied_by}: {result['message']}"
    elif result.get("reason"):
        message = f"{denied_by}: {result['reason']}"
    else:
        message = f"{denied_by} without explanation"
    code = int(result.get("code") or 400)
    return status_body(max(code, 400), str(result.get("reason") or ""), message, result.get("details"))


def user_info(actor: str) -> Obj:
    """The authn UserInfo the apiserver attaches for ``actor`` (groups as the authenticators add them)."""
    groups = ["system:authenticated"]
    if actor.startswith("system:serviceaccount:"):
        namespace = actor.split(":")[2]
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", *groups]
    elif actor.startswith("system:node:"):
        groups = ["system:nodes", *groups]
    elif actor == "system:admin":
        groups = ["system:masters", *groups]
    return {"username": actor, "groups": groups}
