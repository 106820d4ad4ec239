"""`clb-direct emulate cluster`: run the cluster simulator in the foreground.

Discovered by `cli/main.py`. `emulate` is a command group shared with `cli/cmd_emulate_clb.py`:
whichever module registers first creates it and the other finds it in `subparsers.choices`
(`cli._common.emulator_group`). The command starts
a `ClusterSimulator` (HTTPS API, admission webhooks, audit webhook, scheduler, kubelet with real Pod
servers on loopback IPs, ReplicaSet and Deployment controllers), prints the API URL and the
kubeconfig path, and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli._common import ForegroundUntilSignalled, emulator_group, host_port
from emulators.cluster.simulator import ClusterSimulator, version_info
from emulators.cluster.termination import AppModel


def _version(value: str) -> str:
    try:
        version_info(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def register(subparsers: Any) -> None:
    parser = emulator_group(subparsers).add_parser(
        "cluster",
        help="local Kubernetes API + kubelet + Deployment controller with real Pod servers",
        description=(
            "Serve a Kubernetes API subset over HTTPS on --listen for the real kubernetes client, call "
            "mutating webhooks, send audit EventLists to --audit-url, schedule Pods on simulated nodes, "
            "run a real HTTP server per container port on each Pod's loopback IP and roll Deployments out."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--listen", type=host_port, default="127.0.0.1:6443", help="HOST:PORT (port 0 = any)")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    parser.add_argument("--audit-url", default=None, help="audit webhook URL for EventList POSTs (none: no audit)")
    parser.add_argument("--audit-ca-file", default=None, help="CA bundle to verify an https --audit-url")
    parser.add_argument("--version", dest="k8s_version", type=_version, default="1.28", help="Kubernetes version")
    parser.add_argument(
        "--network-mode", choices=["vpc-cni", "global-router"], default="vpc-cni", help="default Pod network mode"
    )
    parser.add_argument("--start-delay", type=float, default=0.2, help="seconds from Pod IP to container start")
    parser.add_argument("--nodes", type=int, default=3, help="number of simulated nodes (node-1..N)")
    parser.add_argument(
        "--max-grace", type=float, default=None, help="cap on Pod termination grace periods, seconds (none: honour)"
    )
    parser.add_argument(
        "--on-sigterm",
        type=_app_model,
        default="exit",
        help="what a Pod's app does on SIGTERM unless its sim.clb-direct.cloud.tencent.com/on-sigterm annotation "
        "says otherwise: exit (close the listener, finish requests in flight), serve:N (keep serving N s), ignore",
    )
    parser.set_defaults(func=run)


def _app_model(value: str) -> str:
    try:
        AppModel.parse(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def run(args: argparse.Namespace) -> int:
    host, port = args.listen
    simulator = ClusterSimulator(
        host=host,
        port=port,
        kubeconfig_path=args.kubeconfig,
        version=args.k8s_version,
        network_mode=args.network_mode,
        start_delay_s=args.start_delay,
        node_count=args.nodes,
        audit_url=args.audit_url,
        audit_ca_file=args.audit_ca_file,
        max_grace_s=args.max_grace,
        default_on_sigterm=args.on_sigterm,
    )
    with ForegroundUntilSignalled() as foreground:
        try:
            try:
                simulator.start()
            except OSError as exc:
                print(f"clb-direct emulate cluster: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
                return 1
            print(f"cluster API: {simulator.api_url}", flush=True)
            print(f"kubeconfig: {simulator.kubeconfig_path}", flush=True)
            print(f"nodes: {', '.join(simulator.nodes)}; Ctrl-C to stop", flush=True)
            foreground.wait()
            return 0
        finally:
            simulator.stop()
