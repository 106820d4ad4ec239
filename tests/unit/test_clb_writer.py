"""ClbWriter over the in-memory SQLite store with a fake clock: one writer per CLB, coalescing of
requests that arrive while the lease is held, the lost-wakeup guard, failure handling and fencing."""

from __future__ import annotations

import pytest

from shared.adapters.store_sqlite import MEMORY, SqliteStore
from shared.clock import FakeClock
from shared.leases import ClbWriter, lease_name, pending_queue

TTL = 30.0


@pytest.fixture
def store():
    engine = SqliteStore(MEMORY)
    yield engine
    engine.close()


@pytest.fixture
def clock():
    return FakeClock()


def writer(store, clock, holder):
    return ClbWriter(store, clock, holder=holder, ttl_s=TTL)


def test_a_free_lease_runs_one_batch_and_is_released(store, clock):
    calls = []
    a = writer(store, clock, "a")
    assert a.run("lb-1", ["web/b", "web/a", "web/b"], lambda batch, token: calls.append((batch, token)))
    assert calls == [(["web/a", "web/b"], 1)]
    assert store.current_lease(lease_name("lb-1"), now=clock.now()) is None
    assert store.pending_take(pending_queue("lb-1")) == []


def test_requests_arriving_while_the_lease_is_held_ride_in_the_next_batch(store, clock):
    a, b, c = (writer(store, clock, h) for h in "abc")
    batches = []
    queued = []

    def work(batch, token):
        batches.append(batch)
        if len(batches) == 1:
            queued.append(b.run("lb-1", ["web/b1", "web/b2"], pytest.fail))
            queued.append(c.run("lb-1", ["web/c1"], pytest.fail))

    assert a.run("lb-1", ["web/a1"], work)
    assert queued == [False, False]
    assert batches == [["web/a1"], ["web/b1", "web/b2", "web/c1"]]


def test_other_clbs_are_not_blocked(store, clock):
    a, b = writer(store, clock, "a"), writer(store, clock, "b")
    seen = []

    def work(batch, token):
        seen.append(batch)
        if batch == ["x"]:
            assert b.run("lb-2", ["y"], lambda inner, _t: seen.append(inner))

    a.run("lb-1", ["x"], work)
    assert seen == [["x"], ["y"]]


class ReleaseHook(SqliteStore):
    """Runs a callback just before the first lease release: the window the lost-wakeup guard covers."""

    def __init__(self) -> None:
        super().__init__(MEMORY)
        self.before_release = None

    def release_lease(self, name, holder, token):
        hook, self.before_release = self.before_release, None
        if hook is not None:
            hook()
        super().release_lease(name, holder, token)


def test_lost_wakeup_guard_picks_up_items_queued_just_before_release(clock):
    store = ReleaseHook()
    a, b = writer(store, clock, "a"), writer(store, clock, "b")
    outcome = []
    store.before_release = lambda: outcome.append(b.run("lb-1", ["web/late"], pytest.fail))
    batches = []
    assert a.run("lb-1", ["web/early"], lambda batch, token: batches.append((batch, token)))
    assert outcome == [False]
    assert [batch for batch, _ in batches] == [["web/early"], ["web/late"]]
    assert batches[1][1] > batches[0][1]
    assert store.pending_take(pending_queue("lb-1")) == []
    assert store.current_lease(lease_name("lb-1"), now=clock.now()) is None
    store.close()


def test_failed_batch_goes_back_to_pending_and_the_lease_is_released(store, clock):
    a, b = writer(store, clock, "a"), writer(store, clock, "b")

    def failing(batch, token):
        raise RuntimeError("ResourceInOperating")

    with pytest.raises(RuntimeError, match="ResourceInOperating"):
        a.run("lb-1", ["web/1", "web/2"], failing)
    assert store.current_lease(lease_name("lb-1"), now=clock.now()) is None
    batches = []
    assert b.run("lb-1", ["web/3"], lambda batch, token: batches.append(batch))
    assert batches == [["web/1", "web/2", "web/3"]]


def test_work_gets_the_fencing_token_and_can_check_it(store, clock):
    a = writer(store, clock, "a")
    checks = []
    a.run("lb-1", ["x"], lambda batch, token: checks.append((token, a.check_fence("lb-1", token))))
    a.run("lb-1", ["y"], lambda batch, token: checks.append((token, a.check_fence("lb-1", token))))
    assert checks == [(1, True), (2, True)]
    assert not a.check_fence("lb-1", 2)
    assert not a.check_fence("lb-9", 1)


def test_lease_is_renewed_between_batches(store, clock):
    a, b = writer(store, clock, "a"), writer(store, clock, "b")
    batches = []

    def slow(batch, token):
        batches.append(batch)
        clock.advance(TTL * 0.75)
        if len(batches) < 3:
            store.pending_add(pending_queue("lb-1"), [f"more-{len(batches)}"])
        assert a.check_fence("lb-1", token)
        assert store.acquire_lease(lease_name("lb-1"), "b", ttl_s=TTL, now=clock.now()) is None

    assert a.run("lb-1", ["first"], slow)
    assert batches == [["first"], ["more-1"], ["more-2"]]
    assert b.check_fence("lb-1", 1) is False


def test_a_writer_that_lost_its_lease_stops_and_leaves_the_rest(store, clock):
    a = writer(store, clock, "a")
    tokens = {}

    def stalled(batch, token):
        clock.advance(TTL + 1)
        store.pending_add(pending_queue("lb-1"), ["later"])
        tokens["b"] = store.acquire_lease(lease_name("lb-1"), "b", ttl_s=TTL, now=clock.now()).token
        assert not a.check_fence("lb-1", token)

    assert a.run("lb-1", ["first"], stalled)
    current = store.current_lease(lease_name("lb-1"), now=clock.now())
    assert (current.holder, current.token) == ("b", tokens["b"])
    assert store.pending_take(pending_queue("lb-1")) == ["later"]


def test_nothing_to_do_still_reports_the_writer_role(store, clock):
    assert writer(store, clock, "a").run("lb-1", [], pytest.fail)


class AfterReleaseHook(SqliteStore):
    """Lets another writer take the lease right after the first release (before the re-check)."""

    def __init__(self) -> None:
        super().__init__(MEMORY)
        self.after_release = None

    def release_lease(self, name, holder, token):
        super().release_lease(name, holder, token)
        hook, self.after_release = self.after_release, None
        if hook is not None:
            hook()


def test_items_found_by_the_recheck_stay_queued_when_another_writer_took_over(clock):
    store = AfterReleaseHook()
    a = writer(store, clock, "a")

    def take_over():
        store.pending_add(pending_queue("lb-1"), ["web/late"])
        store.acquire_lease(lease_name("lb-1"), "b", ttl_s=TTL, now=clock.now())

    store.after_release = take_over
    batches = []
    assert a.run("lb-1", ["web/early"], lambda batch, token: batches.append(batch))
    assert batches == [["web/early"]]
    assert store.current_lease(lease_name("lb-1"), now=clock.now()).holder == "b"
    assert store.pending_take(pending_queue("lb-1")) == ["web/late"]
    store.close()
