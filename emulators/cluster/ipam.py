"""Pod and node addressing for the cluster simulator: which network mode a Pod runs in, and its IP.

The kubelet (`kubelet.py`) asks `network_mode_for_pod` how a Pod is networked and `PodIpam` for an
address. Every address is on Linux loopback (all of 127.0.0.0/8 routes to `lo`), so the real HTTP
servers the kubelet starts are reachable from tests and from the CLB emulator's health checks:

- VPC-CNI (ENI) Pods draw from one VPC-subnet-like pool, `127.10.0.0/16`, shared by all nodes;
- GlobalRouter Pods draw from their node's Pod CIDR, `127.20.<node>.0/24`;
- hostNetwork Pods use their node's IP, `127.0.20.<node>`.

Addresses are handed out round robin, so a released one is reused only after a full lap (like a real
IPAM's cool-down): a new Pod rarely gets the IP of a Pod that just went away, which keeps stale CLB
backends distinguishable in tests. Pools start at a random address unless told otherwise, so
simulators running at the same time on one machine rarely collide.
"""

from __future__ import annotations

import enum
import ipaddress
import random
import threading
from collections.abc import Mapping
from typing import Any

NETWORKS_ANNOTATION = "tke.cloud.tencent.com/networks"
# TKE's VPC-CNI extended resources: shared ENI (multi-IP) and exclusive ENI.
ENI_RESOURCES = ("tke.cloud.tencent.com/eni-ip", "tke.cloud.tencent.com/direct-eni")


class NetworkMode(str, enum.Enum):
    VPC_CNI = "vpc-cni"
    GLOBAL_ROUTER = "global-router"
    HOST = "host"


class IpamExhaustedError(RuntimeError):
    """No free address is left in a pool; the Pod cannot get a sandbox."""


def node_ip(node_index: int) -> str:
    """Address of simulated node `node-<node_index>` (1-based)."""
    if not 1 <= node_index <= 254:
        raise ValueError(f"node index {node_index} out of range 1..254")
    return f"127.0.20.{node_index}"


def network_mode_for_pod(pod: Mapping[str, Any], default: NetworkMode) -> NetworkMode:
    """How TKE would network this Pod: hostNetwork, VPC-CNI (annotation or ENI resource), else default."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return NetworkMode.HOST
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    networks = str(annotations.get(NETWORKS_ANNOTATION, ""))
    if "eni" in networks:
        return NetworkMode.VPC_CNI
    if networks:
        # Any other named network (e.g. `tke-bridge`) is the node-local bridge of GlobalRouter mode.
        return NetworkMode.GLOBAL_ROUTER
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            if any(name in (resources.get(section) or {}) for name in ENI_RESOURCES):
                return NetworkMode.VPC_CNI
    return default


class _Pool:
    """Addresses handed out round robin from a cursor; a released one comes back only after a full lap."""

    def __init__(self, network: str, first_offset: int) -> None:
        net = ipaddress.IPv4Network(network)
        self._base = int(net.network_address)
        # Usable: skip the network address, the gateway-like .1 and the broadcast address, as a subnet does.
        self._size = net.num_addresses - 3
        self._cursor = first_offset % self._size
        self._taken: set[int] = set()
        self._network = network

    def take(self) -> str:
        for _ in range(self._size):
            index, self._cursor = self._cursor, (self._cursor + 1) % self._size
            if index not in self._taken:
                self._taken.add(index)
                return str(ipaddress.IPv4Address(self._base + 2 + index))
        raise IpamExhaustedError(
            f"no free Pod IP left in {self._network}; delete some Pods or lower the replica counts"
        )

    def give_back(self, ip: str) -> None:
        self._taken.discard(int(ipaddress.IPv4Address(ip)) - self._base - 2)


class PodIpam:
    """Thread-safe allocator of Pod IPs, one pool for VPC-CNI and one per node for GlobalRouter."""

    def __init__(self, node_count: int, *, first_offset: int | None = None) -> None:
        """`first_offset` None starts each pool at a random address, so simulators running at the same
        time on one machine (parallel test runs) rarely hand out the same loopback IP."""
        if not 1 <= node_count <= 254:
            raise ValueError(f"node_count {node_count} out of range 1..254")
        offset = random.randrange(1 << 16) if first_offset is None else first_offset
        self._lock = threading.Lock()
        self._eni = _Pool("127.10.0.0/16", offset)
        self._pod_cidrs = {index: _Pool(f"127.20.{index}.0/24", offset) for index in range(1, node_count + 1)}
        self._owner: dict[str, tuple[NetworkMode, int]] = {}

    def allocate(self, mode: NetworkMode, node_index: int) -> str:
        with self._lock:
            if mode is NetworkMode.HOST:
                return node_ip(node_index)
            pool = self._eni if mode is NetworkMode.VPC_CNI else self._pod_cidrs[node_index]
            ip = pool.take()
            self._owner[ip] = (mode, node_index)
            return ip

    def release(self, ip: str) -> None:
        """Return an address; node IPs and unknown addresses are ignored (hostNetwork Pods own none)."""
        with self._lock:
            owner = self._owner.pop(ip, None)
            if owner is None:
                return
            mode, node_index = owner
            pool = self._eni if mode is NetworkMode.VPC_CNI else self._pod_cidrs[node_index]
            pool.give_back(ip)

    def in_use(self) -> set[str]:
        with self._lock:
            return set(self._owner)
