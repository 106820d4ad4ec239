"""Redis-only behaviour of the store: key prefixes isolate deployments, expiring keys carry TTLs (for
garbage collection; logic uses the caller's clock), and an unreachable server is a retryable error."""

from __future__ import annotations

import socket

import pytest
import redis

from shared.adapters.store_factory import open_store
from shared.domain.errors import PermanentError, RetryableError
from shared.domain.models import StoredEvent

NOW = 1_700_000_000.0


def test_prefixes_isolate_two_deployments_on_one_server(redis_url):
    blue = open_store(f"{redis_url}?prefix=blue:")
    green = open_store(f"{redis_url}?prefix=green:")
    try:
        blue.kv_set("k", "blue", ttl_s=None, now=NOW)
        assert green.kv_get("k", now=NOW) is None
        assert blue.acquire_lease("clb:lb-1", "a", ttl_s=30, now=NOW) is not None
        assert green.acquire_lease("clb:lb-1", "b", ttl_s=30, now=NOW) is not None
        admin = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = set(admin.keys("*"))
        admin.close()
        assert keys and all(k.startswith(("blue:", "green:")) for k in keys)
    finally:
        blue.close()
        green.close()


def test_expiring_keys_get_ttls_and_permanent_ones_do_not(redis_url):
    store = open_store(redis_url)
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        store.idem_claim("bind#k", "h", now=NOW, in_progress_ttl_s=60, record_ttl_s=600, token="t")
        store.acquire_lease("clb:lb-1", "a", ttl_s=30, now=NOW)
        store.kv_set("gate:u1", "False", ttl_s=10, now=NOW)
        store.kv_set("checkpoint", "x", ttl_s=None, now=NOW)
        store.take_tokens("b", rate_per_s=20, burst=20, n=1, now=NOW)
        store.append_event(StoredEvent(id="e", received_at=NOW, source="s", kind="k"), ttl_s=3600, now=NOW)
        ttl = {key: admin.ttl(key) for key in admin.keys("clb-direct:*")}
        expiring = [k for k in ttl if "{idem:" in k or k == "clb-direct:{lease:clb:lb-1}" or "{kv:gate" in k
                    or "{bucket:" in k or "{events}" in k]  # fmt: skip
        assert len(expiring) == 7
        assert all(ttl[k] > 0 for k in expiring), ttl
        assert ttl["clb-direct:{kv:checkpoint}"] == -1
        assert ttl["clb-direct:{lease:clb:lb-1}:fence"] == -1
    finally:
        admin.close()
        store.close()


def test_unreachable_server_is_retryable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = open_store(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(RetryableError, match="redis store unreachable"):
            store.kv_get("k", now=NOW)
    finally:
        store.close()


def test_a_refused_command_is_a_permanent_error(redis_url):
    admin = redis.Redis.from_url(redis_url)
    admin.set("clb-direct:{kv:clobbered}", "written by something else")
    admin.close()
    store = open_store(redis_url)
    try:
        with pytest.raises(PermanentError, match="redis store refused kv_get"):
            store.kv_get("clobbered", now=NOW)
    finally:
        store.close()
