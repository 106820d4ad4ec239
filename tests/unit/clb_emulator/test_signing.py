"""TC3 verification against signatures computed by the SDK's own `Sign.sign_tc3`."""

from __future__ import annotations

import hashlib
import json

import pytest
from tencentcloud.common.sign import Sign

from emulators.clb.errors import ClbApiError
from emulators.clb.signing import EmulatorCredential, SignatureVerifier

NOW = 1_700_000_000
DATE = "2023-11-14"
BODY = json.dumps({"LoadBalancerIds": ["lb-1"]}).encode()


def _sdk_signature(
    secret_key: str, body: bytes = BODY, host: str = "clb.tencentcloudapi.com", payload_hash: str | None = None
) -> str:
    digest = payload_hash or hashlib.sha256(body).hexdigest()
    canonical = f"POST\n/\n\ncontent-type:application/json\nhost:{host}\n\ncontent-type;host\n{digest}"
    to_sign = f"TC3-HMAC-SHA256\n{NOW}\n{DATE}/clb/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return str(Sign.sign_tc3(secret_key, DATE, "clb", to_sign))


def _headers(signature: str, secret_id: str = "AKID1", **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Host": "clb.tencentcloudapi.com",
        "X-TC-Timestamp": str(NOW),
        "Authorization": f"TC3-HMAC-SHA256 Credential={secret_id}/{DATE}/clb/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}",
        **extra,
    }


def _verifier(now: float = NOW) -> SignatureVerifier:
    creds = [EmulatorCredential("AKID1", "key-1"), EmulatorCredential("AKIDTMP", "key-2", "tok")]
    return SignatureVerifier(creds, wall_clock=lambda: now)


def _code(verifier: SignatureVerifier, headers: dict[str, str], body: bytes = BODY) -> str:
    with pytest.raises(ClbApiError) as info:
        verifier.verify("POST", "/", "", headers, body)
    return info.value.code


def test_accepts_what_the_sdk_signs() -> None:
    assert _verifier().verify("POST", "/", "", _headers(_sdk_signature("key-1")), BODY) == "AKID1"


def test_host_with_port_is_part_of_the_signature() -> None:
    headers = _headers(_sdk_signature("key-1", host="127.0.0.1:8080"))
    headers["Host"] = "127.0.0.1:8080"
    assert _verifier().verify("POST", "/", "", headers, BODY) == "AKID1"
    headers["Host"] = "127.0.0.1:8081"
    assert _code(_verifier(), headers) == "AuthFailure.SignatureFailure"


def test_unsigned_payload_mode() -> None:
    headers = _headers(_sdk_signature("key-1", payload_hash=hashlib.sha256(b"UNSIGNED-PAYLOAD").hexdigest()))
    headers["X-TC-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    assert _verifier().verify("POST", "/", "", headers, b"anything") == "AKID1"


def test_tampered_body_fails() -> None:
    assert _code(_verifier(), _headers(_sdk_signature("key-1")), BODY + b" ") == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("skew", [301, -301])
def test_timestamp_more_than_300_s_away_expires(skew: int) -> None:
    assert _code(_verifier(NOW + skew), _headers(_sdk_signature("key-1"))) == "AuthFailure.SignatureExpire"


def test_timestamp_within_300_s_is_fine() -> None:
    _verifier(NOW + 300).verify("POST", "/", "", _headers(_sdk_signature("key-1")), BODY)


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "HmacSHA256 Credential=AKID1/2023-11-14/clb/tc3_request, SignedHeaders=content-type;host, Signature=x",
        "TC3-HMAC-SHA256 Credential=AKID1/2023-11-14/clb, SignedHeaders=content-type;host, Signature=x",
        "TC3-HMAC-SHA256 Credential=AKID1/2023-11-14/clb/tc3_request, SignedHeaders=host, Signature=x",
        "TC3-HMAC-SHA256 Credential=AKID1/2023-11-14/cvm/tc3_request, SignedHeaders=content-type;host, Signature=x",
    ],
)
def test_malformed_authorization(authorization: str) -> None:
    headers = _headers("x")
    headers["Authorization"] = authorization
    assert _code(_verifier(), headers) == "AuthFailure.InvalidAuthorization"


def test_scope_date_must_match_the_timestamp() -> None:
    headers = _headers(_sdk_signature("key-1"))
    headers["Authorization"] = headers["Authorization"].replace(DATE, "2023-11-13")
    assert _code(_verifier(), headers) == "AuthFailure.SignatureFailure"


def test_unknown_secret_id_and_tokens() -> None:
    assert _code(_verifier(), _headers(_sdk_signature("key-1"), "AKIDX")) == "AuthFailure.SecretIdNotFound"
    temp = _sdk_signature("key-2")
    assert _code(_verifier(), _headers(temp, "AKIDTMP")) == "AuthFailure.TokenFailure"
    assert _code(_verifier(), _headers(temp, "AKIDTMP", **{"X-TC-Token": "bad"})) == "AuthFailure.TokenFailure"
    assert _verifier().verify("POST", "/", "", _headers(temp, "AKIDTMP", **{"X-TC-Token": "tok"}), BODY) == "AKIDTMP"


def test_mapping_credentials_are_accepted() -> None:
    verifier = SignatureVerifier({"AKID1": "key-1"}, wall_clock=lambda: NOW)
    assert verifier.verify("POST", "/", "", _headers(_sdk_signature("key-1")), BODY) == "AKID1"
