"""CA and serving certificate for the admission webhook: generation, validation, rotation planning.

Called by the guardian step. The Secret holds `ca.crt`/`ca.key` (current CA), `tls.crt`/`tls.key` (the
serving pair for the webhook URL's host) and `ca-bundle.crt` (every CA the API server should trust: the
current one plus, during a rotation's overlap, the previous one until it expires). Rotation happens
`rotate_before_days` before the serving certificate expires and renews the CA too, so the bundle briefly
carries both CAs and no admission call fails while the API server and the endpoint catch up.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CA_BUNDLE = "ca-bundle.crt"
_CLOCK_SKEW = dt.timedelta(minutes=5)


def _when(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def generate_ca(*, now: float, validity_days: int, common_name: str = "clb-direct webhook CA") -> tuple[str, str]:
    """A self-signed CA (certificate PEM, key PEM); ECDSA P-256 keeps generation fast on cold starts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} {int(now)}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_when(now) - _CLOCK_SKEW)
        .not_valid_after(_when(now) + dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def issue_serving_cert(
    ca_cert_pem: str, ca_key_pem: str, *, host: str, now: float, validity_days: int
) -> tuple[str, str]:
    """A serving certificate for `host` (IP or DNS SAN) signed by the CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key in the webhook Secret is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    not_after = min(_when(now) + dt.timedelta(days=validity_days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_when(now) - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _cert_pem(cert), _key_pem(key)


def split_bundle(pem: str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (unparsable input yields [])."""
    try:
        return list(x509.load_pem_x509_certificates(pem.encode()))
    except ValueError:
        return []


def _hosts(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))


CertAction = Literal["keep", "create", "rotate", "reissue", "update-bundle"]


@dataclass
class CertPlan:
    action: CertAction
    reason: str
    data: dict[str, str] = field(default_factory=dict)

    @property
    def ca_bundle(self) -> str:
        return self.data.get(CA_BUNDLE, "")


def _bundle(*certs: x509.Certificate, now: float) -> str:
    seen: set[bytes] = set()
    parts: list[str] = []
    for cert in certs:
        fingerprint = cert.fingerprint(hashes.SHA256())
        if fingerprint in seen or cert.not_valid_after_utc <= _when(now):
            continue
        seen.add(fingerprint)
        parts.append(_cert_pem(cert))
    return "".join(parts)


def plan_certificates(
    secret: Mapping[str, str] | None, *, host: str, now: float, validity_days: int, rotate_before_days: int
) -> CertPlan:
    """Decide what the webhook Secret must become. `data` is the full Secret data to write (all actions)."""

    def fresh(reason: str, action: CertAction, keep_cas: list[x509.Certificate]) -> CertPlan:
        ca_pem, ca_key = generate_ca(now=now, validity_days=validity_days)
        tls_pem, tls_key = issue_serving_cert(ca_pem, ca_key, host=host, now=now, validity_days=validity_days)
        new_ca = x509.load_pem_x509_certificate(ca_pem.encode())
        data = {
            CA_CERT: ca_pem,
            CA_KEY: ca_key,
            TLS_CERT: tls_pem,
            TLS_KEY: tls_key,
            CA_BUNDLE: _bundle(new_ca, *keep_cas, now=now),
        }
        return CertPlan(action, reason, data)

    secret = dict(secret or {})
    if not all(secret.get(k) for k in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)):
        return fresh("webhook Secret missing or incomplete", "create", [])
    try:
        ca = x509.load_pem_x509_certificate(secret[CA_CERT].encode())
        tls = x509.load_pem_x509_certificate(secret[TLS_CERT].encode())
        serialization.load_pem_private_key(secret[TLS_KEY].encode(), password=None)
        serialization.load_pem_private_key(secret[CA_KEY].encode(), password=None)
    except ValueError:
        return fresh("webhook Secret holds unparsable certificates or keys", "create", [])
    old_bundle = split_bundle(secret.get(CA_BUNDLE, ""))
    rotate_at = tls.not_valid_after_utc - dt.timedelta(days=rotate_before_days)
    if _when(now) >= rotate_at or _when(now) >= ca.not_valid_after_utc - dt.timedelta(days=rotate_before_days):
        return fresh(f"serving certificate expires {tls.not_valid_after_utc.isoformat()}", "rotate", [ca, *old_bundle])
    try:
        tls.verify_directly_issued_by(ca)
        signed = True
    except (ValueError, TypeError, InvalidSignature):
        signed = False
    if not signed or host not in _hosts(tls):
        why = "not signed by the current CA" if not signed else f"not valid for host {host}"
        tls_pem, tls_key = issue_serving_cert(
            secret[CA_CERT], secret[CA_KEY], host=host, now=now, validity_days=validity_days
        )
        data = {**secret, TLS_CERT: tls_pem, TLS_KEY: tls_key, CA_BUNDLE: _bundle(ca, *old_bundle, now=now)}
        return CertPlan("reissue", f"serving certificate {why}", data)
    bundle = _bundle(ca, *old_bundle, now=now)
    if bundle != secret.get(CA_BUNDLE):
        return CertPlan(
            "update-bundle", "CA bundle missing the current CA or holding expired CAs", {**secret, CA_BUNDLE: bundle}
        )
    return CertPlan("keep", "certificates valid", secret)
