"""The cluster simulator's object store: the state behind the local Kubernetes API.

The HTTP server (``server.py``) serves it to the real ``kubernetes`` client, and the simulator's own
scheduler, kubelet and controllers call it in-process. It owns the apiserver semantics of §4.5 of the
Kubernetes reference notes: one global resourceVersion, optimistic concurrency, generateName, status
subresource isolation, generation, graceful Pod deletion, finalizers, owner-reference garbage
collection, a bounded change history for watches, and change callbacks. Every write is reported to an
optional audit sink and, for Pod CREATE, passed through an optional admission hook (``admission.py``).
The rules live beside it: ``objects.py`` (per-kind defaulting), ``updates.py`` (what an update may
change), ``deletion.py`` (terminating, finalizers, cascades) and ``changefeed.py`` (watches, callbacks).
"""

from __future__ import annotations

import copy
import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from emulators.cluster import deletion, objects, updates
from emulators.cluster.changefeed import ChangeFeed, Subscriber
from emulators.cluster.context import AuditedCall, WriteRecord
from emulators.cluster.errors import ApiError, already_exists, bad_request, not_found
from emulators.cluster.names import check_name
from emulators.cluster.patching import JSON_PATCH, apply_patch
from emulators.cluster.resources import RESOURCES, ResourceType, resource_type
from emulators.cluster.selectors import parse_field_selector, parse_label_selector
from emulators.cluster.watch import ChangeEvent, WatchStream

log = logging.getLogger(__name__)

Obj = dict[str, Any]
AdmissionHook = Callable[[ResourceType, "str | None", Obj, str, bool], Obj]  # ..., actor, dry_run
AuditSink = Callable[[WriteRecord], None]
Objs = list[Obj]

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's generateName alphabet (no vowels)


class ObjectStore:
    """Thread-safe in-memory apiserver storage with Kubernetes write semantics."""

    def __init__(
        self,
        *,
        history_size: int = 1000,
        now: Callable[[], datetime] | None = None,
        admission: AdmissionHook | None = None,
        audit_sink: AuditSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {plural: {} for plural in RESOURCES}
        self._rv = 1  # a bootstrapped cluster never lists at "0", which watch treats as "any version"
        self._feed = ChangeFeed(self._lock, history_size)
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._rng = rng or random.Random()
        self.admission = admission
        self.audit_sink = audit_sink

    # ------------------------------------------------------------------ reads

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def now(self) -> datetime:
        return self._now()

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        rtype = resource_type(resource)
        with self._lock:
            found = self._objects[resource].get((self._ns(rtype, namespace), name))
            return copy.deepcopy(found) if found is not None else None

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        read_only: bool = False,
    ) -> tuple[list[Obj], str]:
        """The matching objects, sorted, and the list's resourceVersion.

        Copies by default. `read_only=True` returns the stored objects themselves, for callers that only
        read them (the controllers, a list answer serialized at once): a commit always stores a new object,
        never changes a stored one, so they stay valid; mutating them would corrupt the store.
        """
        resource_type(resource)
        requirements = parse_label_selector(label_selector)
        predicate = parse_field_selector(resource, field_selector)
        probe = WatchStream(resource, namespace, requirements, predicate, on_close=lambda _s: None)
        with self._lock:
            items = [o for _, o in sorted(self._objects[resource].items()) if probe.matches(o)]
            if not read_only:
                items = [copy.deepcopy(o) for o in items]
            return items, str(self._rv)

    # ------------------------------------------------------------------ writes

    def create(
        self, resource: str, namespace: str | None, obj: Obj, *, actor: str = "system:admin", dry_run: bool = False
    ) -> Obj:
        """Create; with `dry_run` (`?dryRun=All`) admit, name and stamp it as a create would, store nothing."""
        rtype = resource_type(resource)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise bad_request(f"the body of a {rtype.kind} create must be a JSON object with metadata")
        body = copy.deepcopy(obj)
        ns = self._scope(rtype, namespace, body)
        request_name = body.get("metadata", {}).get("name", "")
        return self._audited(
            AuditedCall("create", rtype, ns, request_name, None, actor, obj),
            lambda: self._create(rtype, ns, body, actor, dry_run=dry_run),
        )

    def replace(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        obj: Obj,
        *,
        subresource: str | None = None,
        actor: str = "system:admin",
    ) -> Obj:
        rtype = resource_type(resource)
        ns = self._ns(rtype, namespace)

        def compute(current: Obj) -> Obj:
            return updates.check_replace(rtype, ns, name, obj, current)

        return self._audited(
            AuditedCall("update", rtype, ns, name, subresource, actor, obj),
            lambda: self._update(rtype, ns, name, subresource, compute, enforce_pod_spec=True),
        )

    def patch(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str,
        *,
        subresource: str | None = None,
        actor: str = "system:admin",
    ) -> Obj:
        rtype = resource_type(resource)
        ns = self._ns(rtype, namespace)
        patch_rtype = RESOURCES["deployments"] if subresource == "scale" else rtype

        def compute(current: Obj) -> Obj:
            if isinstance(patch, dict):
                updates.check_preconditions(rtype, name, current, patch.get("metadata") or {})
            result = apply_patch(patch_rtype, current, patch, patch_type)
            if patch_type.startswith(JSON_PATCH):
                updates.check_preconditions(rtype, name, current, result.get("metadata") or {})
            return result

        return self._audited(
            AuditedCall("patch", rtype, ns, name, subresource, actor, patch),
            lambda: self._update(rtype, ns, name, subresource, compute, enforce_pod_spec=True),
        )

    def mutate(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        fn: Callable[[Obj], Obj | None],
        *,
        subresource: str | None = None,
        actor: str = "system:admin",
    ) -> Obj | None:
        """Atomic read-modify-write for in-process controllers.

        ``fn`` gets a deep copy of the stored object (or of its Scale view for ``subresource="scale"``)
        and returns the new object, or ``None`` for "no change" (no resourceVersion bump, no event,
        ``mutate`` returns ``None``). Subresource isolation applies; Pod spec immutability does not, so the
        simulator's scheduler can set ``spec.nodeName``. A missing object raises a 404 ``ApiError``.
        """
        rtype = resource_type(resource)
        ns = self._ns(rtype, namespace)
        unchanged: list[bool] = []

        def compute(current: Obj) -> Obj:
            result = fn(current)
            if result is None:
                unchanged.append(True)
                return current
            return result

        result = self._audited(
            AuditedCall("update", rtype, ns, name, subresource, actor, None),
            lambda: self._update(rtype, ns, name, subresource, compute, enforce_pod_spec=False),
            skip_if=lambda: bool(unchanged),
        )
        return None if unchanged else result

    def bind(self, namespace: str, name: str, node_name: str, *, actor: str = "system:kube-scheduler") -> Obj:
        """``POST pods/{name}/binding``: assign a node once and mark the Pod scheduled."""
        rtype = RESOURCES["pods"]
        binding = updates.binding(namespace, name, node_name)

        def compute(current: Obj) -> Obj:
            return updates.assign_node(current, name, node_name, self._now)

        def action() -> Obj:
            self._update(rtype, namespace, name, "binding", compute, enforce_pod_spec=False)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

        return self._audited(AuditedCall("create", rtype, namespace, name, "binding", actor, binding), action)

    def delete(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        actor: str = "system:admin",
        preconditions: dict[str, str] | None = None,
    ) -> Obj | None:
        """Delete, gracefully for scheduled Pods; returns the object in its final or terminating state."""
        rtype = resource_type(resource)
        ns = self._ns(rtype, namespace)
        removed: Objs = []

        def action() -> Obj:
            with self._lock:
                return deletion.delete_locked(
                    self._objects,
                    rtype,
                    ns,
                    name,
                    grace=grace_period_seconds,
                    preconditions=preconditions or {},
                    commit=self._commit,
                    now=self._now,
                    removed=removed,
                )

        result = self._audited(AuditedCall("delete", rtype, ns, name, None, actor, None), action)
        self._feed.dispatch()
        self._collect_garbage(removed)
        return result

    # ------------------------------------------------------------------ watch and callbacks

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event_type, resource, obj)`` after every change, in resourceVersion order."""
        return self._feed.subscribe(callback)

    def watch(
        self,
        resource: str,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> WatchStream:
        """Open a watch; ``resource_version`` None/""/"0" starts with synthetic ADDED events."""
        resource_type(resource)
        stream = WatchStream(
            resource,
            namespace,
            parse_label_selector(label_selector),
            parse_field_selector(resource, field_selector),
            on_close=self._feed.forget,
        )
        start: int | None = None
        if resource_version not in (None, "", "0"):
            try:
                start = int(str(resource_version))
            except ValueError:
                raise bad_request(f"invalid resource version: {resource_version!r}") from None
        with self._lock:
            snapshot = [obj for _, obj in sorted(self._objects[resource].items())]
            self._feed.open_watch(stream, start, snapshot)
        return stream

    def bookmark_version(self, stream: WatchStream) -> str | None:
        """The resourceVersion a BOOKMARK on ``stream`` may carry now, or ``None`` if events are pending."""
        with self._lock:
            return str(self._rv) if stream.idle() and not stream.closed else None

    def close_watches(self) -> None:
        self._feed.close_all()

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _ns(rtype: ResourceType, namespace: str | None) -> str:
        if not rtype.namespaced:
            return ""
        if not namespace:
            raise bad_request(f"{rtype.plural} are namespaced: a namespace is required")
        return namespace

    def _scope(self, rtype: ResourceType, namespace: str | None, body: Obj) -> str:
        meta = body.setdefault("metadata", {})
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return ""
        ns = namespace or meta.get("namespace") or ""
        if meta.get("namespace") and meta["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        return self._ns(rtype, ns)

    def _audited(
        self, call: AuditedCall, action: Callable[[], Obj], skip_if: Callable[[], bool] = lambda: False
    ) -> Obj:
        """Run ``action`` and report it to the audit sink, success or failure, then notify subscribers."""
        received = self._now()
        try:
            result = action()
        except ApiError as error:
            self._record(call, error.status, error.status, received)
            raise
        finally:
            self._feed.dispatch()
        if not skip_if():
            self._record(call, result, {"metadata": {}, "code": 201 if call.verb == "create" else 200}, received)
        return result

    def _record(self, call: AuditedCall, response_object: Any, status: Obj, received: datetime) -> None:
        sink = self.audit_sink
        if sink is not None:
            sink(call.record(response_object, status, received, self._now()))

    def _commit(self, event_type: str, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        """Bump the global resourceVersion and publish the change; caller holds the lock."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if event_type == "DELETED":
            self._objects[rtype.plural].pop(key, None)
        else:
            self._objects[rtype.plural][key] = obj
        self._feed.publish(ChangeEvent(self._rv, event_type, rtype.plural, copy.deepcopy(obj), old))
        return copy.deepcopy(obj)

    def _ensure_namespace(self, ns: str) -> None:
        if ns and ("", ns) not in self._objects["namespaces"]:
            namespace: Obj = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns}}
            objects.prepare_for_create(RESOURCES["namespaces"], namespace)
            objects.stamp_new(RESOURCES["namespaces"], namespace, self._now())
            self._commit("ADDED", RESOURCES["namespaces"], namespace, None)

    def _create(self, rtype: ResourceType, ns: str, body: Obj, actor: str, *, dry_run: bool = False) -> Obj:
        meta = body["metadata"]
        objects.check_create_identity(rtype, ns, body)
        objects.prepare_for_create(rtype, body)
        if rtype.plural == "pods" and self.admission is not None:
            # Webhooks are called outside the lock: they are slow, remote and may call back into the API.
            body = self.admission(rtype, ns or None, body, actor, dry_run)
        with self._lock:
            if ns:
                self._ensure_namespace(ns)
            table = self._objects[rtype.plural]
            if not meta.get("name"):
                prefix = body["metadata"]["generateName"]
                candidate = prefix + "".join(self._rng.choice(_NAME_ALPHABET) for _ in range(5))
                while (ns, candidate) in table:
                    candidate = prefix + "".join(self._rng.choice(_NAME_ALPHABET) for _ in range(5))
                body["metadata"]["name"] = candidate
            name = body["metadata"]["name"]
            check_name(rtype, name)
            if (ns, name) in table:
                raise already_exists(rtype.plural, rtype.group, name)
            objects.stamp_new(rtype, body, self._now())
            if dry_run:
                return copy.deepcopy(body)  # like the real server: no resourceVersion, nothing persisted
            return self._commit("ADDED", rtype, body, None)

    def _update(
        self,
        rtype: ResourceType,
        ns: str,
        name: str,
        subresource: str | None,
        compute: Callable[[Obj], Obj],
        *,
        enforce_pod_spec: bool,
    ) -> Obj:
        with self._lock:
            current = self._objects[rtype.plural].get((ns, name))
            if current is None:
                raise not_found(rtype.plural, rtype.group, name)
            if subresource == "scale":
                return self._update_scale(rtype, current, compute)
            proposed = compute(copy.deepcopy(current))
            merged = updates.merge_update(rtype, current, proposed, subresource, enforce_pod_spec)
            if merged == current:
                return copy.deepcopy(current)  # a no-op write does not bump the resourceVersion
            if deletion.completes_deletion(rtype, merged["metadata"]):
                return self._commit("DELETED", rtype, merged, current)
            return self._commit("MODIFIED", rtype, merged, current)

    def _update_scale(self, rtype: ResourceType, current: Obj, compute: Callable[[Obj], Obj]) -> Obj:
        if not rtype.scale_subresource:
            raise not_found(rtype.plural, rtype.group, current["metadata"]["name"])
        replicas = updates.scale_replicas(current["metadata"]["name"], compute(objects.scale_view(current)))
        if replicas == current["spec"].get("replicas"):
            return objects.scale_view(current)
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = replicas
        updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        return objects.scale_view(self._commit("MODIFIED", rtype, updated, current))

    def _collect_garbage(self, removed: Objs) -> None:
        """Background-propagation cascade: delete dependents whose every owner is gone."""
        queue: Objs = list(removed)
        while queue:
            owner = queue.pop()
            with self._lock:
                dependents = deletion.orphaned_dependents(self._objects, owner)
            for plural, obj in dependents:
                try:
                    self.delete(
                        plural, obj["metadata"].get("namespace"), obj["metadata"]["name"], actor=deletion.GC_ACTOR
                    )
                except ApiError as error:
                    if error.code != 404:
                        raise
