"""SQLite engine of the `Store` port: the embedded default (a file in WAL mode) and the in-memory store.

Built by `shared.adapters.store_factory.open_store` from `sqlite:///path` / `memory://` URLs; handlers,
the CLI and the local runtime use it through the `Store` protocol. Safe across threads (a pool of
connections, one per concurrent caller) and across processes (WAL, `BEGIN IMMEDIATE` for every
read-modify-write, a generous busy timeout). An in-memory database lives in one connection, so it is
shared by the threads of one process behind a lock and is invisible to other processes. Expiry always
uses the `now` the caller passes, never the wall clock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from shared.adapters import store_rules
from shared.domain.errors import RetryableError
from shared.domain.models import BindingRecord, DueItem, IdempotencyRecord, Lease, SelectorEntry, StoredEvent

MEMORY = ":memory:"
KV_READ_CHUNK = 500  # keys per IN (...) query: under the 999 bound parameters of older SQLite builds

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT PRIMARY KEY, status TEXT NOT NULL, payload_hash TEXT NOT NULL,
        expiry_ts REAL NOT NULL, in_progress_expiry_ts REAL, result TEXT, claim_token TEXT)""",
    "CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expiry_ts)",
    """CREATE TABLE IF NOT EXISTS bindings (
        lb_id TEXT NOT NULL, listener_id TEXT NOT NULL, pod_uid TEXT NOT NULL, service TEXT NOT NULL,
        record TEXT NOT NULL, PRIMARY KEY (lb_id, listener_id, pod_uid))""",
    "CREATE INDEX IF NOT EXISTS bindings_service ON bindings (service)",
    "CREATE INDEX IF NOT EXISTS bindings_pod ON bindings (pod_uid)",
    # A released lease keeps its row (holder NULL) so the next holder's fencing token is still higher.
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY, holder TEXT, token INTEGER NOT NULL, expires_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS buckets (
        name TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY, received_at REAL NOT NULL, expires_at REAL NOT NULL, event TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS events_received ON events (received_at)",
    "CREATE INDEX IF NOT EXISTS events_expiry ON events (expires_at)",
    """CREATE TABLE IF NOT EXISTS selectors (
        namespace TEXT NOT NULL, service TEXT NOT NULL, entry TEXT NOT NULL,
        PRIMARY KEY (namespace, service))""",
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL)",
    "CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at)",
    """CREATE TABLE IF NOT EXISTS pending (
        queue TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (queue, member))""",
    """CREATE TABLE IF NOT EXISTS schedule (
        key TEXT PRIMARY KEY, due_at REAL NOT NULL, payload TEXT NOT NULL, claim TEXT NOT NULL,
        attempts INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS schedule_due ON schedule (due_at, key)",
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a database written by an older version up to this schema (claim tokens were added later)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(idempotency)")}
    if "claim_token" not in columns:
        conn.execute("ALTER TABLE idempotency ADD COLUMN claim_token TEXT")


_IDEM_COLUMNS = "key, status, payload_hash, expiry_ts, in_progress_expiry_ts, result, claim_token"


class SqliteStore:
    """The KV table in one SQLite database file (or in memory)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self._busy_timeout_s = busy_timeout_s
        self._memory = self.path == MEMORY
        # One shared connection (and a lock) for :memory:; a pool of per-caller connections for files.
        self._memory_lock = threading.RLock() if self._memory else None
        self._pool: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        with self._tx(write=True) as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            _add_missing_columns(conn)

    # --------------------------------------------------------------------------------------- plumbing
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        if not self._memory:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        self._all.append(conn)
        return conn

    def _checkout(self) -> sqlite3.Connection:
        with self._pool_lock:
            if self._closed:
                raise RuntimeError(f"sqlite store {self.path} is closed")
            if self._pool:
                return self._pool.pop()
            return self._connect()

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._pool_lock:
            if self._closed:
                conn.close()
            else:
                self._pool.append(conn)

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: `BEGIN IMMEDIATE` takes the write lock up front so read-modify-write
        sequences from other threads and processes queue behind it instead of failing at commit."""
        with self._memory_lock or nullcontext():
            conn = self._checkout()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise RetryableError(
                    f"sqlite store {self.path} is unavailable ({exc}); retry shortly, and check that the "
                    "file is on a local disk and not locked by another program",
                    delay_s=1.0,
                ) from exc
            finally:
                self._checkin(conn)

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._pool.clear()
            self._all.clear()

    # ------------------------------------------------------------------------------------ idempotency
    @staticmethod
    def _idem_row(row: tuple[Any, ...] | None) -> IdempotencyRecord | None:
        if row is None:
            return None
        key, status, payload_hash, expiry_ts, in_progress_expiry_ts, result, claim_token = row
        return IdempotencyRecord(
            key=key,
            status=status,
            payload_hash=payload_hash,
            expiry_ts=expiry_ts,
            in_progress_expiry_ts=in_progress_expiry_ts,
            result=None if result is None else json.loads(result),
            claim_token=claim_token,
        )

    def _idem_select(self, conn: sqlite3.Connection, key: str) -> IdempotencyRecord | None:
        row = conn.execute(
            f"SELECT {_IDEM_COLUMNS} FROM idempotency WHERE key = ?",
            (key,),
        ).fetchone()
        return self._idem_row(row)

    def idem_claim(
        self, key: str, payload_hash: str, *, now: float, in_progress_ttl_s: float, record_ttl_s: float, token: str
    ) -> IdempotencyRecord | None:
        with self._tx(write=True) as conn:
            replay = store_rules.claim_decision(self._idem_select(conn, key), payload_hash, now)
            if replay is not None:
                return replay
            conn.execute(
                f"INSERT OR REPLACE INTO idempotency ({_IDEM_COLUMNS}) VALUES (?, 'IN_PROGRESS', ?, ?, ?, NULL, ?)",
                (key, payload_hash, now + record_ttl_s, now + in_progress_ttl_s, token),
            )
            return None

    def idem_complete(
        self, key: str, payload_hash: str, result: Any, *, now: float, record_ttl_s: float, token: str
    ) -> bool:
        encoded = store_rules.dumps(result)
        with self._tx(write=True) as conn:
            written = conn.execute(
                "UPDATE idempotency SET status = 'COMPLETED', payload_hash = ?, expiry_ts = ?,"
                " in_progress_expiry_ts = NULL, result = ?"
                " WHERE key = ? AND status = 'IN_PROGRESS' AND claim_token = ?",
                (payload_hash, now + record_ttl_s, encoded, key, token),
            ).rowcount
            conn.execute("DELETE FROM idempotency WHERE expiry_ts <= ?", (now,))
            return written == 1

    def idem_release(self, key: str, *, token: str) -> bool:
        with self._tx(write=True) as conn:
            deleted = conn.execute(
                "DELETE FROM idempotency WHERE key = ? AND status = 'IN_PROGRESS' AND claim_token = ?", (key, token)
            ).rowcount
            return deleted == 1

    def idem_get(self, key: str) -> IdempotencyRecord | None:
        with self._tx(write=False) as conn:
            return self._idem_select(conn, key)

    # --------------------------------------------------------------------------------------- bindings
    def put_binding(self, record: BindingRecord) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?)",
                (record.lb_id, record.listener_id, record.pod_uid, record.service, record.model_dump_json()),
            )

    def get_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> BindingRecord | None:
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT record FROM bindings WHERE lb_id = ? AND listener_id = ? AND pod_uid = ?",
                (lb_id, listener_id, pod_uid),
            ).fetchone()
        return None if row is None else BindingRecord.model_validate_json(row[0])

    def list_bindings(
        self,
        *,
        lb_id: str | None = None,
        service: str | None = None,
        pod_uid: str | None = None,
        ip: str | None = None,
        pods: Sequence[str] | None = None,
    ) -> list[BindingRecord]:
        clauses: list[str] = []
        params: list[str] = []
        filters = (("lb_id", lb_id), ("service", service), ("pod_uid", pod_uid), ("json_extract(record, '$.ip')", ip))
        for column, value in filters:
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        names = sorted(set(pods)) if pods is not None else [None]
        rows: list[tuple[str]] = []
        with self._tx(write=False) as conn:
            for start in range(0, max(len(names), 1), KV_READ_CHUNK):
                chunk = names[start : start + KV_READ_CHUNK]
                where = list(clauses)
                if pods is not None:
                    if not chunk:
                        break
                    marks = ",".join("?" * len(chunk))
                    where.append(
                        f"json_extract(record, '$.namespace') || '/' || json_extract(record, '$.pod_name') IN ({marks})"
                    )
                text = f" WHERE {' AND '.join(where)}" if where else ""
                values = [*params, *(n for n in chunk if n is not None)]
                rows.extend(conn.execute(f"SELECT record FROM bindings{text}", values).fetchall())
        records = [BindingRecord.model_validate_json(row[0]) for row in rows]
        return sorted(records, key=lambda r: (r.lb_id, r.listener_id, r.pod_uid))

    def delete_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                "DELETE FROM bindings WHERE lb_id = ? AND listener_id = ? AND pod_uid = ?",
                (lb_id, listener_id, pod_uid),
            )

    # ----------------------------------------------------------------------------------------- leases
    def acquire_lease(self, name: str, holder: str, *, ttl_s: float, now: float) -> Lease | None:
        expires_at = now + ttl_s
        with self._tx(write=True) as conn:
            row = conn.execute("SELECT holder, token, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] is not None and row[2] > now:
                if row[0] != holder:
                    return None
                conn.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (expires_at, name))
                return Lease(name=name, holder=holder, token=row[1], expires_at=expires_at)
            token = (row[1] if row is not None else 0) + 1
            conn.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?)", (name, holder, token, expires_at))
            return Lease(name=name, holder=holder, token=token, expires_at=expires_at)

    def renew_lease(self, name: str, holder: str, token: int, *, ttl_s: float, now: float) -> bool:
        # A matching token means nobody acquired the lease since: extending it is safe even if it lapsed.
        with self._tx(write=True) as conn:
            cursor = conn.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND token = ?",
                (now + ttl_s, name, holder, token),
            )
            return cursor.rowcount == 1

    def release_lease(self, name: str, holder: str, token: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                "UPDATE leases SET holder = NULL, expires_at = 0 WHERE name = ? AND holder = ? AND token = ?",
                (name, holder, token),
            )

    def current_lease(self, name: str, *, now: float) -> Lease | None:
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT holder, token, expires_at FROM leases WHERE name = ? AND holder IS NOT NULL AND expires_at > ?",
                (name, now),
            ).fetchone()
        return None if row is None else Lease(name=name, holder=row[0], token=row[1], expires_at=row[2])

    # ---------------------------------------------------------------------------------- token buckets
    def take_tokens(self, bucket: str, *, rate_per_s: float, burst: float, n: float, now: float) -> float:
        store_rules.check_bucket_request(bucket, rate_per_s=rate_per_s, burst=burst, n=n)
        with self._tx(write=True) as conn:
            row = conn.execute("SELECT tokens, updated_at FROM buckets WHERE name = ?", (bucket,)).fetchone()
            tokens, updated_at, wait = store_rules.refill_and_take(
                None if row is None else row[0],
                None if row is None else row[1],
                rate_per_s=rate_per_s,
                burst=burst,
                n=n,
                now=now,
            )
            conn.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (bucket, tokens, updated_at))
            return wait

    # -------------------------------------------------------------------------------------- event log
    def append_event(self, event: StoredEvent, *, ttl_s: float, now: float) -> bool:
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM events WHERE expires_at <= ?", (now,))
            cursor = conn.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                (event.id, event.received_at, now + ttl_s, event.model_dump_json()),
            )
            return cursor.rowcount == 1

    def get_event(self, event_id: str, *, now: float) -> StoredEvent | None:
        with self._tx(write=False) as conn:
            row = conn.execute("SELECT event FROM events WHERE id = ? AND expires_at > ?", (event_id, now)).fetchone()
        return None if row is None else StoredEvent.model_validate_json(row[0])

    def list_events(self, *, now: float, limit: int = 50) -> list[StoredEvent]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT event FROM events WHERE expires_at > ? ORDER BY received_at DESC, id DESC LIMIT ?",
                (now, max(limit, 0)),
            ).fetchall()
        return [StoredEvent.model_validate_json(row[0]) for row in rows]

    # --------------------------------------------------------------------------------- selector index
    def put_selector(self, entry: SelectorEntry) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO selectors VALUES (?, ?, ?)",
                (entry.namespace, entry.service, entry.model_dump_json()),
            )

    def delete_selector(self, namespace: str, service: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM selectors WHERE namespace = ? AND service = ?", (namespace, service))

    def list_selectors(self, namespace: str) -> list[SelectorEntry]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT entry FROM selectors WHERE namespace = ? ORDER BY service", (namespace,)
            ).fetchall()
        return [SelectorEntry.model_validate_json(row[0]) for row in rows]

    # ------------------------------------------------------------------------------------- generic kv
    def kv_get(self, key: str, *, now: float) -> str | None:
        with self._tx(write=False) as conn:
            row = conn.execute(
                "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)", (key, now)
            ).fetchone()
        return None if row is None else str(row[0])

    def kv_get_many(self, keys: Sequence[str], *, now: float) -> dict[str, str]:
        wanted = sorted(set(keys))
        found: dict[str, str] = {}
        with self._tx(write=False) as conn:
            for start in range(0, len(wanted), KV_READ_CHUNK):
                chunk = wanted[start : start + KV_READ_CHUNK]
                rows = conn.execute(
                    f"SELECT key, value FROM kv WHERE key IN ({','.join('?' * len(chunk))}) "
                    "AND (expires_at IS NULL OR expires_at > ?)",
                    (*chunk, now),
                ).fetchall()
                found.update((str(key), str(value)) for key, value in rows)
        return found

    def kv_set(self, key: str, value: str, *, ttl_s: float | None, now: float) -> None:
        expires_at = None if ttl_s is None else now + ttl_s
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM kv WHERE expires_at <= ?", (now,))
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (key, value, expires_at))

    def kv_set_if_absent(self, key: str, value: str, *, ttl_s: float | None, now: float) -> bool:
        expires_at = None if ttl_s is None else now + ttl_s
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM kv WHERE expires_at <= ?", (now,))
            cursor = conn.execute("INSERT OR IGNORE INTO kv VALUES (?, ?, ?)", (key, value, expires_at))
            return cursor.rowcount == 1

    def kv_delete(self, key: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))

    # ----------------------------------------------------------------------------------- pending sets
    def pending_add(self, queue: str, members: Sequence[str]) -> None:
        if not members:
            return
        with self._tx(write=True) as conn:
            conn.executemany("INSERT OR IGNORE INTO pending VALUES (?, ?)", [(queue, m) for m in members])

    def pending_take(self, queue: str) -> list[str]:
        with self._tx(write=True) as conn:
            rows = conn.execute("SELECT member FROM pending WHERE queue = ? ORDER BY member", (queue,)).fetchall()
            conn.execute("DELETE FROM pending WHERE queue = ?", (queue,))
        return [str(row[0]) for row in rows]

    def pending_members(self, queue: str) -> list[str]:
        with self._tx(write=False) as conn:
            rows = conn.execute("SELECT member FROM pending WHERE queue = ? ORDER BY member", (queue,)).fetchall()
        return [str(row[0]) for row in rows]

    # -------------------------------------------------------------------------------------- schedule
    def schedule_put(self, key: str, due_at: float, payload: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute("INSERT OR REPLACE INTO schedule VALUES (?, ?, ?, '', 0)", (key, due_at, payload))

    def schedule_take_due(self, *, now: float, limit: int, visibility_s: float, claim: str) -> list[DueItem]:
        with self._tx(write=True) as conn:
            rows = conn.execute(
                "SELECT key, due_at, payload, attempts FROM schedule WHERE due_at <= ? ORDER BY due_at, key LIMIT ?",
                (now, max(limit, 0)),
            ).fetchall()
            conn.executemany(
                "UPDATE schedule SET due_at = ?, claim = ?, attempts = attempts + 1 WHERE key = ?",
                [(now + visibility_s, claim, row[0]) for row in rows],
            )
        return [DueItem(key=row[0], due_at=row[1], payload=row[2], claim=claim, attempts=row[3] + 1) for row in rows]

    def schedule_complete(self, key: str, claim: str) -> bool:
        with self._tx(write=True) as conn:
            cursor = conn.execute("DELETE FROM schedule WHERE key = ? AND claim = ? AND claim != ''", (key, claim))
            return cursor.rowcount == 1

    def schedule_cancel(self, key: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute("DELETE FROM schedule WHERE key = ?", (key,))

    def schedule_list(self, *, limit: int = 100) -> list[DueItem]:
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT key, due_at, payload, claim, attempts FROM schedule ORDER BY due_at, key LIMIT ?",
                (max(limit, 0),),
            ).fetchall()
        return [DueItem(key=r[0], due_at=r[1], payload=r[2], claim=r[3], attempts=r[4]) for r in rows]
