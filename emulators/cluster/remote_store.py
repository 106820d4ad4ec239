"""`ApiServerStore`: the node agent's view of ANY Kubernetes API server, through the real `kubernetes` client.

The simulated kubelet (`kubelet.py`) and scheduler (`scheduler.py`) are written against the small part
of `ObjectStore` they use: `subscribe`, `list`/`get` of Pods, `mutate(..., subresource="status")`,
`bind`, `delete` and `create` of Events. This class offers that same surface over HTTP, so the same
agent that serves the in-process simulator also runs as a client of a real kube-apiserver (`emulators/controlplane/`):

- reads come from one shared informer: list all Pods, then watch from the list's resourceVersion with
  bookmarks; a 410 Gone relists and reports every change it missed (DELETED for vanished Pods);
- every write goes out as the identity the real component has (`actor`): `system:node:<name>` (client
  certificate; the Node authorizer and NodeRestriction decide) for status patches and the final
  grace-0 delete, `system:kube-scheduler` for `pods/binding`;
- `mutate` on `pods/status` reads the Pod fresh, lets the kubelet compute the whole desired status, then
  sends only what changed as a strategic-merge patch with the Pod UID as precondition, as the kubelet's
  status manager does, so a condition someone else wrote meanwhile (our readiness gate) is never undone.
`register_nodes` creates the Node objects (as each node) with a Ready condition and their InternalIP.
API errors come back as the simulator's `ApiError`, so the agent's error handling is the same for both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from emulators.cluster.errors import ApiError, status_body

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Subscriber = Callable[[str, str, Obj], None]
WATCH_TIMEOUT_S = 60


def _api_error(exc: ApiException) -> ApiError:
    import json

    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict) or "code" not in body:
        body = status_body(int(exc.status or 500), str(exc.reason or ""), str(exc.body or exc.reason))
    return ApiError(body)


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The `status` part of a strategic-merge patch taking `current` to `desired`.

    Scalars and atomic lists (`containerStatuses`) are sent when they differ; `conditions` (merge key
    `type`) only carries the entries that changed, with null for keys they dropped, so conditions owned
    by others are neither sent nor disturbed.
    """
    patch: dict[str, Any] = {}
    for field, value in desired.items():
        if field == "conditions":
            before = {c.get("type"): c for c in current.get("conditions") or []}
            changed = [
                # A key the new condition lacks (a reason that no longer applies) is deleted with null, as
                # in any two-way merge patch; otherwise the merge would keep the stale one.
                {**dict.fromkeys(before.get(c.get("type")) or {}), **c}
                for c in value or []
                if before.get(c.get("type")) != c
            ]
            if changed:
                patch["conditions"] = changed
        elif current.get(field) != value:
            patch[field] = value
    return patch


class _Informer:
    """List + watch of all Pods; keeps a cache and fans events out to subscribers."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Obj] = {}
        self._subscribers: list[Subscriber] = []
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="node-agent-informer", daemon=True)
            self._thread.start()
        self._synced.wait(60)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def items(self) -> list[Obj]:
        with self._lock:
            return [dict(obj) for obj in self._cache.values()]

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]
        if self._thread is not None:
            self._thread.join(10)

    def _emit(self, kind: str, obj: Obj) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(kind, "pods", obj)
            except Exception:
                log.exception("node agent: a subscriber failed on %s", kind)

    def _relist(self) -> str:
        listing = self._core.api_client.sanitize_for_serialization(self._core.list_pod_for_all_namespaces())
        fresh = {_key(obj): obj for obj in listing.get("items") or []}
        with self._lock:
            gone = [obj for key, obj in self._cache.items() if key not in fresh]
            self._cache = fresh
        for obj in gone:
            self._emit("DELETED", obj)
        for obj in fresh.values():
            self._emit("MODIFIED", obj)
        self._synced.set()
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _run(self) -> None:
        version = ""
        while not self._stopping.is_set():
            try:
                if not version:
                    version = self._relist()
                version = self._watch_from(version)
            except ApiException as exc:
                if exc.status == 410:
                    version = ""
                    continue
                log.warning("node agent: pod watch failed (%s); relisting in 1 s", exc.status)
                version = ""
                self._stopping.wait(1.0)
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("node agent: pod watch broke; relisting in 1 s")
                version = ""
                self._stopping.wait(1.0)

    def _watch_from(self, version: str) -> str:
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        for event in self._watch.stream(  # type: ignore[no-untyped-call]
            self._core.list_pod_for_all_namespaces,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
        ):
            if self._stopping.is_set():
                break
            kind, obj = event["type"], event["raw_object"]
            if kind == "ERROR":
                if obj.get("code") == 410:
                    return ""
                raise RuntimeError(f"watch error: {obj}")
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            with self._lock:
                if kind == "DELETED":
                    self._cache.pop(_key(obj), None)
                else:
                    self._cache[_key(obj)] = obj
            self._emit(kind, obj)
        return version


class ApiServerStore:
    """The `ObjectStore` subset the kubelet and scheduler use, served by a real API server."""

    def __init__(self, clients: Callable[[str], client.ApiClient], *, reader: str = "system:kube-scheduler") -> None:
        self._clients = clients
        self._reader = reader
        self._informer = _Informer(clients(reader))

    @classmethod
    def from_kubeconfigs(cls, kubeconfig_for: Callable[[str], str]) -> ApiServerStore:
        """One client per identity, each from the kubeconfig `kubeconfig_for(actor)` names (built once)."""
        built: dict[str, client.ApiClient] = {}
        lock = threading.Lock()

        def clients(actor: str) -> client.ApiClient:
            with lock:
                if actor not in built:
                    built[actor] = config.new_client_from_config(config_file=kubeconfig_for(actor))  # type: ignore[no-untyped-call]
                return built[actor]

        store = cls(clients)
        store._built = built
        return store

    _built: dict[str, client.ApiClient] | None = None

    def close(self) -> None:
        self._informer.stop()
        for api in (self._built or {}).values():
            api.close()  # type: ignore[no-untyped-call]

    def _core(self, actor: str) -> client.CoreV1Api:
        return client.CoreV1Api(self._clients(actor))

    # ------------------------------------------------------------------------------------ reads

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        return self._informer.subscribe(callback)

    def list(self, resource: str, namespace: str | None = None, **_selectors: Any) -> tuple[list[Obj], str]:
        if resource != "pods":
            raise ValueError(f"the node agent reads only pods, not {resource}")
        items = self._informer.items()
        if namespace is not None:
            items = [obj for obj in items if _key(obj)[0] == namespace]
        return items, ""

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        if resource != "pods":
            raise ValueError(f"the node agent reads only pods, not {resource}")
        core = self._core(self._reader)
        try:
            pod = core.read_namespaced_pod(name, namespace or "default")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc) from exc
        result: Obj = core.api_client.sanitize_for_serialization(pod)
        return result

    # ------------------------------------------------------------------------------------ writes

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
        if (resource, subresource) != ("pods", "status"):
            raise ValueError("the node agent writes only pods/status")
        current = self.get("pods", namespace, name)
        if current is None:
            raise ApiError(status_body(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}))
        desired = fn(current)
        if desired is None:
            return None
        changes = status_patch(current.get("status") or {}, desired.get("status") or {})
        if not changes:
            return None
        body = {"metadata": {"uid": current["metadata"]["uid"]}, "status": changes}
        core = self._core(actor)
        try:
            updated = core.patch_namespaced_pod_status(name, namespace or "default", body)
        except ApiException as exc:
            raise _api_error(exc) from exc
        result: Obj = core.api_client.sanitize_for_serialization(updated)
        return result

    def create(self, resource: str, namespace: str | None, obj: Obj, *, actor: str = "system:admin") -> Obj:
        """Create an Event (the kubelet's Killing/FailedPreStopHook records), as the node that saw it."""
        if resource != "events":
            raise ValueError(f"the node agent creates only events, not {resource}")
        core = self._core(actor)
        body: Any = obj
        try:
            created = core.create_namespaced_event(namespace or "default", body)
        except ApiException as exc:
            raise _api_error(exc) from exc
        result: Obj = core.api_client.sanitize_for_serialization(created)
        return result

    def bind(self, namespace: str, name: str, node_name: str, *, actor: str = "system:kube-scheduler") -> Obj:
        binding: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        core = self._core(actor)
        try:
            # The client models Binding's response as a V1Binding, but the server answers a Status.
            core.create_namespaced_binding(namespace, binding, _preload_content=False)
        except ApiException as exc:
            raise _api_error(exc) from exc
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}

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
        if resource != "pods":
            raise ValueError("the node agent deletes only pods")
        options = client.V1DeleteOptions(grace_period_seconds=grace_period_seconds)
        if preconditions:
            options.preconditions = client.V1Preconditions(uid=preconditions.get("uid"))
        try:
            self._core(actor).delete_namespaced_pod(name, namespace or "default", body=options, _preload_content=False)
        except ApiException as exc:
            raise _api_error(exc) from exc
        return None

    def register_nodes(self, nodes: Mapping[str, str]) -> None:
        """Create (or refresh) each Node as itself, Ready, with `nodes[name]` as its InternalIP."""
        for name, address in nodes.items():
            core = self._core(f"system:node:{name}")
            node: Any = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            }
            try:
                core.create_node(node)
            except ApiException as exc:
                if exc.status != 409:
                    raise _api_error(exc) from exc
            status = {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "clb-direct node agent is posting ready status",
                        }
                    ],
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                }
            }
            try:
                core.patch_node_status(name, status)
            except ApiException as exc:
                raise _api_error(exc) from exc
