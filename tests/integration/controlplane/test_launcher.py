"""The control plane launcher: missing binaries, a refused flag, and the CLI's clean start and stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from emulators.controlplane.binaries import BinariesMissing, find_binaries
from emulators.controlplane.launcher import ControlPlane, ControlPlaneError, ControlPlaneOptions


def test_missing_binaries_say_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLB_DIRECT_K8S_BIN", str(tmp_path))
    with pytest.raises(BinariesMissing) as caught:
        find_binaries()
    message = str(caught.value)
    assert "kube-apiserver" in message and "etcd" in message and "scripts/build-k8s.sh" in message


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
