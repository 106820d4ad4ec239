"""The relay's audit endpoint authenticates the API server (issue 14 #9): a bearer token or a client certificate.

The API server's audit webhook kubeconfig carries either `users[].user.token` (sent as
`Authorization: Bearer`) or a client certificate; the relay accepts an EventList only from a caller
that proves one of them, answers 401 otherwise, and keeps `/healthz` open for the kubelet's probes.
A relay with the audit source and no authentication configured refuses to start unless told
explicitly that the endpoint is private.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emulators.cluster.tls import CertificateAuthority
from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig

TOKEN = "audit-token-7f3a9c"  # test value
BODY = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []}).encode()


def _ok(_url: str, _body: bytes, _headers: dict[str, str], _timeout_s: float) -> int:
    return 200


def _batcher() -> Batcher:
    return Batcher(BatcherConfig(router_url="http://router/", hmac_key=b"k"), post=_ok)


def _post(url: str, *, token: str | None = None, context: ssl.SSLContext | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url + "/", data=BODY, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _healthz(url: str, context: ssl.SSLContext | None = None) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=10, context=context) as response:
        return int(response.status)


def test_the_bearer_token_is_required(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    relay = Relay(batcher=_batcher(), sources=["audit"], audit_auth=AuditAuth.from_token_file(str(token_file)))
    relay.start()
    try:
        assert _post(relay.url) == 401
        assert _post(relay.url, token="wrong") == 401
        assert _post(relay.url, token=TOKEN) == 200
        assert _healthz(relay.url) == 200
        assert relay.stats()["relay"]["audit_unauthenticated"] == 2
    finally:
        relay.stop()


def test_a_client_certificate_from_the_trusted_ca_is_required(tmp_path: Path) -> None:
    server_ca, client_ca, stranger_ca = (CertificateAuthority(n) for n in ("server", "apiserver clients", "other"))
    serving = server_ca.issue(["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(serving.cert_pem)
    (tmp_path / "tls.key").write_bytes(serving.key_pem)
    (tmp_path / "client-ca.crt").write_bytes(client_ca.cert_pem)
    auth = AuditAuth(client_ca_file=str(tmp_path / "client-ca.crt"), client_names=frozenset({"kube-apiserver"}))
    relay = Relay(
        batcher=_batcher(),
        sources=["audit"],
        tls_cert=str(tmp_path / "tls.crt"),
        tls_key=str(tmp_path / "tls.key"),
        audit_auth=auth,
    )
    relay.start()

    def context(pair: object | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=server_ca.cert_pem.decode())
        if pair is not None:
            cert, key = tmp_path / "c.crt", tmp_path / "c.key"
            cert.write_bytes(pair.cert_pem)  # type: ignore[attr-defined]
            key.write_bytes(pair.key_pem)  # type: ignore[attr-defined]
            ctx.load_cert_chain(str(cert), str(key))
        return ctx

    try:
        assert _healthz(relay.url, context(None)) == 200  # probes need no client certificate
        assert _post(relay.url, context=context(None)) == 401
        other_name = client_ca.issue(["127.0.0.1"], common_name="someone-else", client=True)
        assert _post(relay.url, context=context(other_name)) == 401
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _post(
                relay.url, context=context(stranger_ca.issue(["127.0.0.1"], common_name="kube-apiserver", client=True))
            )
        apiserver = client_ca.issue(["127.0.0.1"], common_name="kube-apiserver", client=True)
        assert _post(relay.url, context=context(apiserver)) == 200
    finally:
        relay.stop()


def test_an_audit_relay_without_authentication_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="token|client"):
        Relay(batcher=_batcher(), sources=["audit"])
    Relay(batcher=_batcher(), sources=["audit"], audit_auth=AuditAuth(allow_unauthenticated=True))
