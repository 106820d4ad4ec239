"""The simulated Deployment controller: RollingUpdate rollouts over ReplicaSets.

`ClusterSimulator` (`simulator.py`) runs one `DeploymentController`. Each sync of a Deployment finds
its ReplicaSets (controller ownerReference), picks the new one by template (ignoring the
`pod-template-hash` label) or creates `<name>-<hash>`, keeps the `deployment.kubernetes.io/revision`
annotations, applies one round of `rolling.rolling_update_step` (scale the new RS up within
maxSurge, else old RSs down within maxUnavailable, counting only *available* Pods as written by the
ReplicaSet controller), deletes idle old RSs beyond `revisionHistoryLimit` once complete, and writes
`status` through `deployments/status` with the upstream conditions. A sync runs on every Deployment
or owned ReplicaSet change, at the progress deadline of a stalled rollout, and on a periodic resync.
Only the RollingUpdate strategy is modelled; `paused` and proportional scaling are not.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from emulators.cluster.errors import ApiError
from emulators.cluster.replicaset import controlled_by
from emulators.cluster.rolling import (
    HASH_LABEL,
    REVISION_ANNOTATION,
    RsCounts,
    get_condition,
    is_complete,
    new_rs_target,
    pod_template_hash,
    progressing_condition_for_new_rs,
    replica_sets_to_clean_up,
    resolve_fenceposts,
    revision_of,
    rolling_update_step,
    rollout_status,
    set_condition,
    template_without_hash,
)
from emulators.cluster.simclock import SimClock, WallClock, parse_time
from emulators.cluster.workqueue import StoreController

if TYPE_CHECKING:
    from emulators.cluster.store import ObjectStore

log = logging.getLogger(__name__)

CONTROLLER_ACTOR = "system:serviceaccount:kube-system:deployment-controller"
DESIRED_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_ANNOTATION = "deployment.kubernetes.io/max-replicas"


def _counts(rs: Mapping[str, Any]) -> RsCounts:
    return RsCounts(
        name=rs["metadata"]["name"],
        replicas=int((rs.get("spec") or {}).get("replicas", 0)),
        available=int((rs.get("status") or {}).get("availableReplicas", 0)),
        created=parse_time(rs["metadata"].get("creationTimestamp")) or 0.0,
    )


class DeploymentController(StoreController):
    def __init__(self, store: ObjectStore, *, clock: SimClock | None = None, resync_period_s: float = 5.0) -> None:
        super().__init__(store, "deployment", resync_period_s=resync_period_s)
        self._clock = clock or WallClock()

    def _on_event(self, kind: str, resource: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if resource == "deployments" and kind != "DELETED":
            self._queue.add(f"{meta.get('namespace')}/{meta.get('name')}")
        elif resource == "replicasets":
            for ref in meta.get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Deployment":
                    self._queue.add(f"{meta.get('namespace')}/{ref.get('name')}")

    def _all_keys(self) -> list[str]:
        items, _ = self._store.list("deployments", read_only=True)
        return [f"{d['metadata']['namespace']}/{d['metadata']['name']}" for d in items]

    # ------------------------------------------------------------------------------------------- sync

    def _sync(self, key: str) -> None:
        namespace, name = key.split("/", 1)
        deployment = self._store.get("deployments", namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        now = self._clock.now()
        spec = deployment.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        surge, _ = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired)
        items, _ = self._store.list("replicasets", namespace)
        owned = [rs for rs in items if controlled_by(rs, deployment)]
        wanted = template_without_hash(spec.get("template") or {})
        new_rs = next(
            (rs for rs in owned if template_without_hash((rs.get("spec") or {}).get("template") or {}) == wanted), None
        )
        olds = [rs for rs in owned if rs is not new_rs]
        next_revision = max((revision_of(rs) for rs in olds), default=0) + 1
        working = copy.deepcopy(deployment)
        working.setdefault("status", {})
        if new_rs is None:
            all_replicas = sum(_counts(rs).replicas for rs in olds)
            new_rs = self._create_new_rs(working, next_revision, new_rs_target(desired, surge, all_replicas, 0))
            set_condition(working["status"], progressing_condition_for_new_rs(new_rs["metadata"]["name"], True, now))
        else:
            if revision_of(new_rs) < next_revision:
                new_rs = self._scale(new_rs, _counts(new_rs).replicas, desired, surge, revision=next_revision)
            if (
                spec.get("progressDeadlineSeconds") is not None
                and get_condition(working["status"], "Progressing") is None
            ):
                set_condition(
                    working["status"], progressing_condition_for_new_rs(new_rs["metadata"]["name"], False, now)
                )
        self._set_deployment_revision(deployment, revision_of(new_rs))
        targets = rolling_update_step(
            desired,
            rolling.get("maxSurge"),
            rolling.get("maxUnavailable"),
            _counts(new_rs),
            [_counts(rs) for rs in olds],
        )
        by_name = {rs["metadata"]["name"]: rs for rs in [new_rs, *olds]}
        for rs_name, replicas in targets.items():
            by_name[rs_name] = self._scale(by_name[rs_name], replicas, desired, surge)
        new_rs = by_name[new_rs["metadata"]["name"]]
        olds = [by_name[rs["metadata"]["name"]] for rs in olds]
        if not targets and is_complete(
            desired, int(deployment["metadata"].get("generation", 1)), deployment.get("status") or {}
        ):
            for doomed in replica_sets_to_clean_up(olds, int(spec.get("revisionHistoryLimit", 10))):
                self._delete_rs(namespace, doomed)
        status = rollout_status(working, new_rs, [new_rs, *olds], now)
        self._write_status(deployment, status)
        self._requeue_at_deadline(key, spec, status, now)

    def _requeue_at_deadline(self, key: str, spec: Mapping[str, Any], status: Mapping[str, Any], now: float) -> None:
        """A stalled rollout changes nothing in the store; wake up when its progress deadline passes."""
        deadline = spec.get("progressDeadlineSeconds")
        condition = get_condition(status, "Progressing")
        if deadline is None or condition is None or condition.get("status") != "True":
            return
        if condition.get("reason") == "NewReplicaSetAvailable":
            return
        since = parse_time(condition.get("lastUpdateTime")) or now
        self._queue.add_after(key, max(0.0, since + int(deadline) - now) + 1.05)

    # ------------------------------------------------------------------------------------------- writes

    def _create_new_rs(self, deployment: dict[str, Any], revision: int, replicas: int) -> dict[str, Any]:
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        collisions = int(deployment["status"].get("collisionCount", 0))
        template = copy.deepcopy(spec.get("template") or {})
        hash_value = pod_template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_value
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_value
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        desired = int(spec.get("replicas", 1))
        surge, _ = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired)
        rs_name = f"{meta['name']}-{hash_value}"
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION_ANNOTATION: str(revision),
                    DESIRED_ANNOTATION: str(desired),
                    MAX_ANNOTATION: str(desired + surge),
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds", 0)),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self._store.create("replicasets", meta["namespace"], body, actor=CONTROLLER_ACTOR)
        except ApiError as exc:
            if exc.code != 409:
                raise
            # A different template hashed to the same name: bump collisionCount, retry on the next sync.
            self._bump_collision_count(meta["namespace"], meta["name"], collisions + 1)
            raise
        log.info(
            "sim deployment %s/%s: created %s (revision %d)",
            meta["namespace"],
            meta["name"],
            rs_name,
            revision,
        )
        return created

    def _bump_collision_count(self, namespace: str, name: str, value: int) -> None:
        def update(current: dict[str, Any]) -> dict[str, Any]:
            current.setdefault("status", {})["collisionCount"] = value
            return current

        self._store.mutate("deployments", namespace, name, update, subresource="status", actor=CONTROLLER_ACTOR)

    def _scale(
        self, rs: dict[str, Any], replicas: int, desired: int, surge: int, *, revision: int | None = None
    ) -> dict[str, Any]:
        """Set spec.replicas (and the bookkeeping annotations) the way `scaleReplicaSet` does."""

        def update(current: dict[str, Any]) -> dict[str, Any] | None:
            before = copy.deepcopy(current)
            current["spec"]["replicas"] = replicas
            annotations = current["metadata"].setdefault("annotations", {})
            annotations[DESIRED_ANNOTATION] = str(desired)
            annotations[MAX_ANNOTATION] = str(desired + surge)
            if revision is not None:
                annotations[REVISION_ANNOTATION] = str(revision)
            return None if current == before else current

        meta = rs["metadata"]
        updated = self._store.mutate("replicasets", meta["namespace"], meta["name"], update, actor=CONTROLLER_ACTOR)
        if updated is not None:
            log.info("sim deployment: scaled %s/%s to %d", meta["namespace"], meta["name"], replicas)
            return updated
        return rs

    def _set_deployment_revision(self, deployment: Mapping[str, Any], revision: int) -> None:
        def update(current: dict[str, Any]) -> dict[str, Any] | None:
            annotations = current["metadata"].setdefault("annotations", {})
            if annotations.get(REVISION_ANNOTATION) == str(revision):
                return None
            annotations[REVISION_ANNOTATION] = str(revision)
            return current

        meta = deployment["metadata"]
        self._store.mutate("deployments", meta["namespace"], meta["name"], update, actor=CONTROLLER_ACTOR)

    def _delete_rs(self, namespace: str, name: str) -> None:
        try:
            self._store.delete("replicasets", namespace, name, actor=CONTROLLER_ACTOR)
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _write_status(self, deployment: Mapping[str, Any], status: dict[str, Any]) -> None:
        uid = deployment["metadata"].get("uid")

        def update(current: dict[str, Any]) -> dict[str, Any] | None:
            if current["metadata"].get("uid") != uid or (current.get("status") or {}) == status:
                return None
            current["status"] = status
            return current

        meta = deployment["metadata"]
        self._store.mutate(
            "deployments", meta["namespace"], meta["name"], update, subresource="status", actor=CONTROLLER_ACTOR
        )
