"""CA and serving certificate for the admission webhook: reading, generation, issuing for rotation.

Called by the guardian step: `read_certificates` observes the Secret as facts for its plan
(`shared.domain.guardian_plan.decide_certificates`), and its applier mints what the plan decided with
`issue_certificates`. The Secret holds `ca.crt`/`ca.key` (current CA), `tls.crt`/`tls.key` (the serving
pair for the webhook URL's host) and `ca-bundle.crt` (every CA the API server should trust: the current
one plus, during a rotation's overlap, the previous one until it expires). Rotation happens
`rotate_before_days` before the serving certificate expires and renews the CA too, so the bundle briefly
carries both CAs and no admission call fails while the API server and the endpoint catch up.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.domain.guardian_plan import CertificateAction, CertificateState

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


def read_certificates(secret: Mapping[str, str] | None, *, host: str, now: float) -> CertificateState:
    """The facts the guardian's plan needs of its Secret (`decide_certificates`), without its keys."""
    secret = dict(secret or {})
    bundle = secret.get(CA_BUNDLE, "")
    if not all(secret.get(k) for k in (CA_CERT, CA_KEY, TLS_CERT, TLS_KEY)):
        return CertificateState(bundle=bundle)
    try:
        ca = x509.load_pem_x509_certificate(secret[CA_CERT].encode())
        tls = x509.load_pem_x509_certificate(secret[TLS_CERT].encode())
        serialization.load_pem_private_key(secret[TLS_KEY].encode(), password=None)
        serialization.load_pem_private_key(secret[CA_KEY].encode(), password=None)
    except ValueError:
        return CertificateState(complete=True, bundle=bundle)
    try:
        tls.verify_directly_issued_by(ca)
        signed = True
    except (ValueError, TypeError, InvalidSignature):
        signed = False
    return CertificateState(
        complete=True,
        parsable=True,
        tls_not_after=tls.not_valid_after_utc.timestamp(),
        ca_not_after=ca.not_valid_after_utc.timestamp(),
        signed_by_ca=signed,
        hosts=sorted(_hosts(tls)),
        bundle=bundle,
        current_bundle=_bundle(ca, *split_bundle(bundle), now=now),
    )


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


def issue_certificates(
    action: CertificateAction, secret: Mapping[str, str] | None, *, host: str, now: float, validity_days: int
) -> dict[str, str]:
    """The full Secret data `action` makes of `secret`: a new CA and serving pair (create; rotate, keeping
    the earlier CAs in the bundle), a serving pair from the current CA (reissue), or only the bundle."""
    secret = dict(secret or {})
    if action == "create":
        return _fresh(host=host, now=now, validity_days=validity_days, keep_cas=[])
    ca = x509.load_pem_x509_certificate(secret[CA_CERT].encode())
    old_bundle = split_bundle(secret.get(CA_BUNDLE, ""))
    if action == "rotate":
        return _fresh(host=host, now=now, validity_days=validity_days, keep_cas=[ca, *old_bundle])
    bundle = _bundle(ca, *old_bundle, now=now)
    if action == "reissue":
        tls_pem, tls_key = issue_serving_cert(
            secret[CA_CERT], secret[CA_KEY], host=host, now=now, validity_days=validity_days
        )
        return {**secret, TLS_CERT: tls_pem, TLS_KEY: tls_key, CA_BUNDLE: bundle}
    return {**secret, CA_BUNDLE: bundle}  # update-bundle; for keep, the bundle is the Secret's already


def _fresh(*, host: str, now: float, validity_days: int, keep_cas: list[x509.Certificate]) -> dict[str, str]:
    ca_pem, ca_key = generate_ca(now=now, validity_days=validity_days)
    tls_pem, tls_key = issue_serving_cert(ca_pem, ca_key, host=host, now=now, validity_days=validity_days)
    new_ca = x509.load_pem_x509_certificate(ca_pem.encode())
    return {
        CA_CERT: ca_pem,
        CA_KEY: ca_key,
        TLS_CERT: tls_pem,
        TLS_KEY: tls_key,
        CA_BUNDLE: _bundle(new_ca, *keep_cas, now=now),
    }
