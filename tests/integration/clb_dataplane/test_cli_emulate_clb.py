"""`clb-direct emulate clb` as a process: prints its endpoint, serves the SDK, exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tencentcloud.clb.v20180317 import clb_client, models
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_signalled(stop_signal: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "emulate", "clb", "--listen", "127.0.0.1:0"]
        + ["--secret-id", "AKIDcli", "--secret-key", "cli-key", "--quota", "7"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"endpoint (127\.0\.0\.1:\d+)", first)
        assert match, first
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=match.group(1), reqTimeout=30))
        client = clb_client.ClbClient(credential.Credential("AKIDcli", "cli-key"), "ap-guangzhou", profile)
        request = models.DescribeLoadBalancersRequest()
        request.from_json_string("{}")
        assert json.loads(client.DescribeLoadBalancers(request).to_json_string())["TotalCount"] == 0

        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "CLB emulator stopped" in out
