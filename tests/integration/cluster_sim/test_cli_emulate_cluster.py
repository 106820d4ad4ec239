"""`clb-direct emulate cluster` in a subprocess: prints URL and kubeconfig, serves, stops on SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, config

from cli.main import build_parser
from tests.support.polling import eventually


def test_parser_shares_the_emulate_group_and_validates_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["emulate", "cluster", "--listen", "127.0.0.1:0", "--kubeconfig", "/tmp/kc", "--network-mode", "global-router"]
    )
    assert (args.listen, args.network_mode, args.k8s_version, args.start_delay) == (
        ("127.0.0.1", 0),
        "global-router",
        "1.28",
        0.2,
    )
    for bad in (["--listen", "nope"], ["--version", "one.two"], ["--network-mode", "flannel"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["emulate", "cluster", "--kubeconfig", "/tmp/kc", *bad])
    assert "one.two" in capsys.readouterr().err


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serves_the_real_client_until_signalled(tmp_path: Path, stop_signal: signal.Signals) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "emulate",
        "cluster",
        "--listen",
        "127.0.0.1:0",
        "--kubeconfig",
        str(kubeconfig),
        "--version",
        "1.30",
        "--start-delay",
        "0.1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert first.startswith("cluster API: https://127.0.0.1:"), first
        assert second.strip() == f"kubeconfig: {kubeconfig}"
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            assert client.VersionApi(api_client).get_code().git_version == "v1.30.0-tke.1"
            core = client.CoreV1Api(api_client)
            core.create_namespaced_pod(
                "default",
                {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}},
            )
            eventually(lambda: core.read_namespaced_pod("p", "default").status.phase == "Running" or None, "Running")
        finally:
            api_client.close()
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
