"""ClbWriter over the in-memory SQLite store with a fake clock: one writer per CLB, coalescing of
requests that arrive while the lease is held, the lost-wakeup guard, failure handling and fencing."""

from __future__ import annotations

import pytest

from shared.adapters.store_sqlite import MEMORY, SqliteStore
from shared.clock import FakeClock
from shared.domain.clb_work import ClbWork
from shared.keys import lease_name, pending_queue
from shared.leases import ClbWriter

TTL = 30.0


@pytest.fixture
def store():
    engine = SqliteStore(MEMORY)
    yield engine
    engine.close()


@pytest.fixture
def clock():
    return FakeClock()


class Writer(ClbWriter):
    """The writer with test shorthand: items are Service names, work sees names and the fence's token."""

    def run(self, lb_id, items, work):
        return super().run(
            lb_id, [ClbWork.bind(n) for n in items], lambda batch, fence: work(names(batch), fence.token)
        )


def names(batch):
    return [item.service for item in batch]


def members(*items):
    return [ClbWork.bind(n).member() for n in items]


def pending(store, lb_id="lb-1"):
    return names(ClbWork.decode(m) for m in store.pending_take(pending_queue(lb_id)))


def writer(store, clock, holder):
    return Writer(store, clock, holder=holder, ttl_s=TTL)


def test_a_free_lease_runs_one_batch_and_is_released(store, clock):
    calls = []
    a = writer(store, clock, "a")
    assert a.run("lb-1", ["web/b", "web/a", "web/b"], lambda batch, token: calls.append((batch, token)))
    assert calls == [(["web/a", "web/b"], 1)]
    assert store.current_lease(lease_name("lb-1"), now=clock.now()) is None
    assert pending(store) == []


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
    assert pending(store) == []
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
            store.pending_add(pending_queue("lb-1"), members(f"more-{len(batches)}"))
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
        store.pending_add(pending_queue("lb-1"), members("later"))
        tokens["b"] = store.acquire_lease(lease_name("lb-1"), "b", ttl_s=TTL, now=clock.now()).token
        assert not a.check_fence("lb-1", token)

    assert a.run("lb-1", ["first"], stalled)
    current = store.current_lease(lease_name("lb-1"), now=clock.now())
    assert (current.holder, current.token) == ("b", tokens["b"])
    assert pending(store) == ["later"]


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
        store.pending_add(pending_queue("lb-1"), members("web/late"))
        store.acquire_lease(lease_name("lb-1"), "b", ttl_s=TTL, now=clock.now())

    store.after_release = take_over
    batches = []
    assert a.run("lb-1", ["web/early"], lambda batch, token: batches.append(batch))
    assert batches == [["web/early"]]
    assert store.current_lease(lease_name("lb-1"), now=clock.now()).holder == "b"
    assert pending(store) == ["web/late"]
    store.close()


class RecordingClb:
    """A LoadBalancer stand-in that records the write calls that reach it."""

    def __init__(self):
        self.writes = []

    def register_targets(self, lb_id, targets):
        self.writes.append(("register", lb_id, list(targets)))

    def set_target_weights(self, lb_id, targets):
        self.writes.append(("weights", lb_id, list(targets)))

    def list_targets(self, lb_id):
        return []


def test_a_writer_whose_lease_was_taken_over_cannot_write(store, clock):
    from shared.domain.models import Target
    from shared.leases import FencedLoadBalancer, LeaseLost

    clb = RecordingClb()
    a = ClbWriter(store, clock, holder="a", ttl_s=TTL)
    seen = []

    def stalled(batch, fence):
        fenced = FencedLoadBalancer(clb, fence)
        fenced.set_target_weights("lb-1", [Target(listener_id="l", ip="10.0.0.1", port=80, weight=0)])
        clock.advance(TTL + 1)  # the function stalls past its lease (GC pause, slow API) ...
        seen.append(store.acquire_lease(lease_name("lb-1"), "b", ttl_s=TTL, now=clock.now()).token)
        assert fenced.list_targets("lb-1") == []  # reads still work
        try:
            fenced.register_targets("lb-1", [Target(listener_id="l", ip="10.0.0.2", port=80)])
        except LeaseLost as exc:
            seen.append(str(exc))
            raise

    assert a.run("lb-1", [ClbWork.bind("web/a")], stalled)
    assert [call[0] for call in clb.writes] == ["weights"]  # ... and its register call is never made
    assert seen[0] == 2 and "taken over by another writer" in seen[1]
    current = store.current_lease(lease_name("lb-1"), now=clock.now())
    assert (current.holder, current.token) == ("b", 2)
    assert pending(store) == ["web/a"]  # the batch waits for the writer that took over


def test_a_fenced_write_renews_the_lease_so_no_one_takes_it_during_the_call(store, clock):
    from shared.domain.models import Target
    from shared.leases import FencedLoadBalancer

    clb = RecordingClb()
    a = ClbWriter(store, clock, holder="a", ttl_s=TTL)

    def slow(batch, fence):
        clock.advance(TTL * 0.9)
        FencedLoadBalancer(clb, fence).register_targets("lb-1", [Target(listener_id="l", ip="10.0.0.2", port=80)])
        clock.advance(TTL * 0.9)  # past the original expiry, but within the renewed one
        assert store.acquire_lease(lease_name("lb-1"), "b", ttl_s=TTL, now=clock.now()) is None

    assert a.run("lb-1", [ClbWork.bind("web/a")], slow)
    assert len(clb.writes) == 1


def test_work_items_are_typed_and_unreadable_members_are_skipped(store, clock):
    store.pending_add(pending_queue("lb-1"), ["bind:legacy/string", ClbWork.unbind("uid-1").member()])
    batches = []
    a = ClbWriter(store, clock, holder="a", ttl_s=TTL)
    assert a.run("lb-1", [ClbWork.bind("ns/web")], lambda batch, fence: batches.append(batch))
    assert batches == [[ClbWork.bind("ns/web"), ClbWork.unbind("uid-1")]]
    with pytest.raises(ValueError, match="names its Service"):
        ClbWork(kind="bind")


def test_exclusive_waits_out_a_live_holder_then_fences_its_own_writes(store, clock):
    from shared.domain.errors import Conflict
    from shared.keys import service_lease_name
    from shared.leases import LeaseLost, exclusive

    lease = service_lease_name("shop/web")
    store.acquire_lease(lease, "other", ttl_s=TTL, now=clock.now())
    with pytest.raises(Conflict, match="being written by other"):
        with exclusive(store, clock, lease=lease, subject="Service shop/web", holder="me", ttl_s=TTL, wait_s=5):
            raise AssertionError("entered while another holder's lease was live")
    with exclusive(store, clock, lease=lease, subject="Service shop/web", holder="me", ttl_s=TTL, wait_s=60) as fence:
        assert store.current_lease(lease, now=clock.now()).holder == "me"
        fence.check("CreateListener")  # still ours: renewed
        clock.advance(TTL + 1)
        store.acquire_lease(lease, "taker", ttl_s=TTL, now=clock.now())
        with pytest.raises(LeaseLost, match="CreateListener on Service shop/web not made"):
            fence.check("CreateListener")
    assert store.current_lease(lease, now=clock.now()).holder == "taker"  # leaving left the taker's lease alone


def test_keep_alive_renews_before_a_request_the_lease_left_could_not_cover(store, clock):
    # The fence is checked before each CLB request, never during it: a request that may take `lease_s`
    # starts only with that much lease left, so the lease is renewed first even while it is still young.
    from shared.domain.errors import ConfigError
    from shared.leases import Fence, LeaseLost

    lease = store.acquire_lease("lease/lb-1", "me", ttl_s=TTL, now=clock.now())
    fence = Fence(store, clock, lease="lease/lb-1", subject="CLB lb-1", holder="me", token=lease.token, ttl_s=TTL)
    clock.advance(TTL / 6)
    fence.keep_alive("RegisterTargets", 2.0)
    assert fence.renewed_at == clock.now() - TTL / 6  # plenty left: no store round trip
    fence.keep_alive("RegisterTargets", TTL * 0.9)
    assert fence.renewed_at == clock.now()  # less left than the request may need: renewed first
    assert store.current_lease("lease/lb-1", now=clock.now() + TTL * 0.9).holder == "me"
    clock.advance(TTL / 3)
    fence.keep_alive("RegisterTargets")
    assert fence.renewed_at == clock.now()  # the regular heartbeat, a third of the TTL on
    with pytest.raises(ConfigError, match="RegisterTargets on CLB lb-1 not made: its request needs 30s of lease"):
        fence.keep_alive("RegisterTargets", TTL)
    clock.advance(TTL + 1)
    store.acquire_lease("lease/lb-1", "taker", ttl_s=TTL, now=clock.now())
    with pytest.raises(LeaseLost):
        fence.keep_alive("RegisterTargets", 2.0)  # refused: taken over while the lease could not be renewed
