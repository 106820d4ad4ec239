"""Seeded chaos scenarios: one seed draws a whole run of operations and faults, checked after every step.

A scenario starts a settled world (a direct-access Service over a few Pods), then plays 20-40 operations
drawn from the seed: Pod churn and rolling waves, Service and TkeServiceConfig edits, event loss,
duplication and reordering, relay restarts, CLB fault profiles (`tests.chaos.faults.CLB_PROFILES`),
Kubernetes 409/500s, KV store outages and restarts, crashes between a CLB call and its binding record,
and time passing with production's timers. The `Monitor` checks S1 on every gate write and S2/S3 after
every operation and every simulated second. Then the faults stop and L1 asks for the converged end state
within two reconcile periods. `run_scenario(seed)` returns what happened; `python -m tests.chaos` (`make
chaos`) runs many and prints the summary, and `make chaos SEED=n` replays one seed with its operations.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.faults import CLB_PROFILES
from tests.chaos.invariants import Monitor, Violation
from tests.chaos.world import TIMER_PERIODS_S, World, chaos_world

Operation = tuple[Any, ...]
CONVERGENCE_LIMIT_S = 2 * TIMER_PERIODS_S["reconcile"]
CONVERGENCE_STEP_S = 5.0

# Operation kind -> relative weight in a scenario.
MENU: dict[str, int] = {
    "add": 6,
    "wave": 3,
    "ready": 2,
    "unready": 2,
    "terminate": 4,
    "delete": 4,
    "relabel": 1,
    "reuse": 2,
    "sick": 2,
    "deliver": 6,
    "wait": 6,
    "events": 3,
    "relay-restart": 2,
    "clb-faults": 4,
    "clb-heal": 2,
    "kube-faults": 2,
    "store-outage": 2,
    "store-restart": 1,
    "crash": 2,
    "edit-ports": 2,
    "edit-tke-config": 2,
}


def draw_operations(seed: int) -> list[Operation]:
    """The seed's operations: a weighted draw from `MENU`, each with its own arguments."""
    rng = random.Random(seed)
    kinds, weights = zip(*MENU.items())
    ops: list[Operation] = []
    for _ in range(rng.randint(20, 40)):
        kind = rng.choices(kinds, weights)[0]
        if kind == "add":
            ops.append((kind, rng.random() < 0.8, rng.random() < 0.85))
        elif kind == "wave":
            ops.append((kind, rng.randint(1, 3)))
        elif kind in ("ready", "unready", "terminate", "delete", "relabel", "reuse", "sick"):
            ops.append((kind, rng.randrange(1000)))
        elif kind == "wait":
            ops.append((kind, rng.choice([1.0, 5.0, 15.0, 40.0])))
        elif kind == "events":
            ops.append((kind, rng.choice([0.0, 0.2, 0.5]), rng.choice([0.0, 0.3]), rng.random() < 0.5))
        elif kind == "clb-faults":
            ops.append((kind, rng.choice(sorted(CLB_PROFILES))))
        elif kind == "kube-faults":
            # 409s hit writes only; 500s hit every call, and at 30 % a step making five reads fails most of
            # the time, which is an API-server outage rather than a fault to ride through.
            ops.append((kind, rng.choice([0.0, 0.2, 0.4]), rng.choice([0.0, 0.05, 0.15])))
        elif kind == "store-outage":
            ops.append((kind, rng.choice([3.0, 10.0, 30.0])))
        elif kind == "crash":
            ops.append((kind, rng.choice([0.0, 0.3, 1.0])))
        elif kind == "edit-tke-config":
            ops.append((kind, rng.choice([5, 10, 15])))
        else:
            ops.append((kind,))
    return ops


@dataclass
class ScenarioResult:
    seed: int
    operations: list[Operation]
    violations: list[Violation]
    faults: Counter[str]
    converged_after_s: float | None
    wall_s: float
    error: str | None = None
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and self.error is None and self.converged_after_s is not None


class Scenario:
    """Plays one seed's operations in a world, with the monitor watching."""

    def __init__(self, world: World, seed: int, trace: Callable[[str], None] | None = None) -> None:
        self.world = world
        self.rng = random.Random(seed + 7)
        self.monitor = Monitor(world)
        self.faults: Counter[str] = Counter()
        self.trace = trace or (lambda line: None)
        self._blocking_profile = False

    # --- helpers --------------------------------------------------------------------------------------
    def _pick(self, index: int) -> str | None:
        live = self.world.live_pod_names()
        return live[index % len(live)] if live else None

    def _step(self) -> None:
        self.world.deliver()
        self.world.run_queue()

    def _pass_time(self, seconds: float) -> None:
        self.world.tick(seconds, after_each=self.monitor.check)

    def _update_blocked(self) -> None:
        # No progress is possible while every write fails, the store is down, or every invocation dies right
        # after its first CLB call (crash rate 1): S3's clock runs only outside those windows.
        self.monitor.blocked = self._blocking_profile or self.world.store.down or self.world.store.rate >= 1.0

    # --- operations -----------------------------------------------------------------------------------
    def apply(self, op: Operation) -> None:  # noqa: C901 - one branch per operation kind reads best
        world, kind = self.world, op[0]
        if kind == "add":
            world.add_pod(ready=op[1], healthy=op[2])
        elif kind == "wave":
            self._wave(op[1])
        elif kind in ("ready", "unready", "terminate", "delete", "relabel", "reuse", "sick"):
            self._pod_op(kind, op[1])
        elif kind == "deliver":
            self._step()
        elif kind == "wait":
            self._step()
            self._pass_time(op[1])
        elif kind == "events":
            world.drop_event_rate, world.duplicate_event_rate, world.reorder = op[1], op[2], op[3]
            world.queue.duplicate_rate = op[2]
            self.faults.update({"events-dropped-rate": op[1] > 0, "events-duplicated-rate": op[2] > 0})
        elif kind == "relay-restart":
            world.restart_relay()
            self.faults["relay-restart"] += 1
        elif kind == "clb-faults":
            world.model.clear_faults()
            profile = CLB_PROFILES[op[1]]
            world.set_faults(*profile.rules)
            self._blocking_profile = profile.blocking
            self.faults[f"clb:{op[1]}"] += 1
        elif kind == "clb-heal":
            world.model.clear_faults()
            self._blocking_profile = False
        elif kind == "kube-faults":
            world.kube.conflict_rate, world.kube.error_rate = op[1], op[2]
        elif kind == "store-outage":
            self._store_outage(op[1])
        elif kind == "store-restart":
            world.store.restart()
            self.faults["store-restart"] += 1
        elif kind == "crash":
            world.store.rate = op[1]
        elif kind == "edit-ports":
            world.toggle_port(82)
            self.faults["service-edit"] += 1
        elif kind == "edit-tke-config":
            world.edit_tke_config(op[1])
            self.faults["tke-service-config-edit"] += 1
        self._update_blocked()

    def _pod_op(self, kind: str, index: int) -> None:
        world = self.world
        name = self._pick(index)
        if name is None:
            return
        if kind == "ready":
            world.update_pod(name, containers_ready=True)
        elif kind == "unready":
            world.update_pod(name, containers_ready=False)
        elif kind == "terminate":
            world.terminate_pod(name)
        elif kind == "delete":
            world.delete_pod(name)
        elif kind == "relabel":
            pod = world.cluster.pods[("default", name)]
            world.update_pod(name, labels={"app": "other" if pod.labels.get("app") == "web" else "web"})
        elif kind == "reuse":
            world.delete_pod(name)
            world.add_pod(reuse_ip_of=name)
        elif kind == "sick":
            world.pods[name].healthy = not world.pods[name].healthy

    def _wave(self, size: int) -> None:
        """One wave of a rolling update: new Pods first, then the oldest retire (terminate, then go)."""
        world = self.world
        old = [n for n in world.live_pod_names() if world.cluster.pods[("default", n)].deletion_timestamp is None]
        for _ in range(size):
            world.add_pod()
        self._step()
        self._pass_time(5.0)
        retiring = old[:size]
        for name in retiring:
            world.terminate_pod(name)
        self._step()
        self._pass_time(10.0)
        for name in retiring:
            world.delete_pod(name)

    def _store_outage(self, seconds: float) -> None:
        self.world.store.down = True
        self._update_blocked()
        self.faults["store-outage"] += 1
        self._step()
        self._pass_time(seconds)
        self.world.store.down = False
        self._update_blocked()

    # --- the run --------------------------------------------------------------------------------------
    def converge(self) -> float | None:
        """Stop the faults and let time pass until the end state holds; None if not within the limit."""
        world = self.world
        world.end_chaos()
        self._blocking_profile = False
        self._update_blocked()
        started = world.clock.now()
        self._step()
        while True:
            problems = world.violations()
            if not problems:
                return world.clock.now() - started
            if world.clock.now() - started >= CONVERGENCE_LIMIT_S:
                self.trace("not converged: " + "; ".join(problems[:5]))
                return None
            self._pass_time(CONVERGENCE_STEP_S)

    def count_injected(self) -> None:
        world = self.world
        for call in world.model.calls()["calls"]:
            if call["error_code"]:
                self.faults[f"clb-error:{call['error_code']}"] += 1
            if call["dropped"]:
                self.faults["clb-response-lost"] += 1
        self.faults.update(
            {
                **world.kube.injected,
                "store-refused-calls": world.store.refused,
                "crash-after-clb-call": world.store.crashes,
                "events-lost": world.lost_events,
                "router-failures-resent": world.router_failures,
                "events-duplicated": world.duplicated_events,
                "timer-failures": sum(world.timer_failures.values()),
                "dead-letters": len(world.queue.dead_letters),
            }
        )


def run_scenario(seed: int, *, trace: Callable[[str], None] | None = None) -> ScenarioResult:
    """Play `seed`: setup, its operations with every check, then convergence (L1)."""
    operations = draw_operations(seed)
    started = time.monotonic()
    log: list[str] = []

    def note(line: str) -> None:
        log.append(line)
        if trace is not None:
            trace(line)

    with chaos_world(seed, durable_store=True) as world:
        scenario = Scenario(world, seed, note)
        error: str | None = None
        converged: float | None = None
        try:
            world.create_service(tke_config=True)
            for _ in range(3 + seed % 4):
                world.add_pod()
            scenario._step()
            scenario._pass_time(10.0)
            for index, op in enumerate(operations, start=1):
                scenario.monitor.operation = index
                note(f"#{index} t={scenario.monitor.elapsed_s():.1f}s {op}")
                scenario.apply(op)
                scenario.monitor.check()
            scenario.monitor.operation = len(operations) + 1
            converged = scenario.converge()
        except AssertionError as exc:
            error = f"{type(exc).__name__}: {exc}"
        scenario.count_injected()
        violations = list(scenario.monitor.violations)
        if converged is None and error is None:
            remaining = "; ".join(world.violations()[:5])
            violations.append(
                Violation(
                    "L1",
                    scenario.monitor.elapsed_s(),
                    len(operations) + 1,
                    f"not converged in {CONVERGENCE_LIMIT_S:.0f}s: {remaining}",
                )
            )
        return ScenarioResult(
            seed=seed,
            operations=operations,
            violations=violations,
            faults=scenario.faults,
            converged_after_s=converged,
            wall_s=time.monotonic() - started,
            error=error,
            log=log,
        )


def summary(results: list[ScenarioResult]) -> str:
    """The printed report of a chaos run."""
    faults: Counter[str] = Counter()
    for result in results:
        faults.update(result.faults)
    failed = [r for r in results if not r.ok]
    converged = [r for r in results if r.converged_after_s is not None]
    worst = max(converged, key=lambda r: r.converged_after_s or 0.0, default=None)
    lines = [
        f"chaos: {len(results)} scenarios run, {sum(len(r.operations) for r in results)} operations, "
        f"{sum(r.wall_s for r in results):.0f}s of wall time",
        "faults injected, by kind:",
        *[f"  {kind}: {count}" for kind, count in sorted(faults.items()) if count],
        f"violations: {sum(len(r.violations) for r in results)} (S1/S2/S3 after every operation, L1 at the end)",
    ]
    if worst is not None:
        lines.append(
            f"worst convergence: {worst.converged_after_s:.0f}s of simulated time after the faults stopped "
            f"(seed {worst.seed}; limit {CONVERGENCE_LIMIT_S:.0f}s = two reconcile periods)"
        )
    for result in failed:
        lines.append(f"FAILED seed {result.seed}: rerun with `make chaos SEED={result.seed}`")
        lines += [f"  {violation}" for violation in result.violations[:10]]
        if result.error:
            lines.append(f"  {result.error}")
    return "\n".join(lines)
