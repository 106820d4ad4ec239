"""`clb-direct events`, `replay` and `plan` against the step harness (CLB emulator model, fake cluster)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from typing import Any

import pytest

from cli.main import main
from shared.logging import get_logger
from tests.functional.plumbing.test_converge import deliver, pod, pod_json, service, service_json
from tests.functional.steps.conftest import Env


class _KeepOpen:
    """The CLI closes its store when done; the harness owns this one."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def close(self) -> None:
        return None


@pytest.fixture
def cli_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    deps = dataclasses.replace(env.deps, store=_KeepOpen(env.deps.store))
    monkeypatch.setattr("cli._stack.build_deps", lambda _settings, **_kw: deps)
    return env


def last_json(out: str) -> Any:
    """The command's JSON document: the indented block after any one-line log records."""
    # json.dumps(indent=2) puts the top-level "{" alone on a line; log records never are.
    start = 0 if out.startswith("{\n") else out.rindex("\n{\n") + 1
    return json.loads(out[start:])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_events_then_replay_by_id(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    web = service()
    cli_env.cluster.put_service(web)
    deliver(cli_env, ("ADDED", "services", service_json(web)))
    cli_env.drain()
    p = pod("web-1", "10.0.0.1")
    cli_env.cluster.put_pod(p)
    deliver(cli_env, ("MODIFIED", "pods", pod_json(p)))
    cli_env.queue.queue.clear()  # the routed bind is "lost": replay must do it
    code, out, _ = run(capsys, "events")
    assert code == 0
    # stdout also carries the JSON logs of the steps the test ran; event lines start with their id.
    lines = [line for line in out.splitlines() if re.match(r"^[aw]-[0-9a-f]{20}  ", line)]
    assert len(lines) == 2 and "watch modified Pod default/web-1" in lines[0]
    event_id = lines[0].split()[0]
    code, out, _ = run(capsys, "replay", event_id)
    assert code == 0 and [s["step"] for s in last_json(out)["steps"]] == ["bind"]
    assert {ip for ip, _, _ in cli_env.targets(cli_env.lb_id())} == {"10.0.0.1"}
    code, _, err = run(capsys, "replay", "w-doesnotexist")
    assert code == 1 and "not in the event log" in err


def test_plan_is_dry_and_replay_service_and_pod_converge(cli_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    cli_env.cluster.put_service(service())
    cli_env.cluster.put_pod(pod("web-1", "10.0.0.1"))
    before = cli_env.counts()
    code, out, _ = run(capsys, "plan", "--service", "default/web")
    planned = last_json(out)
    assert code == 0 and planned["dryRun"] is True
    assert [s["step"] for s in planned["steps"]] == ["service", "unbind", "bind", "flip"]
    assert any(s["result"]["actions"] for s in planned["steps"])  # it would create the CLB and listeners
    [service_plan] = [p for p in planned["plans"] if p["step"] == "service"]
    kinds = [a["kind"] for a in service_plan["actions"]]
    assert kinds[:3] == ["patch_service", "index_selector", "create_load_balancer"] and "create_listener" in kinds
    assert all(a["reason"] for a in service_plan["actions"] if "reason" in a)
    [flip_plan] = [p for p in planned["plans"] if p["step"] == "flip"]
    assert [w["pod"] for w in flip_plan["writes"]] == ["default/web-1"]
    code, out, _ = run(capsys, "plan", "--service", "default/web", "--lines")
    assert code == 0 and "service  default/web  create_load_balancer: no CLB is" in out
    assert "flip     default/web-1  patch_gate: the Pod has no gate condition yet: False" in out
    assert not {k for k, v in cli_env.counts().items() if v != before.get(k) and not k.startswith("Describe")}
    code, out, _ = run(capsys, "replay", "--service", "default/web")
    assert code == 0 and last_json(out)["service"] == "default/web"
    cli_env.drain(delayed=True)
    lb_id = cli_env.lb_id()
    assert {ip for ip, _, _ in cli_env.targets(lb_id)} == {"10.0.0.1"}
    cli_env.set_health(lb_id, "10.0.0.1", 8080)
    code, out, _ = run(capsys, "replay", "--pod", "default/web-1")
    assert code == 0 and [s["step"] for s in last_json(out)["steps"]] == ["unbind", "bind", "flip"]
    gate = cli_env.gate("web-1")
    assert gate is not None and gate[0] == "True"
    code, _, err = run(capsys, "plan", "--service", "default/nope")
    assert code == 1 and "NotFound" in err


def test_logging_set_up_by_a_command_follows_stderr_after_it(
    cli_env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the command bound the sys.stderr of its own run; once pytest closed that capture
    # stream, every later log line in the process raised "I/O operation on closed file".
    monkeypatch.setattr("shared.logging._configured", False)
    assert run(capsys, "events")[0] == 0
    later = io.StringIO()
    with contextlib.redirect_stderr(later):
        get_logger("test").warning("after.the.command")
    assert "after.the.command" in later.getvalue()
