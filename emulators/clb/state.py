"""The CLB emulator's in-memory state and the bookkeeping every action shares.

`ClbState` holds CLB instances, listeners, targets and async tasks, allocates ids and loopback VIPs, and
enforces the per-CLB instance lock (a CLB with a running task refuses writes with
`FailedOperation.ResourceInOperating`). It is not thread-safe by itself: `ClbModel` (model.py) owns the
one lock and calls the action handlers in `actions_instances.py` / `actions_targets.py` with it held.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.errors import LB_ID_NOT_FOUND, LISTENER_ID_NOT_FOUND, RESOURCE_IN_OPERATING, ClbApiError
from emulators.clb.views import HEALTH_CLOSE, HEALTH_UNKNOWN

TASK_SUCCEEDED = 0
TASK_FAILED = 1
TASK_RUNNING = 2

L4_PROTOCOLS = frozenset({"TCP", "UDP", "TCP_SSL", "QUIC"})
L7_PROTOCOLS = frozenset({"HTTP", "HTTPS"})


def default_health_check(protocol: str) -> dict[str, Any]:
    """The HealthCheck a listener gets when the caller sends none."""
    return {
        "HealthSwitch": 1,
        "TimeOut": 2,
        "IntervalTime": 5,
        "HealthNum": 3,
        "UnHealthNum": 3,
        "HttpCode": 31,
        "HttpCheckPath": "/",
        "HttpCheckDomain": "",
        "HttpCheckMethod": "HEAD",
        "CheckPort": -1,
        "ContextType": None,
        "SendContext": None,
        "RecvContext": None,
        "CheckType": "PING" if protocol in ("UDP", "QUIC") else ("HTTP" if protocol in L7_PROTOCOLS else "TCP"),
        "HttpVersion": None,
        "SourceIpType": 0,
        "ExtendedCode": None,
    }


@dataclass
class TargetState:
    ip: str
    port: int
    weight: int
    health: str
    registered_at: float
    tag: str = ""


@dataclass
class ListenerState:
    listener_id: str
    protocol: str
    port: int
    name: str
    health_check: dict[str, Any]
    scheduler: str
    session_expire_time: int
    created_at: float
    deregister_target_rst: bool = False
    targets: dict[tuple[str, int], TargetState] = field(default_factory=dict)

    @property
    def health_enabled(self) -> bool:
        return bool(self.health_check.get("HealthSwitch", 1))

    def initial_health(self) -> str:
        return HEALTH_UNKNOWN if self.health_enabled else HEALTH_CLOSE


@dataclass
class LoadBalancerState:
    lb_id: str
    name: str
    lb_type: str
    vip: str
    vpc_id: str
    subnet_id: str
    tags: list[tuple[str, str]]
    status: int
    created_at: float
    project_id: int = 0
    address_ip_version: str = "ipv4"
    listeners: dict[str, ListenerState] = field(default_factory=dict)

    def target_count(self) -> int:
        return sum(len(listener.targets) for listener in self.listeners.values())


@dataclass
class TaskState:
    task_id: str
    lb_ids: tuple[str, ...]
    done_at: float
    apply: Callable[[], None] | None
    fail_message: str | None = None
    finished: bool = False
    # Undoes what the call applied at once (CreateLoadBalancer inserts the CLB in Status 0) if the task fails.
    rollback: Callable[[], None] | None = None
    # CreateLoadBalancer's task reports the new ids in DescribeTaskStatus.LoadBalancerIds; others report null.
    created_lb_ids: tuple[str, ...] | None = None

    def status(self) -> int:
        if not self.finished:
            return TASK_RUNNING
        return TASK_FAILED if self.fail_message else TASK_SUCCEEDED


class ClbState:
    """Data plus the shared rules of every write: id allocation, VIPs, the instance lock, async tasks."""

    def __init__(self, config: ClbEmulatorConfig, clock: Callable[[], float], wall_clock: Callable[[], float]):
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.lbs: dict[str, LoadBalancerState] = {}
        self.tasks: dict[str, TaskState] = {}
        # ClientToken -> (LoadBalancerIds, DealName, TaskId) of the CreateLoadBalancer call that used it.
        self.client_tokens: dict[str, tuple[list[str], str, str]] = {}
        self.deals: dict[str, str] = {}
        self.changed = False
        # Set by the model for one call when a fault asks the next task to end in Status 1.
        self.fail_next_task: str | None = None
        # Likewise, extra seconds the next task takes (a slow task keeps the CLB locked that much longer).
        self.slow_next_task_s = 0.0
        self._rng = random.Random(config.id_seed)
        self._vip_seq = 0
        self._vip_block = config.vip_block

    # -- ids -------------------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        alphabet = string.ascii_lowercase + string.digits
        while True:
            candidate = prefix + "-" + "".join(self._rng.choice(alphabet) for _ in range(8))
            if candidate not in self.lbs and not any(candidate in lb.listeners for lb in self.lbs.values()):
                return candidate

    def new_request_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def next_vip(self) -> str:
        """127.1.B.N for the N-th CLB (N from 1, B = `vip_block`), rolling into 127.1.B+1.x after 254 so no VIP
        ends in .0/.255."""
        self._vip_seq += 1
        index = self._vip_seq - 1
        return f"127.1.{(self._vip_block + index // 254) % 255}.{index % 254 + 1}"

    def note_vip(self, vip: str) -> None:
        """Keep the VIP counter past a seeded VIP so later CLBs never reuse it."""
        parts = vip.split(".")
        if len(parts) == 4 and parts[:2] == ["127", "1"] and parts[2].isdigit() and parts[3].isdigit():
            block = (int(parts[2]) - self._vip_block) % 255
            self._vip_seq = max(self._vip_seq, block * 254 + int(parts[3]))

    # -- lookups ---------------------------------------------------------------------------------------
    def get_lb(self, lb_id: str) -> LoadBalancerState:
        lb = self.lbs.get(lb_id)
        if lb is None:
            raise ClbApiError(LB_ID_NOT_FOUND, f"LoadBalancer {lb_id} not exist; check the LoadBalancerId.")
        return lb

    def get_listener(self, lb: LoadBalancerState, listener_id: str) -> ListenerState:
        listener = lb.listeners.get(listener_id)
        if listener is None:
            raise ClbApiError(
                LISTENER_ID_NOT_FOUND,
                f"some ListenerId {listener_id} not found in LoadBalancer {lb.lb_id}; describe its listeners.",
            )
        return listener

    # -- the instance lock and async tasks -------------------------------------------------------------
    def running_task_on(self, lb_id: str) -> TaskState | None:
        for task in self.tasks.values():
            if not task.finished and lb_id in task.lb_ids:
                return task
        return None

    def ensure_unlocked(self, lb: LoadBalancerState) -> None:
        task = self.running_task_on(lb.lb_id)
        if task is not None:
            raise ClbApiError(
                RESOURCE_IN_OPERATING,
                f"LoadBalancer {lb.lb_id} is being operated on by task {task.task_id}; retry later.",
            )

    def start_task(
        self,
        task_id: str,
        lb_ids: list[str],
        apply: Callable[[], None] | None,
        rollback: Callable[[], None] | None = None,
        created_lb_ids: list[str] | None = None,
    ) -> None:
        """Record an async task that applies `apply` after the configured duration (at once when it is 0)."""
        duration = self.config.task_duration_s + self.slow_next_task_s
        task = TaskState(
            task_id=task_id,
            lb_ids=tuple(lb_ids),
            done_at=self.clock() + duration,
            apply=apply,
            fail_message=self.fail_next_task,
            rollback=rollback,
            created_lb_ids=tuple(created_lb_ids) if created_lb_ids is not None else None,
        )
        self.fail_next_task = None
        self.slow_next_task_s = 0.0
        self.tasks[task_id] = task
        if duration <= 0:
            self._finish(task)

    def record_done_task(self, task_id: str, lb_ids: list[str]) -> None:
        """A synchronous write still answers DescribeTaskStatus for its RequestId (Status 0)."""
        self.tasks[task_id] = TaskState(task_id, tuple(lb_ids), self.clock(), None, finished=True)

    def settle(self) -> None:
        """Finish every task whose time has come, in completion order."""
        now = self.clock()
        due = sorted((t for t in self.tasks.values() if not t.finished and t.done_at <= now), key=lambda t: t.done_at)
        for task in due:
            self._finish(task)

    def _finish(self, task: TaskState) -> None:
        task.finished = True
        if task.fail_message is None:
            if task.apply is not None:
                task.apply()
        elif task.rollback is not None:
            task.rollback()
        task.apply = task.rollback = None
        self.changed = True
