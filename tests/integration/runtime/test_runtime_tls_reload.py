"""The runtime's HTTPS endpoint reloads a rotated certificate without a single failed handshake.

A client handshakes in a loop while the TLS provider's material changes: a new pair, then a damaged one
(a certificate with another pair's key, what a half-written Secret holds), then the first pair again.
Every handshake must succeed and present either the old or the new certificate, never a broken mix.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field

import pytest

from emulators.cluster.tls import CertificateAuthority, KeyPair
from emulators.runtime.runtime import FunctionSpec, LocalRuntime
from tests.support.polling import eventually

MODULE = "tests.integration.runtime.sample_functions"


@dataclass
class Prober:
    """Handshakes with the endpoint until stopped; records every certificate served and every failure."""

    port: int
    served: list[bytes] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pem = ssl.get_server_certificate(("127.0.0.1", self.port), timeout=10)
            except (ssl.SSLError, OSError) as exc:
                self.failures.append(exc)
            else:
                self.served.append(ssl.PEM_cert_to_DER_cert(pem))

    def latest(self) -> bytes | None:
        return self.served[-1] if self.served else None


def _der(pair: KeyPair) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pair.cert_pem.decode())


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority("runtime reload test CA")


def test_a_rotated_certificate_is_swapped_in_whole_and_a_damaged_one_is_refused(
    ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = ca.issue(["127.0.0.1"]), ca.issue(["127.0.0.1"])
    current = {"material": (first.cert_pem, first.key_pem)}
    runtime = LocalRuntime(
        functions=[FunctionSpec("echo", entry=f"{MODULE}:echo")], tls_provider=lambda: current["material"]
    )
    runtime.start()
    url = runtime.start_https()
    prober = Prober(int(url.rsplit(":", 1)[1]))
    thread = threading.Thread(target=prober.run, name="tls-prober", daemon=True)
    thread.start()
    try:
        eventually(lambda: prober.latest() == _der(first), "the first certificate served")
        current["material"] = (second.cert_pem, second.key_pem)
        eventually(lambda: prober.latest() == _der(second), "the rotated certificate served")

        damaged = ca.issue(["127.0.0.1"])
        with caplog.at_level(logging.WARNING, logger="emulators.runtime.runtime"):
            current["material"] = (damaged.cert_pem, first.key_pem)
            eventually(
                lambda: any("unusable serving certificate" in r.getMessage() for r in caplog.records),
                "the damaged pair refused",
            )
        served_before = len(prober.served)
        eventually(lambda: len(prober.served) > served_before, "a handshake after the refusal")
        assert prober.latest() == _der(second), "a refused pair leaves the last good certificate in place"

        current["material"] = (first.cert_pem, first.key_pem)
        eventually(lambda: prober.latest() == _der(first), "the first certificate served again")
    finally:
        prober.stop.set()
        thread.join(15)
        runtime.stop()
    assert prober.failures == [], "no handshake fails while certificates are swapped"
    assert set(prober.served) <= {_der(first), _der(second)}, "only whole, valid pairs are ever served"
