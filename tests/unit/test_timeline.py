"""`shared.timeline`: first observation wins, latencies from the previous stage, per-Service summary."""

from __future__ import annotations

import pytest

from shared.adapters.store_factory import open_store
from shared.timeline import percentile, pod_timeline, prune_service, record_stage, service_latencies


def test_first_observation_wins_and_latency_is_from_the_last_listener() -> None:
    store = open_store("memory://")
    kw = {"pod": "default/web-1", "pod_uid": "u1", "now": 100.0, "service": "default/web"}
    assert record_stage(store, stage="registered", at=10.0, listener="l1", **kw)
    assert record_stage(store, stage="alive", at=12.0, listener="l1", **kw)
    assert record_stage(store, stage="alive", at=13.5, listener="l2", **kw)
    assert not record_stage(store, stage="alive", at=50.0, listener="l2", **kw), "a later report is not new"
    assert record_stage(store, stage="gate_true", at=14.0, **kw)
    assert [(m.stage, m.at) for m in pod_timeline(store, "default/web-1")] == [
        ("registered", 10.0),
        ("alive", 12.0),
        ("alive", 13.5),
        ("gate_true", 14.0),
    ]
    assert service_latencies(store, "default/web") == {"registered->alive": [3.5], "alive->gate_true": [0.5]}
    with pytest.raises(ValueError, match="unknown timeline stage"):
        record_stage(store, stage="bogus", at=1.0, **kw)


def test_a_recreated_pod_shows_its_newest_incarnation_and_expired_pods_are_pruned() -> None:
    store = open_store("memory://")
    record_stage(store, pod="ns/p", pod_uid="old", stage="admitted", at=1.0, now=1.0, service="ns/s")
    record_stage(store, pod="ns/p", pod_uid="new", stage="admitted", at=9.0, now=9.0, service="ns/s")
    assert [m.pod_uid for m in pod_timeline(store, "ns/p")] == ["new"]
    assert prune_service(store, "ns/s", now=10.0) == 0
    assert prune_service(store, "ns/s", now=10.0 + 8 * 24 * 3600) == 1
    assert pod_timeline(store, "ns/p") == [] and service_latencies(store, "ns/s") == {}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([3.0], 99)) == (50.0, 99.0, 3.0)
