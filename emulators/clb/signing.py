"""TC3-HMAC-SHA256 verification of CLB API requests, matching how tencentcloud-sdk-python-common signs.

The SDK (abstract_client.py `_build_req_with_tc3_signature`, sign.py `sign_tc3`) signs
`POST\\n/\\n\\ncontent-type:<ct>\\nhost:<host>\\n\\ncontent-type;host\\n<sha256(body)>` under the scope
`<UTC date>/clb/tc3_request` with the key chain "TC3"+SecretKey -> date -> service -> "tc3_request"
The dispatcher (`api.py`) calls `SignatureVerifier.verify` for every API request and
answers its `ClbApiError` (AuthFailure.*) like the real service.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from emulators.clb.errors import (
    AUTH_INVALID_AUTHORIZATION,
    AUTH_SECRET_ID_NOT_FOUND,
    AUTH_SIGNATURE_EXPIRE,
    AUTH_SIGNATURE_FAILURE,
    AUTH_TOKEN_FAILURE,
    ClbApiError,
)

ALGORITHM = "TC3-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class EmulatorCredential:
    """A key pair the emulator accepts; `token` set means temporary credentials (X-TC-Token must match)."""

    secret_id: str
    secret_key: str
    token: str | None = None


CredentialsInput = Mapping[str, str] | Iterable[EmulatorCredential]


def normalize_credentials(credentials: CredentialsInput | None) -> dict[str, EmulatorCredential]:
    """Accept `{SecretId: SecretKey}` or `EmulatorCredential`s; returns them keyed by SecretId."""
    if credentials is None:
        return {}
    if isinstance(credentials, Mapping):
        return {sid: EmulatorCredential(sid, key) for sid, key in credentials.items()}
    return {cred.secret_id: cred for cred in credentials}


@dataclass(frozen=True)
class _Authorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def _parse_authorization(value: str | None) -> _Authorization:
    if not value:
        raise ClbApiError(AUTH_INVALID_AUTHORIZATION, "The Authorization header is missing.")
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise ClbApiError(AUTH_INVALID_AUTHORIZATION, f"Authorization must use {ALGORITHM}, got {algorithm!r}.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, item = part.strip().partition("=")
        if sep:
            fields[key] = item
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 4 or scope[3] != "tc3_request" or "SignedHeaders" not in fields or "Signature" not in fields:
        raise ClbApiError(
            AUTH_INVALID_AUTHORIZATION,
            "Authorization must read 'TC3-HMAC-SHA256 Credential=<SecretId>/<date>/<service>/tc3_request, "
            "SignedHeaders=<h1;h2>, Signature=<hex>'.",
        )
    signed = tuple(h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip())
    if "content-type" not in signed or "host" not in signed:
        raise ClbApiError(AUTH_INVALID_AUTHORIZATION, "SignedHeaders must include content-type and host.")
    return _Authorization(scope[0], scope[1], scope[2], signed, fields["Signature"])


def signature_for(
    secret_key: str,
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload: bytes,
    timestamp: str,
    date: str,
    service: str,
) -> str:
    """The hex TC3 signature the SDK would compute for this request (`headers` keyed lower-case)."""
    if headers.get("x-tc-content-sha256") == UNSIGNED_PAYLOAD:
        payload = UNSIGNED_PAYLOAD.encode()
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers)
    canonical_request = "\n".join(
        [
            method,
            path,
            query if method == "GET" else "",
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        ]
    )
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )

    def _hmac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()

    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class SignatureVerifier:
    def __init__(
        self,
        credentials: CredentialsInput | None,
        *,
        service: str = "clb",
        leeway_s: float = 300.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = normalize_credentials(credentials)
        self.service = service
        self.leeway_s = leeway_s
        self.wall_clock = wall_clock

    def verify(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> str:
        """Check the request's TC3 signature; returns the SecretId or raises `ClbApiError` (AuthFailure.*)."""
        lower = {name.lower(): value for name, value in headers.items()}
        auth = _parse_authorization(lower.get("authorization"))
        if auth.service != self.service:
            raise ClbApiError(
                AUTH_INVALID_AUTHORIZATION, f"Credential scope names service {auth.service!r}; use {self.service!r}."
            )
        credential = self.credentials.get(auth.secret_id)
        if credential is None:
            raise ClbApiError(AUTH_SECRET_ID_NOT_FOUND, f"SecretId {auth.secret_id} not found; check your credentials.")
        raw_timestamp = lower.get("x-tc-timestamp", "")
        if not raw_timestamp.isdigit():
            raise ClbApiError(AUTH_INVALID_AUTHORIZATION, "X-TC-Timestamp must be the Unix time in seconds.")
        timestamp = int(raw_timestamp)
        skew = abs(self.wall_clock() - timestamp)
        if skew > self.leeway_s:
            raise ClbApiError(
                AUTH_SIGNATURE_EXPIRE,
                f"Signature expired: X-TC-Timestamp is {int(skew)} s away from server time "
                f"(max {int(self.leeway_s)} s); sync the client clock.",
            )
        if auth.date != datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d"):
            raise ClbApiError(AUTH_SIGNATURE_FAILURE, "The credential scope date does not match X-TC-Timestamp (UTC).")
        if lower.get("x-tc-token") != credential.token and (credential.token or lower.get("x-tc-token")):
            raise ClbApiError(
                AUTH_TOKEN_FAILURE, "X-TC-Token does not match the temporary credentials; refresh the token."
            )
        expected = signature_for(
            credential.secret_key,
            method=method,
            path=path,
            query=query,
            headers=lower,
            signed_headers=auth.signed_headers,
            payload=body,
            timestamp=raw_timestamp,
            date=auth.date,
            service=self.service,
        )
        if not hmac.compare_digest(expected, auth.signature):
            raise ClbApiError(AUTH_SIGNATURE_FAILURE, "The request signature does not match; check the SecretKey.")
        return credential.secret_id
