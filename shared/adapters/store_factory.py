"""Open the `Store` engine a URL names; called once per cold start by `shared.deps.build_deps`, the CLI
and the local runtime.

- `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`: an SQLite file (parent directory created)
- `sqlite://:memory:` or `memory://`: an in-memory SQLite store (one process only)
- `redis://[user:password@]host:port/db`, `rediss://...` (TLS): Redis; query options `prefix=` (key
  prefix, default `clb-direct:`) and `cluster=true` (Redis Cluster client)

Anything else raises `ConfigError` saying which form to use.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.domain.errors import ConfigError
from shared.ports import Store

_FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db, memory://, or redis://host:port/db"
_TRUE = {"1", "true", "yes", "on"}


def open_store(url: str) -> Store:
    """Build the Store engine for `url` (see the module docstring for the accepted forms)."""
    from shared.adapters.store_sqlite import MEMORY, SqliteStore

    text = url.strip()
    if text in ("memory://", "sqlite://:memory:", "sqlite:///:memory:"):
        return SqliteStore(MEMORY)
    if text.startswith("sqlite://"):
        return SqliteStore(_sqlite_path(text))
    if text.startswith(("redis://", "rediss://")):
        return _open_redis(text)
    raise ConfigError(f"store URL {url!r} is not supported; use {_FORMS}")


def _sqlite_path(url: str) -> Path:
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or rest == "/":
        raise ConfigError(
            f"store URL {url!r} has no file path; use sqlite:///relative/path.db (three slashes) or "
            "sqlite:////absolute/path.db (four)"
        )
    # sqlite:///a/b -> "a/b" (relative); sqlite:////a/b -> "/a/b" (absolute), as SQLAlchemy reads them.
    path = Path(rest[1:])
    if "?" in rest or "#" in rest:
        raise ConfigError(f"store URL {url!r}: sqlite URLs take no query string or fragment")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"store URL {url!r}: cannot create directory {str(path.parent)!r} ({exc.strerror}); "
            "choose a writable location"
        ) from exc
    return path


def _open_redis(url: str) -> Store:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"store URL {url!r} has an invalid port; use redis://host:port/db") from exc
    if port == 0:
        raise ConfigError(f"store URL {url!r} has port 0; use the Redis server's port (usually 6379)")
    if not parts.hostname:
        raise ConfigError(f"store URL {url!r} names no host; use redis://host:port/db")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ConfigError(f"store URL {url!r}: database {db!r} must be a number (redis://host:port/0)")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = options.pop("prefix", "clb-direct:")
    cluster = options.pop("cluster", "false").lower() in _TRUE
    if cluster and db not in ("", "0"):
        raise ConfigError(f"store URL {url!r}: Redis Cluster has only database 0")
    # redis-py's cluster client refuses any database selection, even /0.
    path = "" if cluster else parts.path
    client_url = urlunsplit((parts.scheme, parts.netloc, path, urlencode(options), ""))
    from shared.adapters.store_redis import RedisStore

    return RedisStore(client_url, prefix=prefix, cluster=cluster)
