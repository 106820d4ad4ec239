"""HealthNotifier without a network: event shape, signing, ordering, retries, overflow, switching off."""

from __future__ import annotations

import hashlib
import hmac
import json

from emulators.clb.dataplane.notifier import (
    SIGNATURE_HEADER,
    HealthNotifier,
    NotifierSettings,
    backoff_delay,
    rfc3339,
    sign_body,
)


class FakeReceiver:
    """Stands in for the callback server: answers with queued statuses, records what it got."""

    def __init__(self, statuses: list[int | Exception] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        self.calls.append((url, body, headers))
        outcome = self.statuses.pop(0) if self.statuses else 200
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def events(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, body, _ in self.calls]


def make(receiver: FakeReceiver, **settings: object) -> HealthNotifier:
    options: dict[str, object] = {"url": "http://127.0.0.1:9/cb", "region": "ap-shanghai", **settings}
    return HealthNotifier(NotifierSettings(**options), post=receiver, now=lambda: 1_767_322_445.678)  # type: ignore[arg-type]


def publish(notifier: HealthNotifier, ip: str = "127.0.10.1", old: str = "Unknown", new: str = "Alive") -> None:
    notifier.publish(
        lb_id="lb-abc",
        listener_id="lbl-def",
        protocol="TCP",
        port=80,
        target_ip=ip,
        target_port=8080,
        old=old,
        new=new,
    )


def no_wait(waits: list[float]):  # type: ignore[no-untyped-def]
    return waits.append


def test_event_shape_and_delivery() -> None:
    receiver = FakeReceiver()
    notifier = make(receiver)
    publish(notifier)
    assert notifier.deliver_next(wait=no_wait([])) is True
    assert notifier.deliver_next(wait=no_wait([])) is False
    url, _, headers = receiver.calls[0]
    assert url == "http://127.0.0.1:9/cb"
    assert headers["Content-Type"] == "application/json"
    assert SIGNATURE_HEADER not in headers
    assert receiver.events() == [
        {
            "type": "TargetHealthChanged",
            "loadBalancerId": "lb-abc",
            "listenerId": "lbl-def",
            "protocol": "TCP",
            "port": 80,
            "target": {"ip": "127.0.10.1", "port": 8080},
            "oldStatus": "Unknown",
            "newStatus": "Alive",
            "timestamp": "2026-01-02T02:54:05.678Z",
            "sequence": 1,
            "region": "ap-shanghai",
        }
    ]
    status = notifier.status()
    assert status["counters"]["delivered"] == 1 and status["queued"] == 0
    assert status["log"][0]["state"] == "delivered"


def test_signature_covers_timestamp_nonce_and_the_exact_body_fresh_per_attempt() -> None:
    from emulators.clb.dataplane.notifier import NONCE_HEADER, TIMESTAMP_HEADER

    receiver = FakeReceiver(statuses=[500, 200])
    notifier = make(receiver, secret="s3cret")
    publish(notifier)
    notifier.deliver_next(wait=no_wait([]))
    nonces = set()
    for _, body, headers in receiver.calls:
        message = f"{headers[TIMESTAMP_HEADER]}.{headers[NONCE_HEADER]}.".encode() + body
        expected = hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] == f"sha256={expected}" == sign_body("s3cret", message)
        assert headers[TIMESTAMP_HEADER].isdigit() and len(headers[NONCE_HEADER]) == 32
        nonces.add(headers[NONCE_HEADER])
    assert len(receiver.calls) == 2 and len(nonces) == 2  # a retry is signed afresh, never a replay


def test_events_are_delivered_in_order_with_increasing_sequence() -> None:
    receiver = FakeReceiver()
    notifier = make(receiver)
    publish(notifier, new="Alive")
    publish(notifier, ip="127.0.10.2", new="Dead")
    publish(notifier, old="Alive", new="Dead")
    while notifier.deliver_next(wait=no_wait([])):
        pass
    events = receiver.events()
    assert [e["sequence"] for e in events] == [1, 2, 3]
    assert [(e["target"]["ip"], e["newStatus"]) for e in events] == [  # type: ignore[index]
        ("127.0.10.1", "Alive"),
        ("127.0.10.2", "Dead"),
        ("127.0.10.1", "Dead"),
    ]


def test_failures_are_retried_with_backoff_before_the_next_event() -> None:
    receiver = FakeReceiver([500, OSError("connection refused"), 200])
    notifier = make(receiver, backoff_base_s=0.5, backoff_cap_s=10.0)
    publish(notifier)
    publish(notifier, ip="127.0.10.2")
    waits: list[float] = []
    notifier.deliver_next(wait=waits.append)
    assert waits == [0.5, 1.0]
    assert len(receiver.calls) == 3
    assert notifier.status()["log"][0]["attempts"] == 3
    notifier.deliver_next(wait=waits.append)
    assert [e["sequence"] for e in receiver.events()] == [1, 1, 1, 2]


def test_gives_up_after_max_attempts_and_moves_on() -> None:
    receiver = FakeReceiver([503, 503, 503])
    notifier = make(receiver, max_attempts=3)
    publish(notifier)
    publish(notifier, ip="127.0.10.2")
    notifier.deliver_next(wait=no_wait([]))
    notifier.deliver_next(wait=no_wait([]))
    status = notifier.status()
    assert status["counters"] == {"published": 2, "delivered": 1, "failed": 1, "dropped": 0, "suppressed": 0}
    assert [entry["state"] for entry in status["log"]] == ["failed", "delivered"]
    assert status["log"][0]["error"] == "HTTP 503"


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    receiver = FakeReceiver()
    notifier = make(receiver, max_queue=2)
    for n in range(1, 5):
        publish(notifier, ip=f"127.0.10.{n}")
    while notifier.deliver_next(wait=no_wait([])):
        pass
    assert [e["sequence"] for e in receiver.events()] == [3, 4]
    assert notifier.counters.dropped == 2
    assert [entry["state"] for entry in notifier.status()["log"]] == ["dropped", "dropped", "delivered", "delivered"]


def test_switched_off_or_without_url_nothing_is_queued() -> None:
    receiver = FakeReceiver()
    notifier = make(receiver, enabled=False)
    publish(notifier)
    assert notifier.deliver_next(wait=no_wait([])) is False
    notifier.configure(enabled=True, url="")
    publish(notifier)
    assert notifier.deliver_next(wait=no_wait([])) is False
    assert notifier.counters.suppressed == 2 and receiver.calls == []
    notifier.configure(url="http://127.0.0.1:10/other", secret="k")
    publish(notifier)
    notifier.deliver_next(wait=no_wait([]))
    url, _, headers = receiver.calls[0]
    assert url == "http://127.0.0.1:10/other" and SIGNATURE_HEADER in headers
    # Sequence numbers keep counting while delivery is off, so a receiver can see the gap.
    assert receiver.events()[0]["sequence"] == 3
    assert notifier.status()["enabled"] is True and notifier.status()["signed"] is True


def test_backoff_and_timestamp_helpers() -> None:
    assert [backoff_delay(n, 0.2, 1.0) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
