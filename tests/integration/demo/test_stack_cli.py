"""Against a running `LocalStack`: `clb-direct plan`, `replay` and `events` work with the stack's environment,
and `clb-direct serve`'s runtime answers from the same settings.

This is what `clb-direct demo --keep` tells the user to do. The stack exports its `CLB_DIRECT_*` variables
while it runs, so `cli.main.main([...])` sees the same store, CLB endpoint and kubeconfig as the functions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cli.main import main
from demo.report import RunReport
from demo.scenario import Scenario, ScenarioOptions
from demo.stack import LocalStack, StackOptions, serve_runtime, stop_served_runtime


# The stack, the in-process commands and a second interpreter booting `cli.main` (a cold import of the CLI
# took over 60 s at load ~30 on 2 cores): the subprocess has 180 s, the test 150 s more for the rest.
@pytest.mark.timeout(330)
def test_plan_replay_and_events_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ScenarioOptions(replicas=2, health_interval=3)
    report = RunReport(label="cli", gate_enabled=True, started_at=time.time(), settings=options.settings())
    with LocalStack(StackOptions(run_dir=tmp_path / "run")) as stack:
        scenario = Scenario(stack, options, report)
        try:
            scenario.apply_service()
            scenario.create_deployment()
            pod = scenario.observer.snapshot().live_pods()[0]
        finally:
            scenario.api.close()
        capsys.readouterr()

        assert main(["plan", "--service", "default/web"]) == 0
        plan = json.loads(capsys.readouterr().out)
        assert plan["service"] == "default/web" and plan["dryRun"] is True
        assert [s["step"] for s in plan["steps"]] and all("error" not in s for s in plan["steps"]), plan

        assert main(["replay", "--service", "default/web"]) == 0
        replayed = json.loads(capsys.readouterr().out)
        assert replayed["dryRun"] is False and all("error" not in s for s in replayed["steps"]), replayed

        assert main(["replay", "--pod", f"default/{pod.name}"]) == 0
        assert [s["step"] for s in json.loads(capsys.readouterr().out)["steps"]] == ["unbind", "bind", "flip"]

        assert main(["events", "--limit", "200"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines, "the router logged the cluster's events"
        event_id = lines[-1].split()[0]
        assert main(["replay", event_id]) == 0
        assert json.loads(capsys.readouterr().out)["event"] == event_id

        # Another process, as the user runs it from `--keep`'s printed environment: stdout is pure JSON.
        separate = subprocess.run(
            [sys.executable, "-m", "cli.main", "plan", "--service", "default/web"],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
            env=dict(os.environ),
        )
        assert json.loads(separate.stdout)["service"] == "default/web"

        assert main(["plan", "--service", "default/nosuch"]) == 1
        assert "nosuch" in capsys.readouterr().err


def test_serve_runtime_runs_the_functions_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"CLB_DIRECT_STORE_URL": f"sqlite:///{tmp_path / 'state.db'}", "CLB_DIRECT_INVOKER": "inline"}
    for key, value in environ.items():  # the runtime exports its settings, as SCF does; restore them after
        monkeypatch.setenv(key, value)
    runtime, provider = serve_runtime(environ, health_poll_s=60, reconcile_s=60, guardian_s=60, port=0)
    try:
        assert provider is None and runtime.https_url is None  # no webhook URL: no HTTPS admission endpoint
        request = urllib.request.Request(f"{runtime.url}/router", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401  # an unsigned batch: the router itself answered
        refused.value.close()
        with urllib.request.urlopen(f"{runtime.url}/_runtime/stats", timeout=10) as response:
            assert json.loads(response.read())["invocations"] == {"router": 1}
    finally:
        stop_served_runtime(runtime, provider)
