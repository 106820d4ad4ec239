"""The control plane launcher: missing binaries, a refused flag, an audit token it could not send, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emulators.controlplane.binaries import Binaries, BinariesMissing, find_binaries
from emulators.controlplane.launcher import ControlPlane, ControlPlaneError, ControlPlaneOptions


def test_missing_binaries_say_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLB_DIRECT_K8S_BIN", str(tmp_path))
    with pytest.raises(BinariesMissing) as caught:
        find_binaries()
    message = str(caught.value)
    assert "kube-apiserver" in message and "etcd" in message and "scripts/build-k8s.sh" in message


def test_an_audit_token_over_http_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """kube-apiserver drops a kubeconfig user's token for an http server: the relay would 401 every batch."""
    binaries = Binaries(tmp_path / "no-bin", "v0.0.0")  # never reached: the options are refused first
    for url in ("http://127.0.0.1:9/audit", None):
        options = ControlPlaneOptions(state_dir=tmp_path / "state", audit_url=url, audit_token="t0k", binaries=binaries)
        with pytest.raises(ControlPlaneError, match="needs an https audit URL"):
            ControlPlane(options)
    with pytest.raises(ControlPlaneError, match="token is empty"):
        ControlPlane(ControlPlaneOptions(audit_url="https://127.0.0.1:9/audit", audit_token=" ", binaries=binaries))
    assert not (tmp_path / "state").exists()


def test_the_cli_refuses_an_audit_token_over_http_in_one_line(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0k\n")
    command = [sys.executable, "-m", "cli.main", "emulate", "control-plane", "--kubeconfig", str(tmp_path / "kc")]
    result = subprocess.run(  # noqa: S603
        [*command, "--audit-url", "http://127.0.0.1:9/audit", "--audit-token-file", str(token)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "needs an https audit URL" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "kc").exists()


def test_a_refused_flag_names_the_binary_the_flag_and_the_log(tmp_path: Path, real_cluster: object) -> None:
    plane = ControlPlane(ControlPlaneOptions(state_dir=tmp_path, extra_apiserver_flags=["--no-such-flag=1"]))
    with pytest.raises(ControlPlaneError) as caught:
        plane.start()
    message = str(caught.value)
    assert message.startswith("kube-apiserver exited with code")
    assert "its log blames --no-such-flag" in message
    assert "unknown flag: --no-such-flag" in message  # the log tail itself
    assert plane._processes == []  # etcd, already started, was stopped again


def test_the_cli_starts_and_stops_the_control_plane_cleanly(tmp_path: Path, real_cluster: object) -> None:
    kubeconfig, state = tmp_path / "kubeconfig", tmp_path / "state"
    command = [sys.executable, "-m", "cli.main", "emulate", "control-plane", "--kubeconfig", str(kubeconfig)]
    process = subprocess.Popen(  # noqa: S603
        [*command, "--state-dir", str(state), "--nodes", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("nodes:") for line in lines):
            line = process.stdout.readline()
            assert line, f"the command ended early: {''.join(lines)}"
            lines.append(line)
        assert lines[0].startswith("Kubernetes v1.34.12 API: https://127.0.0.1:")
        assert kubeconfig.exists()
        assert all((state / f"{name}.log").exists() for name in ("etcd", "kube-apiserver", "kube-controller-manager"))
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    survivors = subprocess.run(  # noqa: S603
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout
    assert str(state) not in survivors, "a control plane process outlived the command"
