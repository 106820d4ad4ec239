"""`clb-direct emulate control-plane`: a real etcd + kube-apiserver + kube-controller-manager, with our node agent.

Discovered by `cli/main.py`; joins the `emulate` group (`cli._common.emulator_group`). It runs the pinned
upstream binaries that `scripts/build-k8s.sh` builds (`emulators/controlplane/`), registers simulated
nodes and runs our kubelet stand-in against the real API server (Pods get loopback IPs and real HTTP
servers), prints the API URL and the admin kubeconfig, and serves until SIGINT or SIGTERM. A binary that
fails to start is reported with the flag its log blames and the log's last lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli._common import ForegroundUntilSignalled, emulator_group
from emulators.controlplane.binaries import BinariesMissing
from emulators.controlplane.launcher import ControlPlaneError


def register(subparsers: Any) -> None:
    parser = emulator_group(subparsers).add_parser(
        "control-plane",
        help="real kube-apiserver, kube-controller-manager and etcd (pinned build) plus the node agent",
        description=(
            "Start etcd, kube-apiserver (RBAC + Node authorization, the product's audit policy, audit "
            "webhook to --audit-url) and kube-controller-manager on loopback from the binaries "
            "scripts/build-k8s.sh builds, then run the node agent as a client of that API server."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the admin kubeconfig")
    parser.add_argument("--state-dir", type=Path, default=None, help="certificates, etcd data, logs (default: temp)")
    parser.add_argument("--audit-url", default=None, help="audit webhook URL (the relay's /audit; none: no audit)")
    parser.add_argument("--audit-ca-file", default=None, help="CA bundle to verify an https --audit-url")
    parser.add_argument(
        "--audit-token-file", type=Path, default=None, help="bearer token the API server presents to --audit-url"
    )
    parser.add_argument("--nodes", type=int, default=3, help="number of nodes the agent registers (node-1..N)")
    parser.add_argument("--start-delay", type=float, default=0.2, help="seconds from Pod IP to container start")
    parser.add_argument("--max-grace", type=float, default=None, help="cap on Pod grace periods, seconds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emulators.controlplane.cluster import RealCluster

    try:
        cluster = RealCluster(
            kubeconfig_path=args.kubeconfig,
            state_dir=args.state_dir,
            audit_url=args.audit_url,
            audit_ca_file=args.audit_ca_file,
            audit_token=args.audit_token_file.read_text().strip() if args.audit_token_file else None,
            node_count=args.nodes,
            start_delay_s=args.start_delay,
            max_grace_s=args.max_grace,
        )
    except (BinariesMissing, ControlPlaneError) as exc:  # nothing started yet: missing binaries, bad options
        print(f"clb-direct emulate control-plane: {exc}", file=sys.stderr)
        return 2
    with ForegroundUntilSignalled() as foreground:
        try:
            try:
                cluster.start()
            except ControlPlaneError as exc:
                print(f"clb-direct emulate control-plane: {exc}", file=sys.stderr)
                return 1
            print(f"Kubernetes {cluster.version} API: {cluster.api_url}", flush=True)
            print(f"kubeconfig (admin): {cluster.kubeconfig_path}", flush=True)
            print(f"state and logs: {cluster.control_plane.state_dir}", flush=True)
            print(f"nodes: {', '.join(cluster.nodes)}; Ctrl-C to stop", flush=True)
            foreground.wait()
            return 0
        finally:
            cluster.stop()
