"""Certificates and keys for a throwaway real control plane, written to its state directory.

`launcher.py` calls `write_pki` once per control plane, the way envtest prepares its processes: one CA
that signs the API server's serving certificate and every client certificate (the API server trusts it
through `--client-ca-file`), an RSA service-account key pair for `--service-account-key-file`,
`--service-account-signing-key-file` and the controller-manager's `--service-account-private-key-file`,
and client certificates whose subject carries the Kubernetes identity: CN is the user name, O the groups
(`system:masters` for the admin, `system:nodes` for `system:node:<name>`, nothing extra for
`system:kube-controller-manager` and `system:kube-scheduler`, which the bootstrap RBAC policy binds by
user name). EC P-256 keys for TLS keep generation fast on a loaded machine.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emulators.cluster.tls import CertificateAuthority

ADMIN_USER = "clb-direct-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
# The API server's own names: what in-cluster clients and the kubernetes Service's ClusterIP resolve to.
SERVING_HOSTS = [
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: CertificateAuthority
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    sa_public: Path
    sa_private: Path

    def client(self, user: str, groups: list[str] | None = None) -> ClientCert:
        """A client certificate for `user` (in `groups`), issued on first use and kept in the directory."""
        stem = user.replace(":", "-")
        cert_path, key_path = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        if not cert_path.exists():
            cert_pem, key_pem = _client_certificate(self.ca, user, groups or [])
            key_path.write_bytes(key_pem)
            key_path.chmod(0o600)
            cert_path.write_bytes(cert_pem)
        return ClientCert(cert_path, key_path)

    def node(self, node: str) -> ClientCert:
        """The kubelet identity of `node`: what the Node authorizer and NodeRestriction recognise."""
        return self.client(f"system:node:{node}", ["system:nodes"])

    def admin(self) -> ClientCert:
        return self.client(ADMIN_USER, ["system:masters"])


def _client_certificate(ca: CertificateAuthority, user: str, groups: list[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        + [x509.NameAttribute(NameOID.COMMON_NAME, user)]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.private_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass(frozen=True)
class RelayServing:
    """The relay's audit endpoint certificate on 127.0.0.1 and the CA the audit kubeconfig trusts."""

    ca_cert: Path
    cert: Path
    key: Path


def write_relay_serving(directory: Path) -> RelayServing:
    """The API server sends the audit kubeconfig's bearer token only over HTTPS: the relay must serve TLS."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("clb-direct relay CA", validity_days=30)
    pair = ca.issue(["127.0.0.1", "localhost"], common_name="clb-direct-relay")
    ca_cert, cert, key = directory / "relay-ca.crt", directory / "relay.crt", directory / "relay.key"
    ca_cert.write_bytes(ca.cert_pem)
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    key.chmod(0o600)
    return RelayServing(ca_cert, cert, key)


def write_pki(directory: Path) -> Pki:
    """Generate the CA, serving certificate and service-account keys into `directory` (mode 0600 keys)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("clb-direct control plane CA", validity_days=30)
    ca_cert = directory / "ca.crt"
    ca_cert.write_bytes(ca.cert_pem)
    serving = ca.issue(SERVING_HOSTS, common_name="kube-apiserver")
    serving_cert, serving_key = directory / "apiserver.crt", directory / "apiserver.key"
    serving_cert.write_bytes(serving.cert_pem)
    serving_key.write_bytes(serving.key_pem)
    serving_key.chmod(0o600)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_private, sa_public = directory / "sa.key", directory / "sa.pub"
    sa_private.write_bytes(
        sa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    sa_private.chmod(0o600)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Pki(directory, ca, ca_cert, serving_cert, serving_key, sa_public, sa_private)
