"""`RuntimeProcess`: the functions runtime as its own process (`clb-direct serve`), apart from the cluster and CLB.

On Tencent Cloud the functions run on SCF, not beside the cluster and the load balancer; run in the demo's own
process they would share one interpreter lock with every Pod server, health probe and forwarded connection, and
at a hundred replicas the CLB emulator's probes starve behind function work (every backend Dead at once: a
failure no real cloud would cause). `LocalStack` with `StackOptions.runtime_process` starts the runtime here,
after the cluster exists (the guardian needs it). The child is configured only through `CLB_DIRECT_*`
variables, as a function is on SCF; its logs go to the run directory's `functions.log`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

_START_DEADLINE_S = 120.0  # a cold import of the Kubernetes client plus the guardian on a busy 2-core machine
_STOP_GRACE_S = 30.0
_LOG_TAIL_LINES = 20


class RuntimeProcessError(RuntimeError):
    """The runtime process did not come up (its log's last lines say why)."""


@dataclass(frozen=True)
class RuntimeTimings:
    """The runtime's timers and lane width, passed to `clb-direct serve` as flags."""

    health_poll_s: float
    reconcile_s: float
    guardian_s: float
    workers: int


class RuntimeProcess:
    """`clb-direct serve` in a child process: start, wait until it answers, read its stats, stop it."""

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        port: int,
        timings: RuntimeTimings,
        log_path: Path,
        dead_letter_path: Path,
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._port = port
        self._environ = dict(environ)
        self._timings = timings
        self._log_path = log_path
        self._dead_letter_path = dead_letter_path
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self) -> list[str]:
        t = self._timings
        return [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--port",
            str(self._port),
            "--health-poll",
            str(t.health_poll_s),
            "--reconcile",
            str(t.reconcile_s),
            "--guardian",
            str(t.guardian_s),
            "--workers",
            str(t.workers),
            "--dead-letters",
            str(self._dead_letter_path),
        ]

    def start(self) -> None:
        """Start the child and wait until its HTTP endpoint (and, with a webhook URL, its HTTPS one) answers."""
        # The stack's settings win; any other CLB_DIRECT_* of this process (a user's CLB_DIRECT_PRESTOP_MODE=off)
        # reaches the functions as it does when they run in-process.
        env = dict(os.environ) | self._environ
        self._log = self._log_path.open("ab")
        self._proc = subprocess.Popen(self.command(), env=env, stdout=self._log, stderr=subprocess.STDOUT)
        webhook_url = self._environ.get("CLB_DIRECT_WEBHOOK_URL")
        https_port = (urlsplit(webhook_url).port or 443) if webhook_url else None
        deadline = time.monotonic() + _START_DEADLINE_S
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeProcessError(f"the functions runtime exited with code {code}:\n{self._log_tail()}")
            if self._answers() and (https_port is None or listening(https_port)):
                return
            time.sleep(0.25)
        raise RuntimeProcessError(
            f"the functions runtime did not answer on {self.url} within {_START_DEADLINE_S:.0f} s:\n{self._log_tail()}"
        )

    def snapshot(self) -> dict[str, Any]:
        """The runtime's `/_runtime/stats`: invocations, errors, queue and lanes, dead letters."""
        with urllib.request.urlopen(f"{self.url}/_runtime/stats", timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    def wait_idle(self, timeout_s: float) -> bool:
        """True once its async queue has nothing queued or running."""
        deadline = time.monotonic() + timeout_s
        while True:
            stats = self.snapshot()
            queued = sum(int(lane["queued"]) for lane in stats["lanes"].values())
            if queued == 0 and int(stats["queue"].get("in_flight", 0)) == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM (the runtime stops its servers, queue and timers), then SIGKILL after a grace period."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _answers(self) -> bool:
        try:
            self.snapshot()
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return True

    def _log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        lines = self._log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_LOG_TAIL_LINES:])


def listening(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False
