"""Fixtures shared by the Store contract and concurrency suites: one parametrised `store_url` per engine.

`sqlite-file` is a WAL database in the test's tmp dir; `redis` is the session's real redis-server;
`redis-cluster` is a one-node Redis Cluster, which rejects any script touching keys in two slots.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.adapters.store_factory import open_store
from shared.clock import FakeClock
from shared.ports import Store


def url_for(engine: str, request: pytest.FixtureRequest, tmp_path: object) -> str:
    if engine == "sqlite-file":
        return f"sqlite:///{tmp_path}/store.db"
    if engine == "redis":
        return str(request.getfixturevalue("redis_url"))
    if engine == "redis-cluster":
        return f"{request.getfixturevalue('redis_cluster_url')}?cluster=true"
    raise AssertionError(f"unknown engine {engine}")


@pytest.fixture(params=["sqlite-file", "redis", "redis-cluster"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    return url_for(str(request.param), request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    engine = open_store(store_url)
    yield engine
    engine.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
