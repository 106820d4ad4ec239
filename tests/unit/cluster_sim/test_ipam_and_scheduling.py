"""Pod network mode and IP allocation (`ipam.py`) and node choice (`scheduler.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from emulators.cluster.ipam import IpamExhaustedError, NetworkMode, PodIpam, network_mode_for_pod, node_ip
from emulators.cluster.scheduler import choose_node, default_node_names, needs_scheduling


def _pod(annotations: dict[str, str] | None = None, resources: dict[str, Any] | None = None, **spec: Any) -> Any:
    container = {"name": "web", "resources": resources or {}}
    return {"metadata": {"annotations": annotations or {}}, "spec": {"containers": [container], **spec}}


@pytest.mark.parametrize(
    ("pod", "default", "expected"),
    [
        (_pod(), NetworkMode.GLOBAL_ROUTER, NetworkMode.GLOBAL_ROUTER),
        (_pod(), NetworkMode.VPC_CNI, NetworkMode.VPC_CNI),
        (_pod({"tke.cloud.tencent.com/networks": "tke-route-eni"}), NetworkMode.GLOBAL_ROUTER, NetworkMode.VPC_CNI),
        (_pod({"tke.cloud.tencent.com/networks": "tke-direct-eni"}), NetworkMode.GLOBAL_ROUTER, NetworkMode.VPC_CNI),
        (_pod({"tke.cloud.tencent.com/networks": "tke-bridge"}), NetworkMode.VPC_CNI, NetworkMode.GLOBAL_ROUTER),
        (
            _pod(resources={"requests": {"tke.cloud.tencent.com/eni-ip": "1"}}),
            NetworkMode.GLOBAL_ROUTER,
            NetworkMode.VPC_CNI,
        ),
        (
            _pod(resources={"limits": {"tke.cloud.tencent.com/direct-eni": "1"}}),
            NetworkMode.GLOBAL_ROUTER,
            NetworkMode.VPC_CNI,
        ),
        (
            _pod({"tke.cloud.tencent.com/networks": "tke-route-eni"}, hostNetwork=True),
            NetworkMode.VPC_CNI,
            NetworkMode.HOST,
        ),
    ],
)
def test_network_mode(pod: Any, default: NetworkMode, expected: NetworkMode) -> None:
    assert network_mode_for_pod(pod, default) is expected


def test_ranges_per_mode_and_host_network() -> None:
    ipam = PodIpam(node_count=3, first_offset=0)
    assert ipam.allocate(NetworkMode.VPC_CNI, 2) == "127.10.0.2"
    assert ipam.allocate(NetworkMode.VPC_CNI, 3) == "127.10.0.3"  # one subnet shared by all nodes
    assert ipam.allocate(NetworkMode.GLOBAL_ROUTER, 2) == "127.20.2.2"  # the node's Pod CIDR
    assert ipam.allocate(NetworkMode.GLOBAL_ROUTER, 3) == "127.20.3.2"
    assert ipam.allocate(NetworkMode.HOST, 3) == node_ip(3) == "127.0.20.3"
    assert ipam.in_use() == {"127.10.0.2", "127.10.0.3", "127.20.2.2", "127.20.3.2"}


def test_released_addresses_are_reused_last() -> None:
    ipam = PodIpam(node_count=1, first_offset=0)
    first = ipam.allocate(NetworkMode.VPC_CNI, 1)
    ipam.release(first)
    ipam.release(node_ip(1))  # host network addresses are not the pool's: ignored
    assert ipam.allocate(NetworkMode.VPC_CNI, 1) != first
    assert first not in ipam.in_use()


def test_random_start_offsets_spread_simulators_apart() -> None:
    assert PodIpam(1, first_offset=3).allocate(NetworkMode.VPC_CNI, 1) == "127.10.0.5"
    assert PodIpam(1, first_offset=253).allocate(NetworkMode.GLOBAL_ROUTER, 1) == "127.20.1.2"  # wraps
    firsts = {PodIpam(1).allocate(NetworkMode.VPC_CNI, 1) for _ in range(20)}
    assert len(firsts) > 1


def test_exhausted_pool_says_what_to_do() -> None:
    ipam = PodIpam(node_count=1)
    for _ in range(253):
        ipam.allocate(NetworkMode.GLOBAL_ROUTER, 1)
    with pytest.raises(IpamExhaustedError, match=r"127\.20\.1\.0/24.*delete some Pods"):
        ipam.allocate(NetworkMode.GLOBAL_ROUTER, 1)


def test_bad_node_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="node_count"):
        PodIpam(node_count=0)
    with pytest.raises(ValueError, match="node index"):
        node_ip(255)


def _bound(node: str, phase: str = "Running") -> dict[str, Any]:
    return {"spec": {"nodeName": node}, "status": {"phase": phase}}


def test_choose_node_least_loaded_then_lowest_index() -> None:
    nodes = default_node_names(3)
    assert nodes == ["node-1", "node-2", "node-3"]
    pod: dict[str, Any] = {"spec": {}}
    assert choose_node(pod, nodes, []) == "node-1"
    assert choose_node(pod, nodes, [_bound("node-1")]) == "node-2"
    assert choose_node(pod, nodes, [_bound("node-1"), _bound("node-2"), _bound("node-3", "Succeeded")]) == "node-3"


def test_choose_node_honours_hostname_selector() -> None:
    nodes = default_node_names(2)
    assert choose_node({"spec": {"nodeSelector": {"kubernetes.io/hostname": "node-2"}}}, nodes, []) == "node-2"
    assert choose_node({"spec": {"nodeSelector": {"kubernetes.io/hostname": "gpu-1"}}}, nodes, []) is None


def test_needs_scheduling() -> None:
    assert needs_scheduling({"metadata": {}, "spec": {"schedulerName": "default-scheduler"}})
    assert not needs_scheduling({"metadata": {}, "spec": {"nodeName": "node-1"}})
    assert not needs_scheduling({"metadata": {"deletionTimestamp": "x"}, "spec": {}})
    assert not needs_scheduling({"metadata": {}, "spec": {"schedulerName": "other"}})
