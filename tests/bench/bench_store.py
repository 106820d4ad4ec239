"""Store engines side by side: ops/s of the hot Store operations on SQLite (file, WAL) and on Redis.

The Redis side is a real `redis-server` the bench starts on a free loopback port and stops afterwards.
Operations: an idempotency claim + complete (every step invocation), a binding record write (every
target change), a token-bucket take (every CLB write) and a lease acquire + release (every CLB writer
turn). One client, one thread: this is per-call latency, the cost a function pays on its critical path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.adapters.store_factory import open_store
from shared.domain.models import BindingRecord
from shared.ports import Store
from tests.bench.common import Row, open_sqlite, redis_server, temp_dir

Operation = Callable[[Store, int], None]


def _idem(store: Store, i: int) -> None:
    key = f"bind#bench-{i}"
    store.idem_claim(key, "hash", now=1000.0 + i, in_progress_ttl_s=60, record_ttl_s=3600, token=f"t{i}")
    store.idem_complete(key, "hash", {"ok": True, "i": i}, now=1000.0 + i, record_ttl_s=3600, token=f"t{i}")


def _binding(store: Store, i: int) -> None:
    store.put_binding(
        BindingRecord(
            lb_id="lb-bench",
            listener_id=f"lbl-{i % 4}",
            pod_uid=f"uid-{i}",
            namespace="default",
            pod_name=f"web-{i}",
            service="default/web",
            ip=f"10.0.{i // 250 % 250}.{i % 250 + 1}",
            port=8080,
            weight=10,
            state="registered",
            updated_at=1000.0 + i,
        )
    )


def _tokens(store: Store, i: int) -> None:
    store.take_tokens("clb-write:bench", rate_per_s=1e9, burst=1e9, n=1, now=1000.0 + i * 1e-3)


def _lease(store: Store, i: int) -> None:
    lease = store.acquire_lease("clb:lb-bench", f"holder-{i}", ttl_s=30, now=1000.0 + i)
    if lease is None:
        raise RuntimeError("lease not granted although the previous holder released it")
    store.release_lease("clb:lb-bench", f"holder-{i}", lease.token)


OPERATIONS: dict[str, Operation] = {
    "idem_claim+complete": _idem,
    "put_binding": _binding,
    "take_tokens": _tokens,
    "lease acquire+release": _lease,
}


def _ops_per_s(store: Store, op: Operation, count: int) -> float:
    for i in range(min(50, count)):  # warm connections, statements and scripts
        op(store, -1 - i)
    started = time.perf_counter()
    for i in range(count):
        op(store, i)
    return count / (time.perf_counter() - started)


def run(quick: bool) -> list[Row]:
    count = 300 if quick else 2000
    rows: list[Row] = []
    with temp_dir("bench-store-") as workdir, redis_server(workdir) as url:
        for name, op in OPERATIONS.items():
            sqlite = open_sqlite(workdir, f"{name.replace(' ', '_').replace('+', '_')}.db")
            redis_store = open_store(f"{url}?prefix=bench-{name.replace(' ', '-')}:")
            try:
                sqlite_rate = _ops_per_s(sqlite, op, count)
                redis_rate = _ops_per_s(redis_store, op, count)
            finally:
                sqlite.close()
                redis_store.close()
            rows.append(Row("store", name, "ops/s", "SQLite", sqlite_rate, "Redis", redis_rate, {"ops": count}))
    return rows
