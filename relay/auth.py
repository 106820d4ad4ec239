"""Who may POST audit EventLists to the relay: the API server, proven by a bearer token or a client certificate.

The API server's audit webhook is configured with a kubeconfig (`--audit-webhook-config-file`); its
`users[].user` entry authenticates the API server to us in one of two ways, and the relay checks it:

- `token: <secret>`: sent as `Authorization: Bearer <secret>`; the relay reads the same secret from a
  mounted file (`--audit-token-file`, e.g. a Secret volume) and compares in constant time;
- `client-certificate` / `client-key`: the relay serves TLS and verifies a presented certificate
  against `--audit-client-ca-file` (CERT_OPTIONAL, so the kubelet's probes of `/healthz` need none),
  then requires its CN or a DNS SAN to be one of `--audit-client-name` (when given).

Without either, the relay refuses to start its audit source unless `--audit-allow-unauthenticated`
says the endpoint is private (a loopback demo). `/healthz` is always open.
"""

from __future__ import annotations

import hmac
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AuditAuth:
    token: str | None = field(default=None, repr=False)
    client_ca_file: str | None = None
    client_names: frozenset[str] = frozenset()
    allow_unauthenticated: bool = False

    @classmethod
    def from_token_file(cls, path: str, **kwargs: Any) -> AuditAuth:
        token = Path(path).read_text().strip()
        if not token:
            raise ValueError(f"audit token file {path} is empty")
        return cls(token=token, **kwargs)

    @property
    def configured(self) -> bool:
        return bool(self.token or self.client_ca_file or self.allow_unauthenticated)

    def require_configured(self) -> None:
        if not self.configured:
            raise ValueError(
                "the relay's audit endpoint authenticates the API server: set --audit-token-file (the token of "
                "the audit webhook kubeconfig's user) or --audit-client-ca-file (the CA of its client certificate, "
                "with TLS), or --audit-allow-unauthenticated for a private loopback endpoint"
            )

    def apply_to(self, context: ssl.SSLContext | None) -> None:
        """Ask for (and verify) client certificates on the serving TLS context."""
        if self.client_ca_file is None:
            return
        if context is None:
            raise ValueError("--audit-client-ca-file needs TLS: set --tls-cert and --tls-key")
        context.load_verify_locations(cafile=self.client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL

    def allows(self, authorization: str | None, peer_cert: dict[str, Any] | None) -> bool:
        if self.token and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return True
        if self.client_ca_file and peer_cert:
            # A certificate is only in peer_cert once it verified against the client CA.
            return not self.client_names or bool(_cert_names(peer_cert) & self.client_names)
        return self.allow_unauthenticated and not self.token and not self.client_ca_file


def _cert_names(cert: dict[str, Any]) -> set[str]:
    names = {value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names |= {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}
    return names
