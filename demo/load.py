"""Steady HTTP load through the CLB VIP, counted per second.

Each request opens a new TCP connection (so the emulated L4 CLB picks a backend per request, as a real one does
per connection) and reads the Pod's answer, which names the Pod and its version. Failures (refused, reset,
timeout, non-2xx) are counted with their kind, per second, so the report can place them on the timeline; each
outcome is also kept with its completion time so a scenario phase counts exactly the requests it saw, and each
failure with the local port of its connection, which the CLB emulator's connection log maps to a backend.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Failure:
    """One failed request: when, the local port of its connection (0 if it never connected), what failed."""

    at: float
    local_port: int
    error: str


@dataclass
class Second:
    ok: int = 0
    failed: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class LoadGenerator:
    """Sends `rps` requests per second to host:port from a few worker threads until stopped."""

    def __init__(self, host: str, port: int, *, rps: float = 50.0, workers: int = 8, timeout_s: float = 2.0) -> None:
        self.host, self.port, self.rps, self.timeout_s = host, port, rps, timeout_s
        self._workers = workers
        self._lock = threading.Lock()
        self.seconds: dict[int, Second] = defaultdict(Second)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_slot = 0.0
        self.started_at = 0.0
        self._outcomes: list[tuple[float, bool]] = []
        self.failures: list[Failure] = []

    def start(self) -> None:
        self.started_at = time.time()
        self._next_slot = time.monotonic()
        self._stop.clear()
        for index in range(self._workers):
            thread = threading.Thread(target=self._run, name=f"load-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_s + 2)
        self._threads.clear()

    def totals(self, since: float | None = None, until: float | None = None) -> tuple[int, int]:
        with self._lock:
            picked = [
                s
                for t, s in self.seconds.items()
                if (since is None or t >= int(since)) and (until is None or t <= int(until))
            ]
        return sum(s.ok for s in picked), sum(s.failed for s in picked)

    def between(self, start: float, end: float) -> tuple[int, int]:
        """(ok, failed) requests that completed in [start, end) (wall-clock seconds)."""
        with self._lock:
            picked = [ok for t, ok in self._outcomes if start <= t < end]
        return sum(picked), len(picked) - sum(picked)

    def versions(self, since: float) -> Counter[str]:
        """Versions that answered from `since` on, per whole second."""
        total: Counter[str] = Counter()
        with self._lock:
            for second, bucket in self.seconds.items():
                if second >= int(since):
                    total.update(bucket.versions)
        return total

    def errors(self) -> Counter[str]:
        total: Counter[str] = Counter()
        with self._lock:
            for second in self.seconds.values():
                total.update(second.errors)
        return total

    def _take_slot(self) -> float:
        with self._lock:
            slot = self._next_slot
            self._next_slot = max(slot, time.monotonic() - 1.0) + 1.0 / self.rps
            return slot

    def _run(self) -> None:
        while not self._stop.is_set():
            slot = self._take_slot()
            delay = slot - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            self._one_request()

    def _one_request(self) -> None:
        second = int(time.time())
        version, error, local_port = None, None, 0
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.connect()
            if connection.sock is not None:
                local_port = int(connection.sock.getsockname()[1])
            connection.request("GET", "/", headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read()
            if 200 <= response.status < 300:
                version = _version_of(body)
            else:
                error = f"http {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
        finally:
            connection.close()
        with self._lock:
            self._outcomes.append((time.time(), error is None))
            bucket = self.seconds[second]
            if error is None:
                bucket.ok += 1
                bucket.versions[version or "?"] += 1
            else:
                bucket.failed += 1
                bucket.errors[error] += 1
                self.failures.append(Failure(time.time(), local_port, error))


def _version_of(body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:32] or "?"
    if isinstance(data, dict):
        return str(data.get("version", "?"))
    return "?"
