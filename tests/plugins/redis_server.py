"""pytest plugin: real `redis-server` processes on free loopback ports, for store and integration tests.

Session fixtures: `redis_url` (a standalone server, `redis://127.0.0.1:PORT/0`) and `redis_cluster_url`
(a one-node Redis Cluster owning all 16384 slots, so cross-slot scripts fail exactly as on a real
cluster). Servers start on first use with `--save '' --appendonly no`, and are shut down at the end
of the session. Every test that used one leaves it flushed for the next test.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.support.net import free_port

START_DEADLINE_S = 30.0
_MISSING_BINARY = (
    "redis-server is not on PATH; run `scripts/ensure-redis.sh` (or `make test`, which runs it) to "
    "install it, then re-run the tests"
)


class ServerExited(Exception):
    """redis-server stopped during start-up (typically: another process took the free port first)."""


class RedisServer:
    """One redis-server child process and an admin client for it."""

    def __init__(self, workdir: Path, *, cluster: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(_MISSING_BINARY, pytrace=False)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(workdir / "redis.log"),
        ]  # fmt: skip
        if cluster:
            # The cluster bus defaults to port+10000, which may be taken or above 65535: pick one too.
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(workdir / "nodes.conf"),
                "--cluster-port", str(free_port()),
            ]  # fmt: skip
        self.log = workdir / "redis.log"
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.admin = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, decode_responses=True)
        try:
            self._wait_until(self._answers_ping, "answer PING")
            if cluster:
                self.admin.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
                self._wait_until(self._cluster_ok, "report cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    def _answers_ping(self) -> bool:
        try:
            return bool(self.admin.ping())
        except redis.ConnectionError:
            return False

    def _cluster_ok(self) -> bool:
        return "cluster_state:ok" in str(self.admin.execute_command("CLUSTER", "INFO"))

    def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log.read_text() if self.log.exists() else ""
                raise ServerExited(f"redis-server on port {self.port} exited early:\n{log[-2000:]}")
            if condition():
                return
            time.sleep(0.05)
        pytest.fail(f"redis-server on port {self.port} did not {what} within {START_DEADLINE_S}s")

    def flush(self) -> None:
        self.admin.flushall()

    def stop(self) -> None:
        self.admin.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


_running: dict[str, RedisServer] = {}


def _serve(name: str, tmp_path_factory: pytest.TempPathFactory, *, cluster: bool) -> Iterator[str]:
    failures: list[str] = []
    for _attempt in range(3):
        try:
            server = RedisServer(tmp_path_factory.mktemp(name), cluster=cluster)
            break
        except ServerExited as exc:
            failures.append(str(exc))
    else:
        pytest.fail("\n".join(failures), pytrace=False)
    _running[name] = server
    try:
        yield server.url
    finally:
        _running.pop(name, None)
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a standalone redis-server for this session (flushed after every test that used it)."""
    yield from _serve("redis_url", tmp_path_factory, cluster=False)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a one-node Redis Cluster for this session (flushed after every test that used it)."""
    yield from _serve("redis_cluster_url", tmp_path_factory, cluster=True)


@pytest.fixture(autouse=True)
def _flush_redis_after_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    # Checked after the test: fixtures requested dynamically (getfixturevalue) are known only then.
    for name in request.fixturenames:
        server = _running.get(name)
        if server is not None:
            server.flush()
