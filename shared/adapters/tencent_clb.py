"""`TencentClbGateway`: the `LoadBalancer` port over the real tencentcloud CLB SDK (`ClbClient`).

Built once per cold start by `shared.deps.build_deps` (`TencentClbGateway.from_settings`); the service,
bind, unbind, health and reconcile steps call it. Every request is a typed SDK request model sent
through `ClbClient`, so production and the emulator (via `Settings.clb_endpoint`) see identical,
TC3-signed traffic. Writes take a token from the shared per-region bucket in the Store first, transient
failures (a request that outlasts `clb_request_timeout_s` included) are retried under a deadline
(`clb_errors.call_with_retry`), and async writes wait for their task via DescribeTaskStatus. Field mapping
and chunking rules live in `clb_mapping`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tencentcloud.clb.v20180317 import clb_client, models
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from shared import heartbeat
from shared.adapters import clb_mapping as m
from shared.adapters.clb_errors import RetryPolicy, call_with_retry
from shared.clock import SystemClock
from shared.config import Settings
from shared.domain.errors import NotFound, PermanentError, RetryableError
from shared.domain.limits import CLB_TASK_POLL_MAX_S, REQUEST_LEASE_FACTOR
from shared.domain.models import (
    Listener,
    ListenerSpec,
    LoadBalancerInfo,
    LoadBalancerSpec,
    Target,
    TargetHealth,
)
from shared.logging import get_logger
from shared.metrics import emit_metric
from shared.ports import BucketStore, Clock
from shared.ratelimit import SharedRateLimiter

log = get_logger("shared.adapters.clb")

# Token-bucket families: the 20 req/s CLB limit is per API, so actions that hit the same API family
# share a bucket, and every function instance shares it through the Store.
_WRITE_FAMILIES = {
    "CreateLoadBalancer": "lb",
    "DeleteLoadBalancer": "lb",
    "CreateListener": "listener",
    "ModifyListener": "listener",
    "DeleteListener": "listener",
    "BatchRegisterTargets": "register",
    "BatchDeregisterTargets": "deregister",
    "BatchModifyTargetWeight": "weight",
}
_BATCH_METRICS = {"BatchRegisterTargets": "targets_bound", "BatchDeregisterTargets": "targets_unbound"}
_BATCH_EVENTS = {
    "BatchRegisterTargets": "clb.targets.registered",
    "BatchDeregisterTargets": "clb.targets.deregistered",
}
_TASK_SUCCEEDED, _TASK_FAILED = 0, 1
_FORCE_DELETE_GUARDS = {"FailedOperation.TargetNumCheckRisk", "FailedOperation.TrafficCheckRisk"}
# A task is polled at once, then 0.1 s later and 1.5x longer each time up to the cap: a drain's weight 0
# counts as applied only once its task ends, and a fixed 0.5 s first wait added 0.5 s to most drains.
_TASK_POLL_FIRST_S, _TASK_POLL_MAX_S = 0.1, CLB_TASK_POLL_MAX_S
_TASK_FAILED_RETRY_S = 2.0


def build_clb_client(settings: Settings) -> clb_client.ClbClient:
    """The SDK client: role credentials (with session token), endpoint override for the emulator, and a
    request timeout well inside the lease (the SDK's own default, 60 s, outlasts it)."""
    secret_id, secret_key, token = settings.require_credentials()
    http_profile = HttpProfile(
        protocol=settings.clb_protocol, endpoint=settings.clb_endpoint, reqTimeout=settings.clb_request_timeout_s
    )
    return clb_client.ClbClient(
        credential.Credential(secret_id, secret_key, token),
        settings.region,
        ClientProfile(httpProfile=http_profile),
    )


class TencentClbGateway:
    """The CLB as the steps see it: blocking calls that return once the change is in effect."""

    def __init__(
        self,
        client: clb_client.ClbClient,
        *,
        region: str,
        clock: Clock | None = None,
        store: BucketStore | None = None,
        write_rate_per_s: float = 20.0,
        retry: RetryPolicy | None = None,
        task_timeout_s: float = 60.0,
        default_vpc_id: str | None = None,
    ) -> None:
        self._client = client
        # How long one request may block: the client's own setting, so the lease a request asks the
        # heartbeat for is the one it can really take.
        self._request_timeout_s = float(client.profile.httpProfile.reqTimeout)
        self._region = region
        self._clock: Clock = clock or SystemClock()
        self._store = store
        self._write_rate = write_rate_per_s
        self._retry = retry or RetryPolicy()
        self._task_timeout_s = task_timeout_s
        self._default_vpc_id = default_vpc_id
        self._limiters: dict[str, SharedRateLimiter] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, *, store: BucketStore | None = None, clock: Clock | None = None
    ) -> TencentClbGateway:
        return cls(
            build_clb_client(settings),
            region=settings.region,
            clock=clock,
            store=store,
            write_rate_per_s=settings.clb_write_rate_per_s,
            retry=RetryPolicy(deadline_s=settings.clb_call_deadline_s),
            task_timeout_s=settings.clb_task_timeout_s,
            default_vpc_id=settings.vpc_id,
        )

    # ------------------------------------------------------------------------------------ transport

    def _call(self, action: str, params: Mapping[str, Any], *, lb_id: str | None = None) -> dict[str, Any]:
        """Send one action as its typed SDK request; returns the response fields as a dict."""
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(params))
        method = getattr(self._client, action)
        throttle = self._take_write_token if action in _WRITE_FAMILIES else None

        def before_attempt(deadline: float) -> None:
            if throttle is not None:
                throttle(action, deadline)
            # Right before every attempt and task poll, after any wait for a write token: a fenced write
            # keeps its lease alive while it waits and sends no request its lease could lapse under.
            heartbeat.beat(REQUEST_LEASE_FACTOR * self._request_timeout_s)

        def send() -> dict[str, Any]:
            response = method(request)
            result: dict[str, Any] = json.loads(response.to_json_string())
            return result

        return call_with_retry(
            action,
            send,
            clock=self._clock,
            policy=self._retry,
            lb_id=lb_id,
            before_attempt=before_attempt,
        )

    def _take_write_token(self, action: str, deadline: float) -> None:
        if self._store is None:
            return
        family = _WRITE_FAMILIES[action]
        limiter = self._limiters.get(family)
        if limiter is None:
            limiter = SharedRateLimiter(
                self._store,
                self._clock,
                bucket=f"clb-write:{self._region}:{family}",
                rate_per_s=self._write_rate,
                burst=max(self._write_rate, 1.0),
            )
            self._limiters[family] = limiter
        # Waiting for a token counts against the call's own deadline, never beyond it.
        limiter.acquire(1, max_wait_s=max(deadline - self._clock.monotonic(), 0.0))

    def _wait_task(self, action: str, task_id: str, *, lb_id: str | None) -> list[str]:
        """Poll DescribeTaskStatus until the async task ends; returns its LoadBalancerIds."""
        deadline = self._clock.monotonic() + self._task_timeout_s
        interval = _TASK_POLL_FIRST_S
        while True:
            status = self._call("DescribeTaskStatus", {"TaskId": task_id}, lb_id=lb_id)
            code = status.get("Status")
            if code == _TASK_SUCCEEDED:
                return [str(i) for i in status.get("LoadBalancerIds") or []]
            if code == _TASK_FAILED:
                # A task fails for transient reasons (instance lock, backend busy) as often as for bad
                # input, and the step re-reads the CLB before writing again: retry it (the platform's
                # async retries), and let the dead-letter queue catch one that keeps failing.
                raise RetryableError(
                    f"CLB {action} on {lb_id or '-'} failed asynchronously (task {task_id}): "
                    f"{status.get('Message') or 'no message'}; the step is retried and dead-lettered if it "
                    "keeps failing",
                    delay_s=_TASK_FAILED_RETRY_S,
                    code="TaskFailed",
                )
            if self._clock.monotonic() + interval > deadline:
                raise RetryableError(
                    f"CLB {action} on {lb_id or '-'}: task {task_id} still running after "
                    f"{self._task_timeout_s:.0f}s; the step will re-check the CLB state on retry",
                    delay_s=5.0,
                    code="TaskTimeout",
                )
            self._clock.sleep(interval)
            interval = min(interval * 1.5, _TASK_POLL_MAX_S)

    def _write_and_wait(self, action: str, params: Mapping[str, Any], *, lb_id: str | None) -> dict[str, Any]:
        response = self._call(action, params, lb_id=lb_id)
        self._wait_task(action, str(response["RequestId"]), lb_id=lb_id)
        return response

    # ------------------------------------------------------------------------------------ load balancers

    def create_load_balancer(self, spec: LoadBalancerSpec) -> LoadBalancerInfo:
        params = m.create_load_balancer_params(spec, default_vpc_id=self._default_vpc_id)
        if params["LoadBalancerType"] == "INTERNAL" and "VpcId" not in params:
            raise PermanentError(
                f"cannot create internal CLB {spec.name!r}: no VPC id; set CLB_DIRECT_VPC_ID or the spec's vpc_id",
                code="MissingParameter",
            )
        response = self._call("CreateLoadBalancer", params)
        lb_ids = [str(i) for i in response.get("LoadBalancerIds") or []]
        if not lb_ids:
            # The API may answer before the id is allocated; the task carries it.
            lb_ids = self._wait_task("CreateLoadBalancer", str(response["RequestId"]), lb_id=None)
        if not lb_ids:
            raise RetryableError(
                f"CLB CreateLoadBalancer for {spec.name!r} returned no LoadBalancerId "
                f"(RequestId {response.get('RequestId')}); retry with the same ClientToken",
                delay_s=5.0,
                code="NoLoadBalancerId",
            )
        return self._wait_lb_ready(lb_ids[0])

    def _wait_lb_ready(self, lb_id: str) -> LoadBalancerInfo:
        deadline = self._clock.monotonic() + self._task_timeout_s
        interval = _TASK_POLL_FIRST_S
        while True:
            info = self.describe_load_balancer(lb_id)
            if info is not None and info.status == 1:
                log.info("clb.created", lb_id=lb_id, vips=info.vips)
                return info
            if self._clock.monotonic() + interval > deadline:
                raise RetryableError(
                    f"CLB {lb_id} not ready (Status 1) after {self._task_timeout_s:.0f}s; "
                    "the service step will adopt it on retry",
                    delay_s=5.0,
                    code="LoadBalancerNotReady",
                )
            self._clock.sleep(interval)
            interval = min(interval * 1.5, _TASK_POLL_MAX_S)

    def describe_load_balancer(self, lb_id: str) -> LoadBalancerInfo | None:
        try:
            response = self._call("DescribeLoadBalancers", {"LoadBalancerIds": [lb_id]}, lb_id=lb_id)
        except NotFound:
            return None
        found = [m.load_balancer_info(raw) for raw in response.get("LoadBalancerSet") or []]
        return next((lb for lb in found if lb.lb_id == lb_id), None)

    def find_load_balancers(self, tags: Mapping[str, str]) -> list[LoadBalancerInfo]:
        if not tags or len(tags) > m.MAX_FILTERS:
            raise PermanentError(
                f"find_load_balancers needs 1..{m.MAX_FILTERS} tags, got {len(tags)}", code="InvalidFilter"
            )
        found: list[LoadBalancerInfo] = []
        offset = 0
        while True:
            params = {"Filters": m.tag_filters(tags), "Offset": offset, "Limit": m.DESCRIBE_PAGE_LIMIT}
            response = self._call("DescribeLoadBalancers", params)
            page = response.get("LoadBalancerSet") or []
            found.extend(m.load_balancer_info(raw) for raw in page)
            offset += len(page)
            if not page or offset >= int(response.get("TotalCount") or 0):
                break
        # The tag filter is exact on the server; checking again keeps a lax emulator or API from
        # handing us someone else's CLB.
        return [lb for lb in found if all(lb.tags.get(k) == v for k, v in tags.items())]

    def delete_load_balancer(self, lb_id: str) -> None:
        try:
            try:
                self._write_and_wait("DeleteLoadBalancer", {"LoadBalancerIds": [lb_id]}, lb_id=lb_id)
            except PermanentError as exc:
                # The API refuses a CLB that still has >= 20 backends or recent traffic. Only this one,
                # tagged ours, whose Service is gone, is then deleted with ForceDelete.
                if exc.code not in _FORCE_DELETE_GUARDS:
                    raise
                log.info("clb.delete.forced", lb_id=lb_id, guard=exc.code)
                self._write_and_wait(
                    "DeleteLoadBalancer", {"LoadBalancerIds": [lb_id], "ForceDelete": True}, lb_id=lb_id
                )
        except NotFound:
            log.info("clb.delete.already_gone", lb_id=lb_id)
            return
        log.info("clb.deleted", lb_id=lb_id)

    # ------------------------------------------------------------------------------------ listeners

    def list_listeners(self, lb_id: str) -> list[Listener]:
        response = self._call("DescribeListeners", {"LoadBalancerId": lb_id}, lb_id=lb_id)
        listeners = (m.listener_from(raw) for raw in response.get("Listeners") or [])
        return [listener for listener in listeners if listener is not None]

    def create_listener(self, lb_id: str, spec: ListenerSpec) -> str:
        try:
            response = self._write_and_wait("CreateListener", m.create_listener_params(lb_id, spec), lb_id=lb_id)
        except PermanentError as exc:
            # A retried create whose first response was lost finds the port taken: by our own listener.
            existing = self._listener_on_port(lb_id, spec) if exc.code == "InvalidParameter.PortCheckFailed" else None
            if existing is None:
                raise
            log.info("clb.listener.adopted", lb_id=lb_id, listener_id=existing.listener_id, port=spec.port)
            return existing.listener_id
        listener_ids = [str(i) for i in response.get("ListenerIds") or []]
        if not listener_ids:
            existing = self._listener_on_port(lb_id, spec)
            if existing is None:
                raise RetryableError(
                    f"CLB CreateListener on {lb_id} port {spec.port} returned no ListenerId "
                    f"(RequestId {response.get('RequestId')}); retry",
                    delay_s=2.0,
                    code="NoListenerId",
                )
            listener_ids = [existing.listener_id]
        if spec.scheduler == "IP_HASH":
            self.modify_listener(lb_id, listener_ids[0], spec)
        log.info("clb.listener.created", lb_id=lb_id, listener_id=listener_ids[0], port=spec.port)
        return listener_ids[0]

    def _listener_on_port(self, lb_id: str, spec: ListenerSpec) -> Listener | None:
        return next(
            (
                listener
                for listener in self.list_listeners(lb_id)
                if listener.port == spec.port and listener.protocol == spec.protocol
            ),
            None,
        )

    def modify_listener(self, lb_id: str, listener_id: str, spec: ListenerSpec) -> None:
        self._write_and_wait("ModifyListener", m.modify_listener_params(lb_id, listener_id, spec), lb_id=lb_id)

    def delete_listener(self, lb_id: str, listener_id: str) -> None:
        try:
            self._write_and_wait("DeleteListener", {"LoadBalancerId": lb_id, "ListenerId": listener_id}, lb_id=lb_id)
        except NotFound:
            log.info("clb.listener.already_gone", lb_id=lb_id, listener_id=listener_id)

    # ------------------------------------------------------------------------------------ targets

    def list_targets(self, lb_id: str) -> list[Target]:
        listener_ids = [listener.listener_id for listener in self.list_listeners(lb_id)]
        found: list[Target] = []
        for part in m.chunks(listener_ids, m.LISTENERS_PER_DESCRIBE_TARGETS):
            response = self._call("DescribeTargets", {"LoadBalancerId": lb_id, "ListenerIds": part}, lb_id=lb_id)
            found.extend(m.targets_from(response.get("Listeners") or []))
        return found

    def register_targets(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._batch_targets("BatchRegisterTargets", lb_id, targets)

    def deregister_targets(self, lb_id: str, targets: Sequence[Target]) -> None:
        self._batch_targets("BatchDeregisterTargets", lb_id, targets)

    def _batch_targets(self, action: str, lb_id: str, targets: Sequence[Target]) -> None:
        # Batch(De)RegisterTargets answer synchronously (no task to wait for): trust FailListenerIdSet and let the
        # reconcile loop verify with DescribeTargets.
        for part in m.chunks(list(targets), m.BATCH_TARGETS_PER_CALL):
            params = {"LoadBalancerId": lb_id, "Targets": [m.batch_target(t) for t in part]}
            response = self._call(action, params, lb_id=lb_id)
            failed = [str(i) for i in response.get("FailListenerIdSet") or []]
            if failed:
                raise PermanentError(
                    f"CLB {action} on {lb_id} failed for listeners {', '.join(sorted(set(failed)))}: "
                    f"{response.get('Message') or 'no message'} (RequestId {response.get('RequestId')}); "
                    "check that the listeners exist and the targets are valid VPC IPs",
                    code="FailListenerIdSet",
                )
            log.info(_BATCH_EVENTS[action], lb_id=lb_id, count=len(part))
            emit_metric(_BATCH_METRICS[action], len(part), "Count", lb_id=lb_id)

    def set_target_weights(self, lb_id: str, targets: Sequence[Target]) -> None:
        for modify_list in m.weight_modify_lists(targets):
            self._write_and_wait(
                "BatchModifyTargetWeight", {"LoadBalancerId": lb_id, "ModifyList": modify_list}, lb_id=lb_id
            )
        drained = sum(1 for t in targets if t.weight == 0)
        if drained:
            emit_metric("targets_drained", drained, "Count", lb_id=lb_id)
        if len(targets) > drained:
            emit_metric("targets_weighted", len(targets) - drained, "Count", lb_id=lb_id)

    def describe_target_health(self, lb_ids: Sequence[str]) -> dict[str, list[TargetHealth]]:
        result: dict[str, list[TargetHealth]] = {lb_id: [] for lb_id in lb_ids}
        for part in m.chunks(list(dict.fromkeys(lb_ids)), m.LBS_PER_DESCRIBE_HEALTH):
            response = self._call("DescribeTargetHealth", {"LoadBalancerIds": part})
            for lb_id, health in m.target_health_from(response.get("LoadBalancers") or []).items():
                result.setdefault(lb_id, []).extend(health)
        return result
