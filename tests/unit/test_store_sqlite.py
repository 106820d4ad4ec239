"""SQLite engine specifics beyond the shared contract: a locked database is a retryable error, a closed
store refuses work, and the file is in WAL mode so readers never block writers."""

from __future__ import annotations

import sqlite3

import pytest

from shared.adapters.store_sqlite import SqliteStore
from shared.domain.errors import RetryableError


def test_file_store_uses_wal(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    try:
        conn = sqlite3.connect(tmp_path / "s.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        store.close()


def test_a_database_locked_by_another_writer_is_retryable(tmp_path):
    store = SqliteStore(tmp_path / "s.db", busy_timeout_s=0.05)
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RetryableError, match="unavailable"):
            store.kv_set("k", "v", ttl_s=None, now=0)
        assert store.kv_get("k", now=0) is None
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store.kv_set("k", "v", ttl_s=None, now=0)
    assert store.kv_get("k", now=0) == "v"
    store.close()


def test_a_closed_store_refuses_work(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.kv_get("k", now=0)


def test_a_database_from_before_claim_tokens_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE idempotency (key TEXT PRIMARY KEY, status TEXT NOT NULL, payload_hash TEXT NOT NULL,"
        " expiry_ts REAL NOT NULL, in_progress_expiry_ts REAL, result TEXT)"
    )
    conn.execute("INSERT INTO idempotency VALUES ('bind#old', 'COMPLETED', 'h', 9e9, NULL, '\"kept\"')")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.idem_get("bind#old").result == "kept"
        assert store.idem_claim("bind#new", "h", now=1, in_progress_ttl_s=60, record_ttl_s=600, token="t") is None
        assert store.idem_complete("bind#new", "h", 1, now=2, record_ttl_s=600, token="t") is True
    finally:
        store.close()
