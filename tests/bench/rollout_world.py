"""The rollout bench's world: CLB emulator, relay and cluster simulator in their own process.

Started by `tests/bench/bench_rollout.py` as `python -m tests.bench.rollout_world CONFIG.json`, so the
functions runtime (another process, `clb-direct serve`) is measured apart from what stands in for the
cloud and the cluster: the Pod servers, health probes, forwarding proxy and API server burn their CPU
here. The config names the runtime's URL (health notifications go to `/health`, relay batches to
`/router`) and the shared secrets. On start it prints one JSON line (CLB endpoint, kubeconfig, VIPs come
later); then it answers one JSON line per command read on stdin: `snapshot` (per CLB its VIP and, per
listener, targets with weight and health, plus the CLB API call counts), `connections <epoch>` (the
proxy's failed connections since then: client port, backend, outcome) and `stop`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from emulators.clb.app import ClbEmulator, ClbEmulatorOptions
from emulators.cluster.simulator import ClusterSimulator
from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig
from shared.logging import configure_logging


def snapshot(clb: ClbEmulator) -> dict[str, Any]:
    lbs: dict[str, Any] = {}
    for view in clb.model.dataplane_snapshot():
        entry = lbs.setdefault(view.lb_id, {"vip": view.vip, "listeners": {}})
        entry["listeners"][view.listener_id] = {
            "port": view.port,
            "targets": [{"ip": t.ip, "port": t.port, "weight": t.weight, "health": t.health} for t in view.targets],
        }
    return {"lbs": lbs, "counts": clb.model.calls()["counts"]}


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    # stdout is the command channel: everything that logs goes to world.log instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    log_file = (Path(config["run_dir"]) / "world.log").open("a", encoding="utf-8")
    sys.stdout = log_file
    configure_logging("warning", stream=log_file, force=True)
    logging.basicConfig(stream=log_file, level=logging.WARNING, force=True)
    if os.environ.get("BENCH_WORLD_HEALTH_LOG") == "1":
        # Every health verdict the CLB emulator's checker publishes, with its time: is the world keeping up?
        logging.getLogger("clb_emulator.health").setLevel(logging.INFO)
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter("%(created).3f %(message)s"))
    clb = ClbEmulator(
        ClbEmulatorOptions(
            secret_id=config["secret_id"],
            secret_key=config["secret_key"],
            notify_url=f"{config['runtime_url']}/health",
            notify_secret=config["notify_secret"],
            vip_block=int(config["vip_block"]),
            quota=int(config.get("quota", 200)),
        )
    )
    relay: Relay | None = None
    sim: ClusterSimulator | None = None
    try:
        clb.start()
        batcher = Batcher(
            BatcherConfig(
                router_url=f"{config['runtime_url']}/router",
                hmac_key=config["hmac_key"].encode(),
                window_s=float(config.get("relay_window_s", 0.2)),
            )
        )
        token = secrets.token_hex(16)  # the audit webhook's bearer token, as the API server's kubeconfig has it
        relay = Relay(batcher=batcher, sources=["audit"], audit_auth=AuditAuth(token=token))
        relay.start()
        sim = ClusterSimulator(
            kubeconfig_path=Path(config["run_dir"]) / "kubeconfig",
            start_delay_s=float(config.get("pod_start_delay_s", 0.3)),
            max_grace_s=config.get("max_grace_s"),
            audit_url=f"{relay.url}/audit",
            audit_batch_wait_s=float(config.get("audit_batch_wait_s", 0.2)),
            audit_token=token,
        )
        sim.start()
        print(json.dumps({"clb_endpoint": clb.endpoint, "kubeconfig": str(sim.kubeconfig_path)}), file=channel)
        for line in sys.stdin:
            command = line.strip()
            if command == "snapshot":
                print(json.dumps(snapshot(clb)), file=channel)
            elif command.startswith("connections "):
                since = float(command.split()[1])
                records = [vars(r) for r in clb.dataplane.proxy.connections(since) if r.outcome != "served"]
                print(json.dumps({"connections": records}), file=channel)
            elif command == "stop":
                break
            elif command:
                print(json.dumps({"error": f"unknown command {command!r}; use snapshot or stop"}), file=channel)
    finally:
        if sim is not None:
            sim.stop()
        if relay is not None:
            relay.stop()
        clb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
