"""`clb-direct relay`: run the in-cluster relay (watches and/or the audit webhook endpoint) until stopped.

Discovered by `cli/main.py`. Settings come from the environment (`CLB_DIRECT_ROUTER_URL`,
`CLB_DIRECT_RELAY_HMAC_KEY` from the relay Secret, `CLB_DIRECT_KUBECONFIG`); flags override the
batching and listening options. Inside a Pod without a kubeconfig the in-cluster service account is
used. Prints one JSON line with the listening URL, then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any

from shared.config import Settings


def _sources(value: str) -> list[str]:
    sources = [s.strip() for s in value.split(",") if s.strip()]
    if not sources or any(s not in ("watch", "audit") for s in sources):
        raise argparse.ArgumentTypeError(f"expected watch, audit or watch,audit; got {value!r}")
    return sources


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="forward Kubernetes watch/audit events to the router as signed batches",
        description="Run the relay: filter, batch, sign and POST cluster events to the router.",
    )
    parser.add_argument("--sources", type=_sources, default=["watch", "audit"], help="watch,audit (default both)")
    parser.add_argument("--router-url", help="router URL (default CLB_DIRECT_ROUTER_URL)")
    parser.add_argument("--host", default="127.0.0.1", help="audit endpoint / healthz address (0.0.0.0 in a Pod)")
    parser.add_argument("--port", type=int, default=8443, help="audit endpoint / healthz port (default 8443)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (the audit webhook needs TLS)")
    parser.add_argument("--tls-key", help="private key of --tls-cert")
    parser.add_argument("--router-ca-file", help="CA bundle to verify an https router URL")
    parser.add_argument("--batch-size", type=int, default=200, help="events per forwarded batch (default 200)")
    parser.add_argument("--window", type=float, default=1.0, help="seconds the oldest event may wait")
    parser.add_argument(
        "--ack-timeout", type=float, default=10.0, help="seconds an audit POST waits for delivery before a 503"
    )
    parser.add_argument("--name", default="relay", help="relay name carried in each batch")
    parser.add_argument(
        "--checkpoint-file",
        help="where the watch resume point is kept (a volume that survives restarts); none: relist on start",
    )
    auth = parser.add_argument_group("audit endpoint authentication (one is required with the audit source)")
    auth.add_argument("--audit-token-file", help="file holding the bearer token of the audit webhook kubeconfig's user")
    auth.add_argument("--audit-client-ca-file", help="CA that signed the API server's audit client certificate")
    auth.add_argument(
        "--audit-client-name",
        action="append",
        default=[],
        help="CN or DNS SAN the client certificate must carry (repeatable; default: any from the CA)",
    )
    auth.add_argument(
        "--audit-allow-unauthenticated",
        action="store_true",
        help="accept EventLists from anyone (only for a private loopback endpoint)",
    )
    parser.set_defaults(func=run)


def _audit_auth(args: argparse.Namespace) -> Any:
    from relay.auth import AuditAuth

    options: dict[str, Any] = {
        "client_ca_file": args.audit_client_ca_file,
        "client_names": frozenset(args.audit_client_name),
        "allow_unauthenticated": args.audit_allow_unauthenticated,
    }
    if args.audit_token_file:
        return AuditAuth.from_token_file(args.audit_token_file, **options)
    return AuditAuth(**options)


def _api_client(settings: Settings) -> Any:
    from kubernetes import client, config

    if settings.kubeconfig:
        return config.new_client_from_config(config_file=settings.kubeconfig, context=settings.kube_context)
    config.load_incluster_config()
    return client.ApiClient()


def run(args: argparse.Namespace) -> int:
    from relay.app import Relay
    from relay.batcher import Batcher, BatcherConfig
    from relay.server import http_limits

    settings = Settings.load()
    router_url = args.router_url or settings.router_url
    if not router_url or settings.relay_hmac_key is None:
        print(json.dumps({"error": "set CLB_DIRECT_ROUTER_URL (or --router-url) and CLB_DIRECT_RELAY_HMAC_KEY"}))
        return 2
    batcher = Batcher(
        BatcherConfig(
            router_url=router_url,
            hmac_key=settings.relay_hmac_key.get_secret_value().encode(),
            relay_name=args.name,
            batch_size=args.batch_size,
            window_s=args.window,
            ack_timeout_s=args.ack_timeout,
            ca_file=args.router_ca_file,
        )
    )
    try:
        audit_auth = _audit_auth(args)
        if "audit" in args.sources:
            audit_auth.require_configured()
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    relay = Relay(
        audit_auth=audit_auth,
        batcher=batcher,
        sources=args.sources,
        api_client=_api_client(settings) if "watch" in args.sources else None,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        http_limits=http_limits(settings),
        checkpoint_path=args.checkpoint_file,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    relay.start()
    print(json.dumps({"relay": relay.url, "sources": args.sources, "router": router_url}), flush=True)
    stop.wait()
    relay.stop()
    return 0
