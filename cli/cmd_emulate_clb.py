"""`clb-direct emulate clb`: run the CLB API emulator with its dataplane in the foreground.

Discovered by `cli/main.py`. `emulate` is a command group shared with other emulators
(`cli/cmd_emulate_cluster.py` adds `emulate cluster`): whichever module registers first creates the
group, the others find it in `subparsers.choices` and add their own subcommand (`emulator_group`).
The command prints the endpoint to point `HttpProfile(protocol="http", endpoint=...)` at, then serves
until SIGINT or SIGTERM and shuts the API server, health checker, proxy and notifier down cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from emulators.clb.app import ClbEmulator, ClbEmulatorOptions

_DEFAULTS = ClbEmulatorOptions(secret_id="", secret_key="")


def emulator_group(subparsers: Any) -> Any:
    """The `emulate` group's own subparsers, creating the group on first use.

    Every `cmd_emulate_*` module calls this, so discovery order does not matter and the group is
    created exactly once.
    """
    emulate = subparsers.choices.get("emulate")
    if emulate is None:
        emulate = subparsers.add_parser(
            "emulate",
            help="run a local stand-in for a cloud service or the cluster",
            description="Run a local emulator in the foreground.",
        )
        emulate.set_defaults(func=lambda _args: _print_help(emulate))
        emulate.add_subparsers(dest="emulator", metavar="EMULATOR")
    for action in emulate._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the `emulate` parser exists but has no subcommands; create it with emulator_group()")


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:9000), got {value!r}")
    return host, int(port)


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
        "--listen", type=_address, default=f"{_DEFAULTS.host}:9000", help="HOST:PORT of the API server (port 0 = any)"
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
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = ClbEmulator(options)
    try:
        emulator.start()
        print(f"CLB emulator listening: endpoint {emulator.endpoint} (url {emulator.url})", flush=True)
        print(f"dataplane admin: {emulator.admin_url}/_emulator/notifications, /_emulator/dataplane", flush=True)
        notify = options.notify_url or "off"
        print(f"region {options.region}; health notifications: {notify}; stop with Ctrl-C", flush=True)
        while not stop.wait(0.5):
            pass
    except OSError as exc:
        print(f"clb-direct emulate clb: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("CLB emulator stopped", flush=True)
    return 0
