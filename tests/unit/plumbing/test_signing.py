from __future__ import annotations

import pytest

from shared.signing import SignatureRejected, compute_signature, sign_batch, verify_batch

KEY = b"k" * 32
BODY = b'{"batchId":"abc"}'


def test_sign_then_verify_roundtrip() -> None:
    headers = sign_batch(KEY, BODY, batch_id="b1", now=1000.4)
    assert headers.timestamp == "1000"
    assert headers.signature.startswith("sha256=")
    verify_batch(KEY, BODY, timestamp=headers.timestamp, signature=headers.signature, now=1010, max_skew_s=300)
    assert set(headers.as_dict()) == {"X-Clb-Direct-Timestamp", "X-Clb-Direct-Signature", "X-Clb-Direct-Batch-Id"}


def test_signature_covers_timestamp_and_body() -> None:
    assert compute_signature(KEY, "1000", BODY) != compute_signature(KEY, "1001", BODY)
    assert compute_signature(KEY, "1000", BODY) != compute_signature(KEY, "1000", BODY + b" ")
    assert compute_signature(KEY, "1000", BODY) != compute_signature(b"other", "1000", BODY)


@pytest.mark.parametrize(
    ("timestamp", "signature", "now", "match"),
    [
        (None, None, 1000, "unsigned"),
        ("1000", None, 1000, "unsigned"),
        ("abc", "sha256=00", 1000, "epoch seconds"),
        ("1000", "sha256=" + "0" * 64, 1000, "does not match"),
        ("1000", None, 1000, "unsigned"),
    ],
)
def test_rejections(timestamp: str | None, signature: str | None, now: float, match: str) -> None:
    with pytest.raises(SignatureRejected, match=match):
        verify_batch(KEY, BODY, timestamp=timestamp, signature=signature, now=now, max_skew_s=300)


def test_skew_is_bounded_both_ways() -> None:
    headers = sign_batch(KEY, BODY, batch_id="b1", now=1000)
    for now in (1000 + 301, 1000 - 301):
        with pytest.raises(SignatureRejected, match="away from the router clock"):
            verify_batch(KEY, BODY, timestamp=headers.timestamp, signature=headers.signature, now=now, max_skew_s=300)


def test_empty_keys_are_refused() -> None:
    with pytest.raises(SignatureRejected, match="no relay HMAC key"):
        verify_batch(b"", BODY, timestamp="1", signature="sha256=1", now=1, max_skew_s=300)
    with pytest.raises(Exception, match="HMAC key is empty"):
        sign_batch(b"", BODY, batch_id="b", now=1)


def test_rotation_accepts_either_active_key_and_nothing_else() -> None:
    old, new = b"o" * 32, b"n" * 32
    for key in (old, new):
        headers = sign_batch(key, BODY, batch_id="b1", now=1000)
        verify_batch([new, old], BODY, timestamp=headers.timestamp, signature=headers.signature, now=1000, max_skew_s=9)
    stranger = sign_batch(b"x" * 32, BODY, batch_id="b1", now=1000)
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_batch(
            [new, old], BODY, timestamp=stranger.timestamp, signature=stranger.signature, now=1000, max_skew_s=9
        )
    retired = sign_batch(old, BODY, batch_id="b1", now=1000)
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_batch([new], BODY, timestamp=retired.timestamp, signature=retired.signature, now=1000, max_skew_s=9)


def test_settings_list_the_active_keys_newest_first() -> None:
    from shared.config import Settings

    settings = Settings.load({"CLB_DIRECT_RELAY_HMAC_KEY": "new", "CLB_DIRECT_RELAY_HMAC_KEY_PREVIOUS": "old"})
    assert settings.relay_hmac_keys() == [b"new", b"old"]
    assert Settings.load({}).relay_hmac_keys() == []
