"""Redis engine of the `Store` port (production: TencentDB for Redis, standalone or cluster).

Built by `shared.adapters.store_factory.open_store` from `redis://` / `rediss://` URLs. Every
read-modify-write is one Lua script (`store_redis_scripts.py`), so concurrent function instances never
interleave. Keys are `<prefix>{<tag>}...`: the hash tag puts every key one operation touches in one
Cluster slot (a lease and its fence counter; all binding records and their indexes; the event log).
Expiry logic uses the caller's `now`; Redis TTLs (logical lifetime plus a grace period) only collect
garbage. Connection failures surface as `RetryableError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
import redis.cluster

from shared.adapters import store_redis_scripts as lua
from shared.adapters import store_rules
from shared.domain.errors import PermanentError, RetryableError
from shared.domain.models import BindingRecord, DueItem, IdempotencyRecord, Lease, SelectorEntry, StoredEvent

DEFAULT_PREFIX = "clb-direct:"


def _ms(seconds: float) -> int:
    """Redis TTL in milliseconds: the logical lifetime plus the grace period, at least one second."""
    return max(int((seconds + store_rules.TTL_GRACE_S) * 1000), 1000)


def _num(value: float) -> str:
    return repr(float(value))


class RedisStore:
    """The KV table in Redis; `prefix` namespaces every key (several deployments can share a server)."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, cluster: bool = False) -> None:
        self.prefix = prefix
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": 10.0,
            "socket_connect_timeout": 5.0,
        }
        # decode_responses=True makes every reply a str, which redis-py's annotations cannot express.
        self._client: Any = (
            redis.cluster.RedisCluster.from_url(url, **options)
            if cluster
            else redis.Redis.from_url(url, health_check_interval=30, **options)
        )
        self._scripts = {
            name: self._client.register_script(getattr(lua, name))
            for name in (
                "IDEM_CLAIM",
                "IDEM_COMPLETE",
                "IDEM_RELEASE",
                "BINDING_WRITE",
                "LEASE_ACQUIRE",
                "LEASE_RENEW",
                "LEASE_RELEASE",
                "TAKE_TOKENS",
                "APPEND_EVENT",
                "KV_SET",
                "PENDING_TAKE",
                "SCHEDULE_PUT",
                "SCHEDULE_TAKE",
                "SCHEDULE_REMOVE",
            )
        }

    # --------------------------------------------------------------------------------------- plumbing
    def _key(self, tag: str, suffix: str = "") -> str:
        return f"{self.prefix}{{{tag}}}{suffix}"

    def _run(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        return self._scripts[script](keys=list(keys), args=list(args))

    @contextmanager
    def _guard(self, operation: str) -> Iterator[None]:
        """Translate redis-py errors: lost connections are retryable, refusals are not."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise RetryableError(
                f"redis store unreachable during {operation} ({exc}); retry shortly and check the "
                "store URL, network path and Redis health",
                delay_s=1.0,
            ) from exc
        except redis.RedisError as exc:
            raise PermanentError(
                f"redis store refused {operation} ({exc}); check the store URL, credentials, ACLs and "
                "that the server runs Redis >= 6.2 with Lua scripting enabled"
            ) from exc

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------------------------ idempotency
    def idem_claim(
        self, key: str, payload_hash: str, *, now: float, in_progress_ttl_s: float, record_ttl_s: float, token: str
    ) -> IdempotencyRecord | None:
        with self._guard("idem_claim"):
            live = self._run(
                "IDEM_CLAIM",
                [self._key(f"idem:{key}")],
                [
                    _num(now),
                    payload_hash,
                    _num(now + record_ttl_s),
                    _num(now + in_progress_ttl_s),
                    _ms(record_ttl_s),
                    token,
                ],
            )
        if live is None:
            return None
        status, stored_hash, expiry_ts, in_progress_expiry_ts, result = live
        record = IdempotencyRecord(
            key=key,
            status=status,
            payload_hash=stored_hash,
            expiry_ts=float(expiry_ts),
            in_progress_expiry_ts=float(in_progress_expiry_ts) if in_progress_expiry_ts else None,
            result=json.loads(result) if result else None,
        )
        return store_rules.claim_decision(record, payload_hash, now)

    def idem_complete(
        self, key: str, payload_hash: str, result: Any, *, now: float, record_ttl_s: float, token: str
    ) -> bool:
        encoded = store_rules.dumps(result)
        with self._guard("idem_complete"):
            written = self._run(
                "IDEM_COMPLETE",
                [self._key(f"idem:{key}")],
                [payload_hash, _num(now + record_ttl_s), encoded, _ms(record_ttl_s), token],
            )
        return bool(written)

    def idem_release(self, key: str, *, token: str) -> bool:
        with self._guard("idem_release"):
            return bool(self._run("IDEM_RELEASE", [self._key(f"idem:{key}")], [token]))

    def idem_get(self, key: str) -> IdempotencyRecord | None:
        with self._guard("idem_get"):
            fields: dict[str, str] = self._client.hgetall(self._key(f"idem:{key}"))
        if not fields:
            return None
        return IdempotencyRecord(
            key=key,
            status=fields["status"],
            payload_hash=fields["payload_hash"],
            expiry_ts=float(fields["expiry_ts"]),
            claim_token=fields.get("claim_token") or None,
            in_progress_expiry_ts=float(fields["in_progress_expiry_ts"])
            if fields.get("in_progress_expiry_ts")
            else None,
            result=json.loads(fields["result"]) if fields.get("result") else None,
        )

    # --------------------------------------------------------------------------------------- bindings
    # All binding keys share the `{bindings}` tag: an update touches the record and three indexes at
    # once. Size is bounded by (CLBs x backend quota), well within one slot.
    def _binding_keys(self, lb_id: str, service: str, pod_uid: str, old_service: str) -> list[str]:
        return [
            self._key("bindings", ":records"),
            self._key("bindings", f":lb:{lb_id}"),
            self._key("bindings", f":svc:{service}"),
            self._key("bindings", f":pod:{pod_uid}"),
            self._key("bindings", f":svc:{old_service}"),
        ]

    @staticmethod
    def _binding_field(lb_id: str, listener_id: str, pod_uid: str) -> str:
        return json.dumps([lb_id, listener_id, pod_uid], separators=(",", ":"))

    def _write_binding(self, lb_id: str, listener_id: str, pod_uid: str, record: BindingRecord | None) -> None:
        field = self._binding_field(lb_id, listener_id, pod_uid)
        new = record.model_dump_json() if record is not None else ""
        with self._guard("binding write"):
            # Compare-and-set on the current record, so the old service index is known to the script.
            while True:
                current: str = self._client.hget(self._key("bindings", ":records"), field) or ""
                old_service = BindingRecord.model_validate_json(current).service if current else ""
                service = record.service if record is not None else old_service
                keys = self._binding_keys(lb_id, service, pod_uid, old_service)
                if self._run("BINDING_WRITE", keys, [field, current, new]) == 1:
                    return

    def put_binding(self, record: BindingRecord) -> None:
        self._write_binding(record.lb_id, record.listener_id, record.pod_uid, record)

    def get_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> BindingRecord | None:
        with self._guard("get_binding"):
            raw = self._client.hget(self._key("bindings", ":records"), self._binding_field(lb_id, listener_id, pod_uid))
        return None if raw is None else BindingRecord.model_validate_json(raw)

    def list_bindings(
        self,
        *,
        lb_id: str | None = None,
        service: str | None = None,
        pod_uid: str | None = None,
        ip: str | None = None,
        pods: Sequence[str] | None = None,
    ) -> list[BindingRecord]:
        records_key = self._key("bindings", ":records")
        with self._guard("list_bindings"):
            if pod_uid is not None or lb_id is not None or service is not None:
                # Start from the most selective index; the remaining filters apply below.
                index = (
                    f":pod:{pod_uid}"
                    if pod_uid is not None
                    else f":lb:{lb_id}"
                    if lb_id is not None
                    else f":svc:{service}"
                )
                fields = sorted(self._client.smembers(self._key("bindings", index)))
                raws = self._client.hmget(records_key, fields) if fields else []
            else:
                raws = list(self._client.hgetall(records_key).values())
        # No address or name index: a cheap text test (records are our compact JSON) decodes only the records
        # of that address or of those Pod names.
        needle = None if ip is None else f'"ip":{json.dumps(ip)}'
        wanted = None if pods is None else set(pods)
        names = None if wanted is None else [f'"pod_name":{json.dumps(key.partition("/")[2])}' for key in wanted]
        records = [
            BindingRecord.model_validate_json(raw)
            for raw in raws
            if raw is not None
            and (needle is None or needle in raw)
            and (names is None or any(name in raw for name in names))
        ]
        return sorted(
            (
                r
                for r in records
                if (lb_id is None or r.lb_id == lb_id)
                and (service is None or r.service == service)
                and (pod_uid is None or r.pod_uid == pod_uid)
                and (ip is None or r.ip == ip)
                and (wanted is None or f"{r.namespace}/{r.pod_name}" in wanted)
            ),
            key=lambda r: (r.lb_id, r.listener_id, r.pod_uid),
        )

    def delete_binding(self, lb_id: str, listener_id: str, pod_uid: str) -> None:
        self._write_binding(lb_id, listener_id, pod_uid, None)

    # ----------------------------------------------------------------------------------------- leases
    def _lease_keys(self, name: str) -> list[str]:
        return [self._key(f"lease:{name}"), self._key(f"lease:{name}", ":fence")]

    def acquire_lease(self, name: str, holder: str, *, ttl_s: float, now: float) -> Lease | None:
        expires_at = now + ttl_s
        with self._guard("acquire_lease"):
            token = self._run(
                "LEASE_ACQUIRE", self._lease_keys(name), [holder, _num(now), _num(expires_at), _ms(ttl_s)]
            )
        if token is None:
            return None
        return Lease(name=name, holder=holder, token=int(token), expires_at=expires_at)

    def renew_lease(self, name: str, holder: str, token: int, *, ttl_s: float, now: float) -> bool:
        with self._guard("renew_lease"):
            renewed = self._run(
                "LEASE_RENEW", self._lease_keys(name)[:1], [holder, str(token), _num(now + ttl_s), _ms(ttl_s)]
            )
        return bool(renewed == 1)

    def release_lease(self, name: str, holder: str, token: int) -> None:
        with self._guard("release_lease"):
            self._run("LEASE_RELEASE", self._lease_keys(name)[:1], [holder, str(token)])

    def current_lease(self, name: str, *, now: float) -> Lease | None:
        with self._guard("current_lease"):
            holder, token, expires_at = self._client.hmget(self._lease_keys(name)[0], ["holder", "token", "expires_at"])
        if holder is None or token is None or expires_at is None or float(expires_at) <= now:
            return None
        return Lease(name=name, holder=holder, token=int(token), expires_at=float(expires_at))

    # ---------------------------------------------------------------------------------- token buckets
    def take_tokens(self, bucket: str, *, rate_per_s: float, burst: float, n: float, now: float) -> float:
        store_rules.check_bucket_request(bucket, rate_per_s=rate_per_s, burst=burst, n=n)
        with self._guard("take_tokens"):
            wait = self._run(
                "TAKE_TOKENS",
                [self._key(f"bucket:{bucket}")],
                [
                    _num(rate_per_s),
                    _num(burst),
                    _num(n),
                    _num(now),
                    _ms(burst / rate_per_s),
                    _num(store_rules.GRANT_TOLERANCE_S),
                ],
            )
        return float(wait)

    # -------------------------------------------------------------------------------------- event log
    def _event_keys(self) -> list[str]:
        return [self._key("events", ":data"), self._key("events", ":by-time"), self._key("events", ":by-expiry")]

    def append_event(self, event: StoredEvent, *, ttl_s: float, now: float) -> bool:
        expires_at = now + ttl_s
        wrapped = json.dumps({"expires_at": expires_at, "event": event.model_dump(mode="json")})
        with self._guard("append_event"):
            added = self._run(
                "APPEND_EVENT",
                self._event_keys(),
                [event.id, _num(now), _num(event.received_at), _num(expires_at), wrapped, _ms(ttl_s)],
            )
        return bool(added == 1)

    @staticmethod
    def _live_event(raw: str | None, now: float) -> StoredEvent | None:
        if raw is None:
            return None
        wrapped = json.loads(raw)
        if float(wrapped["expires_at"]) <= now:
            return None
        return StoredEvent.model_validate(wrapped["event"])

    def get_event(self, event_id: str, *, now: float) -> StoredEvent | None:
        with self._guard("get_event"):
            raw = self._client.hget(self._event_keys()[0], event_id)
        return self._live_event(raw, now)

    def list_events(self, *, now: float, limit: int = 50) -> list[StoredEvent]:
        data_key, time_key, _ = self._event_keys()
        events: list[StoredEvent] = []
        start, page = 0, max(limit, 1) * 2
        with self._guard("list_events"):
            while len(events) < limit:
                # Same order as SQLite: newest received_at first, ties by id descending.
                ids: list[str] = self._client.zrevrange(time_key, start, start + page - 1)
                if not ids:
                    break
                for raw in self._client.hmget(data_key, ids):
                    event = self._live_event(raw, now)
                    if event is not None and len(events) < limit:
                        events.append(event)
                start += page
        return events

    # --------------------------------------------------------------------------------- selector index
    def put_selector(self, entry: SelectorEntry) -> None:
        with self._guard("put_selector"):
            self._client.hset(self._key(f"sel:{entry.namespace}"), entry.service, entry.model_dump_json())

    def delete_selector(self, namespace: str, service: str) -> None:
        with self._guard("delete_selector"):
            self._client.hdel(self._key(f"sel:{namespace}"), service)

    def list_selectors(self, namespace: str) -> list[SelectorEntry]:
        with self._guard("list_selectors"):
            entries: dict[str, str] = self._client.hgetall(self._key(f"sel:{namespace}"))
        return [SelectorEntry.model_validate_json(entries[name]) for name in sorted(entries)]

    # ------------------------------------------------------------------------------------- generic kv
    def kv_get(self, key: str, *, now: float) -> str | None:
        with self._guard("kv_get"):
            value, expires_at = self._client.hmget(self._key(f"kv:{key}"), ["v", "e"])
        if value is None or (expires_at and float(expires_at) <= now):
            return None
        return str(value)

    def kv_get_many(self, keys: Sequence[str], *, now: float) -> dict[str, str]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self._guard("kv_get_many"):
            # Each key has its own hash tag (slot): a non-transactional pipeline, one round trip per node.
            pipe = self._client.pipeline(transaction=False)
            for key in wanted:
                pipe.hmget(self._key(f"kv:{key}"), ["v", "e"])
            replies = pipe.execute()
        return {
            key: str(value)
            for key, (value, expires_at) in zip(wanted, replies, strict=True)
            if value is not None and not (expires_at and float(expires_at) <= now)
        }

    def _kv_write(self, key: str, value: str, ttl_s: float | None, now: float, *, only_if_absent: bool) -> bool:
        expires_at = "" if ttl_s is None else _num(now + ttl_s)
        pttl = "" if ttl_s is None else str(_ms(ttl_s))
        with self._guard("kv_set"):
            written = self._run(
                "KV_SET",
                [self._key(f"kv:{key}")],
                [value, expires_at, pttl, "1" if only_if_absent else "0", _num(now)],
            )
        return bool(written == 1)

    def kv_set(self, key: str, value: str, *, ttl_s: float | None, now: float) -> None:
        self._kv_write(key, value, ttl_s, now, only_if_absent=False)

    def kv_set_if_absent(self, key: str, value: str, *, ttl_s: float | None, now: float) -> bool:
        return self._kv_write(key, value, ttl_s, now, only_if_absent=True)

    def kv_delete(self, key: str) -> None:
        with self._guard("kv_delete"):
            self._client.delete(self._key(f"kv:{key}"))

    # ----------------------------------------------------------------------------------- pending sets
    def pending_add(self, queue: str, members: Sequence[str]) -> None:
        if not members:
            return
        with self._guard("pending_add"):
            self._client.sadd(self._key(f"pending:{queue}"), *members)

    def pending_take(self, queue: str) -> list[str]:
        with self._guard("pending_take"):
            members = self._run("PENDING_TAKE", [self._key(f"pending:{queue}")], [])
        return sorted(str(m) for m in members)

    def pending_members(self, queue: str) -> list[str]:
        with self._guard("pending_members"):
            members = self._client.smembers(self._key(f"pending:{queue}"))
        return sorted(str(m) for m in members)

    # -------------------------------------------------------------------------------------- schedule
    # Every schedule key shares the `{schedule}` tag, so each script runs on one Cluster slot.
    def _schedule_keys(self) -> list[str]:
        return [self._key("schedule", f":{part}") for part in ("due", "payload", "claim", "attempts")]

    def schedule_put(self, key: str, due_at: float, payload: str) -> None:
        with self._guard("schedule_put"):
            self._run("SCHEDULE_PUT", self._schedule_keys(), [key, _num(due_at), payload])

    def schedule_take_due(self, *, now: float, limit: int, visibility_s: float, claim: str) -> list[DueItem]:
        if limit <= 0:
            return []
        with self._guard("schedule_take_due"):
            flat = self._run(
                "SCHEDULE_TAKE", self._schedule_keys(), [_num(now), str(limit), _num(now + visibility_s), claim]
            )
        return [
            DueItem(key=flat[i], due_at=float(flat[i + 1]), payload=flat[i + 2], claim=claim, attempts=int(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

    def schedule_complete(self, key: str, claim: str) -> bool:
        if not claim:
            return False
        with self._guard("schedule_complete"):
            return bool(self._run("SCHEDULE_REMOVE", self._schedule_keys(), [key, claim]) == 1)

    def schedule_cancel(self, key: str) -> None:
        with self._guard("schedule_cancel"):
            self._run("SCHEDULE_REMOVE", self._schedule_keys(), [key, ""])

    def schedule_list(self, *, limit: int = 100) -> list[DueItem]:
        due_key, payload_key, claim_key, attempts_key = self._schedule_keys()
        with self._guard("schedule_list"):
            entries: list[tuple[str, float]] = self._client.zrange(due_key, 0, max(limit, 1) - 1, withscores=True)
            if not entries or limit <= 0:
                return []
            keys = [k for k, _ in entries]
            payloads = self._client.hmget(payload_key, keys)
            claims = self._client.hmget(claim_key, keys)
            attempts = self._client.hmget(attempts_key, keys)
        return [
            DueItem(key=k, due_at=float(d), payload=p or "", claim=c or "", attempts=int(a or 0))
            for (k, d), p, c, a in zip(entries, payloads, claims, attempts, strict=True)
        ]
