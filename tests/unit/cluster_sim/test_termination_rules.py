"""The pure rules of the simulated container termination: hook parsing, app models, the SIGTERM budget."""

from __future__ import annotations

import pytest

from emulators.cluster.termination import AppModel, HookError, PreStopHook, prestop_hook, sigterm_budget_s


def test_sigterm_gets_what_the_hook_left_in_whole_seconds_but_never_less_than_two() -> None:
    assert sigterm_budget_s(30, None) == 30
    assert sigterm_budget_s(30, 5.9) == 25  # the kubelet truncates the hook's time to whole seconds
    assert sigterm_budget_s(30, 29.5) == 2
    assert sigterm_budget_s(10, 10.0) == 2  # a hook that ran out the grace period: 2 s minimum
    assert sigterm_budget_s(1, None) == 2


def test_app_models() -> None:
    assert AppModel.parse(None) == AppModel("exit")
    assert AppModel.parse("serve:2.5") == AppModel("serve", 2.5)
    assert AppModel.parse(" IGNORE ") == AppModel("ignore")
    for bad in ("serve:", "serve:-1", "sometimes"):
        with pytest.raises(ValueError, match="exit, serve:<seconds> or ignore"):
            AppModel.parse(bad)
    assert AppModel.for_pod({"metadata": {"annotations": {"sim.clb-direct.cloud.tencent.com/on-sigterm": "x"}}}) == (
        AppModel("exit")
    )


def _container(prestop: dict[str, object]) -> dict[str, object]:
    return {"name": "web", "ports": [{"name": "admin", "containerPort": 9000}], "lifecycle": {"preStop": prestop}}


def test_prestop_kinds() -> None:
    assert prestop_hook({"name": "web"}, "10.0.0.1") is None
    assert prestop_hook(_container({"sleep": {"seconds": 7}}), "ip") == PreStopHook("sleep", seconds=7)
    exec_sleep = prestop_hook(_container({"exec": {"command": ["sh", "-c", "sleep 4"]}}), "ip")
    assert exec_sleep is not None and exec_sleep.kind == "sleep" and exec_sleep.seconds == 4
    other = prestop_hook(_container({"exec": {"command": ["nginx", "-s", "quit"]}}), "ip")
    assert other is not None and other.kind == "exec"


def test_http_get_hook_resolution() -> None:
    own = prestop_hook(_container({"httpGet": {"port": "admin", "path": "quit"}}), "10.0.0.1")
    assert own is not None and own.url == "http://10.0.0.1:9000/quit"
    remote = prestop_hook(
        _container(
            {
                "httpGet": {
                    "scheme": "HTTPS",
                    "host": "gw.example",
                    "port": 443,
                    "path": "/prestop?ns=a&id=b",
                    "httpHeaders": [{"name": "X-T", "value": "v"}],
                }
            }
        ),
        "10.0.0.1",
    )
    assert remote is not None and remote.url == "https://gw.example:443/prestop?ns=a&id=b"
    assert remote.headers == (("X-T", "v"),)
    with pytest.raises(HookError, match="couldn't find port: nope"):
        prestop_hook(_container({"httpGet": {"port": "nope"}}), "ip")
