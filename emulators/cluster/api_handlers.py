"""The verbs of the simulator's REST API, independent of the HTTP transport.

``server.py`` parses a request into a :class:`~emulators.cluster.routing.Route`, query parameters and
a decoded body, then calls :func:`handle`, which talks to the object store and returns the status code
and JSON body the real apiserver would send (watch is streamed by the server itself). Unit tests call
it directly, without sockets.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from emulators.cluster import events, objects
from emulators.cluster.errors import ApiError, bad_request, method_not_allowed, not_found, unsupported_media_type
from emulators.cluster.patching import apply_patch
from emulators.cluster.resources import RESOURCES
from emulators.cluster.routing import Route
from emulators.cluster.store import ObjectStore

Obj = dict[str, Any]
JSON_BODY_TYPES = ("", "application/json", "*/*")
_BODY_MEDIA = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]


def decode_body(raw: bytes, content_type: str, *, patch: bool) -> Any:
    """Decode a request body; POST/PUT without Content-Type are JSON, as the real server assumes."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not patch and media_type not in JSON_BODY_TYPES:
        raise unsupported_media_type(_BODY_MEDIA)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def handle(
    store: ObjectStore, method: str, route: Route, query: dict[str, str], body: Any, *, content_type: str, user: str
) -> tuple[int, Obj]:
    """Execute one non-watch request; raises ``ApiError`` for failures."""
    if method == "GET":
        return 200, _get(store, route, query)
    dry_run = _dry_run(query)
    if dry_run and method != "POST":
        raise bad_request(f"dryRun on {method} is not supported by the cluster simulator (only creates)")
    if method == "POST":
        return 201, _post(store, route, body, user, dry_run=dry_run)
    if route.name is None:
        raise method_not_allowed(f"the server does not allow this method on the requested resource ({method})")
    if method == "PUT":
        return 200, _put(store, route, _require_object(body), user)
    if method == "PATCH":
        if body is None:
            raise bad_request("the body of the patch request is empty")
        return 200, _patch(store, route, body, content_type, user)
    if method == "DELETE":
        return 200, _delete(store, route, query, body, user)
    raise method_not_allowed(f"the server does not allow this method on the requested resource ({method})")


def _require_object(body: Any) -> Obj:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def _plural(route: Route) -> str:
    return route.rtype.plural


def _view(route: Route, obj: Obj) -> Obj:
    return events.from_core(obj) if route.events_v1 else obj


def _get(store: ObjectStore, route: Route, query: dict[str, str]) -> Obj:
    rtype = RESOURCES[_plural(route)]
    if route.name is None:
        return _list(store, route, query)
    obj = store.get(rtype.plural, route.namespace, route.name)
    if obj is None:
        raise ApiError(_not_found(route))
    if route.subresource == "scale":
        if not rtype.scale_subresource:
            raise ApiError(_not_found(route))
        return objects.scale_view(obj)
    return _view(route, obj)


def _not_found(route: Route) -> Obj:
    return not_found(route.rtype.plural, route.rtype.group, route.name or "").status


def _list(store: ObjectStore, route: Route, query: dict[str, str]) -> Obj:
    # Read-only: the answer is serialized at once and never changed.
    items, list_rv = store.list(
        _plural(route), route.namespace, query.get("labelSelector"), query.get("fieldSelector"), read_only=True
    )
    meta: Obj = {"resourceVersion": list_rv}
    start = query.get("continue")
    if start:
        try:
            after = json.loads(base64.urlsafe_b64decode(start.encode()))["start"]
        except (ValueError, KeyError, TypeError) as exc:
            raise bad_request(f"continue key is not valid: {exc}") from exc
        items = [o for o in items if _key(o) > tuple(after)]
    limit = int(query.get("limit") or 0)
    if limit > 0 and len(items) > limit:
        remaining = len(items) - limit
        items = items[:limit]
        meta["continue"] = base64.urlsafe_b64encode(json.dumps({"start": _key(items[-1])}).encode()).decode()
        meta["remainingItemCount"] = remaining
    return {
        "kind": f"{route.rtype.kind}List",
        "apiVersion": route.rtype.api_version,
        "metadata": meta,
        "items": [_view(route, o) for o in items],
    }


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _dry_run(query: dict[str, str]) -> bool:
    """`?dryRun=All` as the real server takes it; any other value is refused the same way."""
    value = query.get("dryRun")
    if value is None or value == "":
        return False
    if value != "All":
        raise bad_request(f'Invalid dry run value: "{value}"; the only supported value is "All"')
    return True


def _post(store: ObjectStore, route: Route, body: Any, user: str, *, dry_run: bool = False) -> Obj:
    if route.subresource == "binding" and route.rtype.plural == "pods" and route.name:
        target = (_require_object(body).get("target") or {}).get("name")
        if not target:
            raise bad_request("a Binding needs target.name")
        return store.bind(route.namespace or "", route.name, target, actor=user)
    if route.name is not None:
        raise method_not_allowed("the server does not allow this method on the requested resource (POST)")
    obj = _require_object(body)
    if route.events_v1:
        events.validate_new(obj)
        obj = events.to_core(obj)
    return _view(route, store.create(_plural(route), route.namespace, obj, actor=user, dry_run=dry_run))


def _put(store: ObjectStore, route: Route, body: Obj, user: str) -> Obj:
    assert route.name is not None
    obj = events.to_core(body) if route.events_v1 else body
    result = store.replace(_plural(route), route.namespace, route.name, obj, subresource=route.subresource, actor=user)
    return result if route.subresource == "scale" else _view(route, result)


def _patch(store: ObjectStore, route: Route, body: Any, content_type: str, user: str) -> Obj:
    assert route.name is not None
    if route.events_v1:
        # Patch the events.k8s.io view of the stored core Event atomically.
        def convert(current: Obj) -> Obj:
            patched = apply_patch(route.rtype, events.from_core(current), body, content_type)
            return events.to_core(patched)

        result = store.mutate("events", route.namespace, route.name, convert, actor=user)
        current = result if result is not None else store.get("events", route.namespace, route.name)
        return events.from_core(current or {})
    return store.patch(
        _plural(route), route.namespace, route.name, body, content_type, subresource=route.subresource, actor=user
    )


def _delete(store: ObjectStore, route: Route, query: dict[str, str], body: Any, user: str) -> Obj:
    assert route.name is not None
    options = body if isinstance(body, dict) else {}
    grace_raw = query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
    grace = int(grace_raw) if grace_raw not in (None, "") else None
    preconditions = {k: v for k, v in (options.get("preconditions") or {}).items() if v}
    rtype = RESOURCES[_plural(route)]
    result = store.delete(
        rtype.plural, route.namespace, route.name, grace_period_seconds=grace, actor=user, preconditions=preconditions
    )
    assert result is not None
    still_there = store.get(rtype.plural, route.namespace, route.name) is not None
    if still_there or rtype.returns_deleted_object:
        return _view(route, result)
    details: Obj = {"name": route.name}
    if route.rtype.group:
        details["group"] = route.rtype.group
    details.update({"kind": rtype.plural, "uid": result["metadata"].get("uid", "")})
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
