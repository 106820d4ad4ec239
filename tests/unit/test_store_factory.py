"""open_store picks the engine by URL scheme and explains every malformed URL."""

from __future__ import annotations

import pytest

from shared.adapters.store_factory import open_store
from shared.adapters.store_redis import RedisStore
from shared.adapters.store_sqlite import SqliteStore
from shared.domain.errors import ConfigError


@pytest.mark.parametrize("url", ["memory://", "sqlite://:memory:", "sqlite:///:memory:"])
def test_memory_urls_open_an_in_memory_sqlite_store(url):
    store = open_store(url)
    try:
        assert isinstance(store, SqliteStore)
        assert store.path == ":memory:"
        store.kv_set("k", "v", ttl_s=None, now=0)
        assert store.kv_get("k", now=0) == "v"
    finally:
        store.close()


def test_absolute_sqlite_path_creates_parent_directories(tmp_path):
    target = tmp_path / "deep" / "er" / "state.db"
    store = open_store(f"sqlite:///{target}")
    try:
        assert isinstance(store, SqliteStore)
        assert store.path == str(target)
        assert target.exists()
    finally:
        store.close()


def test_relative_sqlite_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///.clb-direct/state.db")
    try:
        assert store.path == ".clb-direct/state.db"
        assert (tmp_path / ".clb-direct" / "state.db").exists()
    finally:
        store.close()


def test_redis_urls_build_a_redis_store_without_connecting():
    store = open_store("redis://127.0.0.1:6379/2?prefix=tenant-a:")
    try:
        assert isinstance(store, RedisStore)
        assert store.prefix == "tenant-a:"
    finally:
        store.close()
    tls = open_store("rediss://user:pw@redis.example:6380/0")
    try:
        assert isinstance(tls, RedisStore)
        assert tls.prefix == "clb-direct:"
    finally:
        tls.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/x", "not supported"),
        ("", "not supported"),
        ("sqlite://", "no file path"),
        ("sqlite:///", "no file path"),
        ("sqlite://relative.db", "no file path"),
        ("sqlite:///state.db?mode=ro", "no query string"),
        ("redis://", "names no host"),
        ("redis://host:notaport/0", "invalid port"),
        ("redis://host:0/0", "port 0"),
        ("redis://host:6379/zero", "must be a number"),
        ("redis://host:6379/3?cluster=true", "only database 0"),
    ],
)
def test_malformed_urls_raise_config_error(url, message):
    with pytest.raises(ConfigError, match=message):
        open_store(url)


def test_unwritable_sqlite_directory_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot create directory"):
        open_store(f"sqlite:///{blocker}/sub/state.db")
