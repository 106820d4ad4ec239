"""`clb-direct emulate clb`: run the CLB API emulator with its dataplane in the foreground.

Discovered by `cli/main.py`. `emulate` is a command group shared with other emulators
(`cli/cmd_emulate_cluster.py` adds `emulate cluster`): whichever module registers first creates the
group, the others find it in `subparsers.choices` and add their own subcommand (`emulator_group`).
The command prints the endpoint to point `HttpProfile(protocol="http", endpoint=...)` at, then serves
until SIGINT or SIGTERM and shuts the API server, health checker, proxy and notifier down cleanly.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli._common import ForegroundUntilSignalled, emulator_group, host_port
from emulators.clb.app import ClbEmulator, ClbEmulatorOptions

_DEFAULTS = ClbEmulatorOptions(secret_id="", secret_key="")


def register(subparsers: Any) -> None:
    parser = emulator_group(subparsers).add_parser(
        "clb",
        help="CLB 2018-03-17 API emulator with real health checks, forwarding and notifications",
        description=(
            "Serve the CLB API on --listen for the real tencentcloud SDK (TC3-HMAC-SHA256 checked against "
            "--secret-id/--secret-key), probe registered targets, forward each TCP/HTTP listener's "
            "VIP:port to healthy targets and POST health changes to --notify-url."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--listen", type=host_port, default=f"{_DEFAULTS.host}:9000", help="HOST:PORT of the API server (port 0 = any)"
    )
    parser.add_argument(
        "--admin-port",
        type=int,
        default=_DEFAULTS.admin_port,
        help="port of the dataplane admin endpoints (/_emulator/notifications, /_emulator/dataplane); 0 = any",
    )
    parser.add_argument("--secret-id", required=True, help="SecretId the SDK signs with")
    parser.add_argument("--secret-key", required=True, help="SecretKey the SDK signs with")
    parser.add_argument("--region", default=_DEFAULTS.region, help="region reported in responses and notifications")
    parser.add_argument(
        "--notify-url", default=None, help="callback URL for TargetHealthChanged POSTs (none: no notifications)"
    )
    parser.add_argument(
        "--notify-secret", default=None, help="HMAC-SHA256 key for the X-Emulator-Signature header (none: unsigned)"
    )
    parser.add_argument(
        "--task-seconds",
        type=float,
        default=_DEFAULTS.task_seconds,
        help="how long an async write (RegisterTargets, CreateListener...) keeps the CLB locked",
    )
    parser.add_argument(
        "--quota", type=int, default=_DEFAULTS.quota, help="backend quota per CLB (targets over all listeners)"
    )
    parser.add_argument(
        "--rate-limit", type=int, default=_DEFAULTS.rate_limit, help="requests per second allowed per API action"
    )
    parser.add_argument(
        "--no-signature-check", action="store_true", help="accept requests whatever their signature (debugging only)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    host, port = args.listen
    options = ClbEmulatorOptions(
        host=host,
        port=port,
        admin_port=args.admin_port,
        secret_id=args.secret_id,
        secret_key=args.secret_key,
        region=args.region,
        notify_url=args.notify_url,
        notify_secret=args.notify_secret,
        task_seconds=args.task_seconds,
        quota=args.quota,
        rate_limit=args.rate_limit,
        signature_check=not args.no_signature_check,
    )
    emulator = ClbEmulator(options)
    with ForegroundUntilSignalled() as foreground:
        try:
            emulator.start()
            print(f"CLB emulator listening: endpoint {emulator.endpoint} (url {emulator.url})", flush=True)
            print(f"dataplane admin: {emulator.admin_url}/_emulator/notifications, /_emulator/dataplane", flush=True)
            notify = options.notify_url or "off"
            print(f"region {options.region}; health notifications: {notify}; stop with Ctrl-C", flush=True)
            foreground.wait()
        except OSError as exc:
            print(f"clb-direct emulate clb: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
            return 1
        finally:
            emulator.stop()
    print("CLB emulator stopped", flush=True)
    return 0
