"""The cluster simulator's object store: the state behind the local Kubernetes API.

The HTTP server (``server.py``) serves it to the real ``kubernetes`` client, and the simulator's own
scheduler, kubelet and controllers call it in-process. It owns the apiserver semantics of §4.5 of the
Kubernetes reference notes: one global resourceVersion, optimistic concurrency, generateName, status
subresource isolation, generation, graceful Pod deletion, finalizers, owner-reference garbage
collection, a bounded change history for watches, and change callbacks. Every write is reported to an
optional audit sink and, for Pod CREATE, passed through an optional admission hook (``admission.py``).
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from emulators.cluster import objects, updates
from emulators.cluster.changefeed import ChangeFeed, Subscriber
from emulators.cluster.context import RequestInfo, WriteRecord, current_request
from emulators.cluster.errors import ApiError, already_exists, bad_request, conflict, invalid, not_found
from emulators.cluster.patching import JSON_PATCH, apply_patch
from emulators.cluster.resources import RESOURCES, ResourceType, resource_type
from emulators.cluster.selectors import parse_field_selector, parse_label_selector
from emulators.cluster.watch import ChangeEvent, WatchStream

log = logging.getLogger(__name__)

Obj = dict[str, Any]
AdmissionHook = Callable[[ResourceType, "str | None", Obj, str], Obj]
AuditSink = Callable[[WriteRecord], None]
Objs = list[Obj]

GC_ACTOR = "system:serviceaccount:kube-system:generic-garbage-collector"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's generateName alphabet (no vowels)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Call:
    """What an audited write was asked to do (the audit event's verb, objectRef, user, requestObject)."""

    verb: str
    rtype: ResourceType
    ns: str
    name: str
    subresource: str | None
    actor: str
    request_object: Any


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
    ) -> tuple[list[Obj], str]:
        resource_type(resource)
        requirements = parse_label_selector(label_selector)
        predicate = parse_field_selector(resource, field_selector)
        probe = WatchStream(resource, namespace, requirements, predicate, on_close=lambda _s: None)
        with self._lock:
            items = [copy.deepcopy(o) for _, o in sorted(self._objects[resource].items()) if probe.matches(o)]
            return items, str(self._rv)

    # ------------------------------------------------------------------ writes

    def create(self, resource: str, namespace: str | None, obj: Obj, *, actor: str = "system:admin") -> Obj:
        rtype = resource_type(resource)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise bad_request(f"the body of a {rtype.kind} create must be a JSON object with metadata")
        body = copy.deepcopy(obj)
        ns = self._scope(rtype, namespace, body)
        request_name = body.get("metadata", {}).get("name", "")
        return self._audited(
            _Call("create", rtype, ns, request_name, None, actor, obj), lambda: self._create(rtype, ns, body, actor)
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
            if not isinstance(obj, dict):
                raise bad_request("the body of an update must be a JSON object")
            self._check_identity(rtype, ns, name, obj)
            sent_rv = (obj.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rtype.plural, rtype.group, name)
            if not sent_rv and rtype.custom:
                raise invalid(
                    rtype.kind,
                    rtype.group,
                    name,
                    "metadata.resourceVersion",
                    cause_reason="FieldValueInvalid",
                    detail="Invalid value: 0x0: must be specified for an update",
                )
            sent_uid = (obj.get("metadata") or {}).get("uid")
            if sent_uid and sent_uid != current["metadata"]["uid"]:
                raise invalid(
                    rtype.kind,
                    rtype.group,
                    name,
                    "metadata.uid",
                    cause_reason="FieldValueInvalid",
                    detail=f'Invalid value: "{sent_uid}": field is immutable',
                )
            return copy.deepcopy(obj)

        return self._audited(
            _Call("update", rtype, ns, name, subresource, actor, obj),
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
            _Call("patch", rtype, ns, name, subresource, actor, patch),
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
            _Call("update", rtype, ns, name, subresource, actor, None),
            lambda: self._update(rtype, ns, name, subresource, compute, enforce_pod_spec=False),
            skip_if=lambda: bool(unchanged),
        )
        return None if unchanged else result

    def bind(self, namespace: str, name: str, node_name: str, *, actor: str = "system:kube-scheduler") -> Obj:
        """``POST pods/{name}/binding``: assign a node once and mark the Pod scheduled."""
        rtype = RESOURCES["pods"]
        binding = {
            "kind": "Binding",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"kind": "Node", "name": node_name},
        }

        def compute(current: Obj) -> Obj:
            assigned = current["spec"].get("nodeName")
            if assigned:
                raise conflict("pods", "", name, f'pod {name} is already assigned to node "{assigned}"')
            current["spec"]["nodeName"] = node_name
            conditions = current.setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": format_time(self._now()),
                }
            )
            return current

        def action() -> Obj:
            self._update(rtype, namespace, name, "binding", compute, enforce_pod_spec=False)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

        return self._audited(_Call("create", rtype, namespace, name, "binding", actor, binding), action)

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
        result = self._audited(
            _Call("delete", rtype, ns, name, None, actor, None),
            lambda: self._delete(
                rtype, ns, name, grace_period_seconds, preconditions=preconditions or {}, removed=removed
            ),
        )
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

    @staticmethod
    def _check_identity(rtype: ResourceType, ns: str, name: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if rtype.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")

    def _audited(self, call: _Call, action: Callable[[], Obj], skip_if: Callable[[], bool] = lambda: False) -> Obj:
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

    def _record(self, call: _Call, response_object: Any, status: Obj, received: datetime) -> None:
        sink = self.audit_sink
        if sink is None:
            return
        rtype = call.rtype
        info = current_request.get() or RequestInfo(
            request_uri=updates.request_uri(rtype, call.ns, call.name, call.subresource, call.verb)
        )
        sink(
            WriteRecord(
                verb=call.verb,
                resource=rtype.plural,
                subresource=call.subresource,
                namespace=call.ns or None,
                name=call.name,
                api_group=rtype.group,
                api_version=rtype.version,
                actor=call.actor,
                request_object=copy.deepcopy(call.request_object),
                response_object=copy.deepcopy(response_object),
                response_status=status,
                received=received,
                completed=self._now(),
                request=info,
            )
        )

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
            self._stamp_new(RESOURCES["namespaces"], namespace)
            self._commit("ADDED", RESOURCES["namespaces"], namespace, None)

    def _stamp_new(self, rtype: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = format_time(self._now())
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(transient, None)
        if rtype.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)

    def _create(self, rtype: ResourceType, ns: str, body: Obj, actor: str) -> Obj:
        meta = body["metadata"]
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        if ns:
            meta["namespace"] = ns
        body["kind"], body["apiVersion"] = rtype.kind, rtype.api_version
        if not meta.get("name") and not meta.get("generateName"):
            raise invalid(
                rtype.kind,
                rtype.group,
                "",
                "metadata.name",
                cause_reason="FieldValueRequired",
                detail="Required value: name or generateName is required",
            )
        objects.prepare_for_create(rtype, body)
        if rtype.plural == "pods" and self.admission is not None:
            # Webhooks are called outside the lock: they are slow, remote and may call back into the API.
            body = self.admission(rtype, ns or None, body, actor)
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
            if (ns, name) in table:
                raise already_exists(rtype.plural, rtype.group, name)
            self._stamp_new(rtype, body)
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
            meta = merged["metadata"]
            if (
                meta.get("deletionTimestamp")
                and not meta.get("finalizers")
                and (rtype.plural != "pods" or meta.get("deletionGracePeriodSeconds") == 0)
            ):
                removed = self._commit("DELETED", rtype, merged, current)
                return removed
            return self._commit("MODIFIED", rtype, merged, current)

    def _update_scale(self, rtype: ResourceType, current: Obj, compute: Callable[[Obj], Obj]) -> Obj:
        if not rtype.scale_subresource:
            raise not_found(rtype.plural, rtype.group, current["metadata"]["name"])
        scale = compute(objects.scale_view(current))
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                current["metadata"]["name"],
                "spec.replicas",
                cause_reason="FieldValueInvalid",
                detail=f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        if replicas == current["spec"].get("replicas"):
            return objects.scale_view(current)
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = replicas
        updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        return objects.scale_view(self._commit("MODIFIED", rtype, updated, current))

    def _delete(
        self,
        rtype: ResourceType,
        ns: str,
        name: str,
        grace: int | None,
        *,
        preconditions: dict[str, str],
        removed: Objs,
    ) -> Obj:
        with self._lock:
            current = self._objects[rtype.plural].get((ns, name))
            if current is None:
                raise not_found(rtype.plural, rtype.group, name)
            updates.check_preconditions(rtype, name, current, preconditions)
            if rtype.plural == "namespaces":
                for plural, table in self._objects.items():
                    for key in [k for k in table if k[0] == name]:
                        self._commit("DELETED", RESOURCES[plural], copy.deepcopy(table[key]), table[key])
            grace = updates.grace_period(rtype, current, grace)
            meta = current["metadata"]
            if grace == 0 and not meta.get("finalizers"):
                result = self._commit("DELETED", rtype, copy.deepcopy(current), current)
                removed.append(result)
                return result
            if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds", 0) <= grace:
                return copy.deepcopy(current)  # already terminating at least this fast
            updated = copy.deepcopy(current)
            updated["metadata"]["deletionTimestamp"] = format_time(self._now() + timedelta(seconds=grace))
            updated["metadata"]["deletionGracePeriodSeconds"] = grace
            return self._commit("MODIFIED", rtype, updated, current)

    def _collect_garbage(self, removed: Objs) -> None:
        """Background-propagation cascade: delete dependents whose every owner is gone."""
        queue: Objs = list(removed)
        while queue:
            owner = queue.pop()
            owner_uid = owner["metadata"].get("uid")
            owner_ns = owner["metadata"].get("namespace", "")
            with self._lock:
                dependents = [
                    (plural, copy.deepcopy(obj))
                    for plural, table in self._objects.items()
                    for (ns, _), obj in table.items()
                    if ns == owner_ns
                    and any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or [])
                    and not self._has_live_owner(ns, obj)
                ]
            for plural, obj in dependents:
                try:
                    self.delete(plural, obj["metadata"].get("namespace"), obj["metadata"]["name"], actor=GC_ACTOR)
                except ApiError as error:
                    if error.code != 404:
                        raise

    def _has_live_owner(self, ns: str, obj: Obj) -> bool:
        live_uids = {
            o["metadata"]["uid"]
            for table in self._objects.values()
            for (o_ns, _), o in table.items()
            if o_ns in (ns, "")
        }
        return any(ref.get("uid") in live_uids for ref in obj["metadata"].get("ownerReferences") or [])
