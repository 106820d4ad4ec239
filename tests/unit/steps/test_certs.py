"""Webhook CA / serving certificate planning and rotation with a fake 'now': the Secret read as facts,
the guardian's decision on them, and the Secret data issued for that decision."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from shared.certs import CA_BUNDLE, CA_CERT, TLS_CERT, issue_certificates, read_certificates, split_bundle
from shared.domain.guardian_plan import decide_certificates

NOW = 1_700_000_000.0
DAY = 86400.0


@dataclass
class Planned:
    action: str
    reason: str
    data: dict[str, str]

    @property
    def ca_bundle(self) -> str:
        return self.data.get(CA_BUNDLE, "")


def plan(secret: dict | None, now: float = NOW, host: str = "127.0.0.1") -> Planned:
    state = read_certificates(secret, host=host, now=now)
    decision = decide_certificates(state, host=host, now=now, rotate_before_days=3)
    data = issue_certificates(decision.action, secret, host=host, now=now, validity_days=10)
    return Planned(decision.action, decision.reason, data)


def test_create_then_keep() -> None:
    first = plan(None)
    assert first.action == "create"
    tls = x509.load_pem_x509_certificate(first.data[TLS_CERT].encode())
    ca = x509.load_pem_x509_certificate(first.data[CA_CERT].encode())
    tls.verify_directly_issued_by(ca)
    assert "127.0.0.1" in str(tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    assert len(split_bundle(first.ca_bundle)) == 1
    again = plan(first.data, now=NOW + 6 * DAY)
    assert again.action == "keep" and again.data == first.data


def test_rotation_keeps_both_cas_during_overlap_then_prunes() -> None:
    first = plan(None)
    rotated = plan(first.data, now=NOW + 7.5 * DAY)
    assert rotated.action == "rotate"
    assert rotated.data[CA_CERT] != first.data[CA_CERT]
    bundle = split_bundle(rotated.ca_bundle)
    assert len(bundle) == 2
    old_ca = x509.load_pem_x509_certificate(first.data[CA_CERT].encode())
    assert old_ca in bundle
    # once the old CA has expired, the bundle drops it
    later = plan(rotated.data, now=NOW + 10.5 * DAY)
    assert later.action == "update-bundle" and len(split_bundle(later.ca_bundle)) == 1


def test_reissue_for_new_host_and_recreate_when_damaged() -> None:
    first = plan(None)
    moved = plan(first.data, host="webhook.example.com")
    assert moved.action == "reissue" and moved.data[CA_CERT] == first.data[CA_CERT]
    assert plan({**first.data, TLS_CERT: "garbage"}).action == "create"
    assert plan({CA_BUNDLE: first.ca_bundle}).action == "create"
    foreign = plan(None)
    mixed = plan({**first.data, TLS_CERT: foreign.data[TLS_CERT]})
    assert mixed.action == "reissue" and "not signed" in mixed.reason
