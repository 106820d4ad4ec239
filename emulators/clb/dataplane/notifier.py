"""Health-change notifications: one signed JSON POST per target health transition, from a background queue.

The health checker hands every transition to `HealthNotifier.publish`; a worker thread delivers them in
publication order (so in order per target) to the callback URL, retrying failures with exponential
backoff. The queue is bounded: when full the oldest undelivered event is dropped and counted. Delivery
can be switched off and on, and the URL changed, at runtime (`configure`, exposed as the admin endpoint
`/_emulator/notifications`), which is how tests exercise the polling path with no callbacks at all.

Body (`Content-Type: application/json`)::

    {"type": "TargetHealthChanged", "loadBalancerId": "lb-...", "listenerId": "lbl-...",
     "protocol": "TCP", "port": 80, "target": {"ip": "127.0.10.1", "port": 8080},
     "oldStatus": "Unknown", "newStatus": "Alive", "timestamp": "2026-01-02T03:04:05.678Z",
     "sequence": 7, "region": "ap-guangzhou"}

`sequence` grows by one per transition across the emulator (a gap means events were dropped or produced
while delivery was off). With a notify secret set, every attempt carries `X-Emulator-Timestamp` (epoch
seconds), `X-Emulator-Nonce` (32 random hex characters, fresh per attempt) and `X-Emulator-Signature:
sha256=<hex>` = HMAC-SHA256(secret, timestamp + "." + nonce + "." + raw body); receivers verify it over
the exact bytes received, refuse a timestamp outside their window and a nonce they have seen (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("clb_emulator.notify")

SIGNATURE_HEADER = "X-Emulator-Signature"
TIMESTAMP_HEADER = "X-Emulator-Timestamp"
NONCE_HEADER = "X-Emulator-Nonce"
EVENT_TYPE = "TargetHealthChanged"

# (url, body, headers, timeout_s) -> HTTP status; raises OSError on transport failure.
PostFunction = Callable[[str, bytes, dict[str, str], float], int]


def rfc3339(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sign_body(secret: str, body: bytes) -> str:
    """HMAC-SHA256 of `body` alone (the bare primitive; deliveries sign timestamp and nonce too)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float, nonce: str | None = None) -> dict[str, str]:
    """The three signature headers of one delivery attempt."""
    timestamp, nonce = str(int(now)), nonce or secrets.token_hex(16)
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign_body(secret, f"{timestamp}.{nonce}.".encode() + body),
    }


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Delay before retry number `attempt` (1-based): base, 2*base, 4*base ... capped."""
    return float(min(cap_s, base_s * (2 ** (attempt - 1))))


def build_event(
    *,
    lb_id: str,
    listener_id: str,
    protocol: str,
    port: int,
    target_ip: str,
    target_port: int,
    old_status: str,
    new_status: str,
    epoch_s: float,
    sequence: int,
    region: str,
) -> dict[str, Any]:
    return {
        "type": EVENT_TYPE,
        "loadBalancerId": lb_id,
        "listenerId": listener_id,
        "protocol": protocol,
        "port": port,
        "target": {"ip": target_ip, "port": target_port},
        "oldStatus": old_status,
        "newStatus": new_status,
        "timestamp": rfc3339(epoch_s),
        "sequence": sequence,
        "region": region,
    }


# Callbacks go straight to the receiver: an http_proxy in the environment must not capture them.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _urllib_post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _DIRECT.open(request, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


@dataclass
class _Delivery:
    event: dict[str, Any]
    state: str = "queued"  # queued -> delivered | failed | dropped
    attempts: int = 0
    error: str = ""
    url: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "state": self.state,
            "attempts": self.attempts,
            "error": self.error,
            "url": self.url,
        }


@dataclass
class NotifierCounters:
    published: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    suppressed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class NotifierSettings:
    url: str | None = None
    secret: str | None = None
    enabled: bool = True
    region: str = "ap-guangzhou"
    max_queue: int = 1000
    max_attempts: int = 5
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 5.0
    timeout_s: float = 5.0
    log_size: int = 500


class HealthNotifier:
    def __init__(
        self,
        settings: NotifierSettings | None = None,
        *,
        post: PostFunction = _urllib_post,
        now: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings or NotifierSettings()
        self._post = post
        self._now = now or (lambda: datetime.now(tz=timezone.utc).timestamp())
        self._lock = threading.Condition()
        # Waiting events only; the one being delivered is held in `_in_flight` so that dropping the
        # oldest on overflow never discards an event already on the wire.
        self._queue: deque[_Delivery] = deque()
        self._in_flight: _Delivery | None = None
        self._log: deque[_Delivery] = deque(maxlen=self._settings.log_size)
        self._sequence = 0
        self.counters = NotifierCounters()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- configuration (admin endpoint) -------------------------------------------------------------

    def configure(self, *, enabled: bool | None = None, url: str | None = None, secret: str | None = None) -> None:
        with self._lock:
            if enabled is not None:
                self._settings.enabled = enabled
            if url is not None:
                self._settings.url = url or None
            if secret is not None:
                self._settings.secret = secret or None

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self._settings.enabled,
                "url": self._settings.url,
                "signed": self._settings.secret is not None,
                "queued": len(self._queue) + (self._in_flight is not None),
                "counters": self.counters.as_dict(),
                "log": [delivery.as_dict() for delivery in self._log],
            }

    # -- producing ----------------------------------------------------------------------------------

    def publish(
        self,
        *,
        lb_id: str,
        listener_id: str,
        protocol: str,
        port: int,
        target_ip: str,
        target_port: int,
        old: str,
        new: str,
    ) -> dict[str, Any]:
        """Record one transition and queue it for delivery; never blocks and never raises."""
        with self._lock:
            self._sequence += 1
            event = build_event(
                lb_id=lb_id,
                listener_id=listener_id,
                protocol=protocol,
                port=port,
                target_ip=target_ip,
                target_port=target_port,
                old_status=old,
                new_status=new,
                epoch_s=self._now(),
                sequence=self._sequence,
                region=self._settings.region,
            )
            self.counters.published += 1
            if not self._settings.enabled or not self._settings.url:
                self.counters.suppressed += 1
                return event
            if len(self._queue) >= self._settings.max_queue:
                oldest = self._queue.popleft()
                oldest.state = "dropped"
                self.counters.dropped += 1
            delivery = _Delivery(event=event, url=self._settings.url)
            self._queue.append(delivery)
            self._log.append(delivery)
            self._lock.notify()
            return event

    # -- delivering ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("notifier already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="clb-health-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                while not self._queue and not self._stopping.is_set():
                    self._lock.wait()
                if self._stopping.is_set():
                    return
            self.deliver_next(wait=self._stopping.wait)

    def deliver_next(self, wait: Callable[[float], object]) -> bool:
        """Deliver the oldest queued event with retries; `wait(seconds)` is the backoff pause.

        Returns False when the queue was empty. Only one event is in flight at a time and it is retried
        before the next is taken, so later events (for the same target or any other) never overtake it.
        """
        with self._lock:
            if not self._queue:
                return False
            delivery = self._in_flight = self._queue.popleft()
            secret = self._settings.secret
        body = json.dumps(delivery.event, separators=(",", ":"), sort_keys=True).encode()
        base_headers = {"Content-Type": "application/json", "User-Agent": "clb-emulator-notifier/1.0"}
        settings = self._settings
        while True:
            delivery.attempts += 1
            # Signed per attempt: a retry is a new delivery (fresh timestamp and nonce), never a replay.
            headers = {**base_headers, **(signed_headers(secret, body, now=self._now()) if secret else {})}
            try:
                status = self._post(delivery.url, body, headers, settings.timeout_s)
                delivery.error = "" if 200 <= status < 300 else f"HTTP {status}"
            except OSError as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
            if not delivery.error or delivery.attempts >= settings.max_attempts or self._stopping.is_set():
                break
            wait(backoff_delay(delivery.attempts, settings.backoff_base_s, settings.backoff_cap_s))
        with self._lock:
            self._in_flight = None
            if delivery.error:
                delivery.state = "failed"
                self.counters.failed += 1
                log.warning("notify.failed sequence=%s error=%s", delivery.event["sequence"], delivery.error)
            else:
                delivery.state = "delivered"
                self.counters.delivered += 1
        return True
