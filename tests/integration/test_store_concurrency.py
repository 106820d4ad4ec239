"""Store engines under real concurrency: N threads sharing one store object, and N spawned processes
each opening the store by URL, race `idem_claim` on one key, `acquire_lease` on one name and
`take_tokens` on one bucket. Exactly one claim and one lease may win; the bucket never over-grants."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import uuid
from collections import Counter

import pytest

from shared.adapters.store_factory import open_store
from shared.domain.errors import IdempotencyInProgress
from tests.integration.store_engines import url_for

WORKERS = 6
TAKES_PER_WORKER = 8
BURST = 10
NOW = 1_700_000_000.0
DEADLINE_S = 60.0


def race(store, barrier) -> tuple[str, bool, int]:
    """One contender: wait for everyone, then claim, lease and take tokens (time frozen: no refill)."""
    barrier.wait(timeout=DEADLINE_S)
    try:
        claim = (
            "won"
            if store.idem_claim(
                "bind#race", "h", now=NOW, in_progress_ttl_s=60, record_ttl_s=600, token=str(uuid.uuid4())
            )
            is None
            else "replay"
        )
    except IdempotencyInProgress:
        claim = "in-progress"
    lease = store.acquire_lease("clb:race", f"holder-{uuid.uuid4()}", ttl_s=30, now=NOW)
    granted = sum(
        store.take_tokens("race", rate_per_s=0.001, burst=BURST, n=1, now=NOW) == 0.0 for _ in range(TAKES_PER_WORKER)
    )
    return claim, lease is not None, granted


def process_worker(url: str, barrier, results) -> None:
    store = open_store(url)
    try:
        results.put(race(store, barrier))
    except BaseException as exc:
        results.put(("error", repr(exc)))
        raise
    finally:
        store.close()


def assert_one_winner(outcomes: list[tuple[str, bool, int]]) -> None:
    assert len(outcomes) == WORKERS
    assert Counter(claim for claim, _, _ in outcomes) == {"won": 1, "in-progress": WORKERS - 1}
    assert sum(leased for _, leased, _ in outcomes) == 1
    assert sum(granted for _, _, granted in outcomes) == BURST


@pytest.fixture(params=["sqlite-file", "redis"])
def engine_url(request: pytest.FixtureRequest, tmp_path) -> str:
    return url_for(str(request.param), request, tmp_path)


def test_threads_race_on_one_store_object(engine_url):
    store = open_store(engine_url)
    barrier = threading.Barrier(WORKERS)
    outcomes: list[tuple[str, bool, int]] = []
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            outcomes.append(race(store, barrier))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contender) for _ in range(WORKERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S)
        assert not errors, errors
        assert_one_winner(outcomes)
    finally:
        store.close()


def test_processes_race_through_their_own_connections(engine_url):
    # Create the schema (sqlite) before the race, as the deployed functions find it.
    open_store(engine_url).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    processes = [ctx.Process(target=process_worker, args=(engine_url, barrier, results)) for _ in range(WORKERS)]
    try:
        for process in processes:
            process.start()
        outcomes = []
        for _ in range(WORKERS):
            try:
                outcome = results.get(timeout=DEADLINE_S)
            except queue.Empty:
                pytest.fail(f"only {len(outcomes)} of {WORKERS} processes reported within {DEADLINE_S}s")
            assert outcome[0] != "error", outcome
            outcomes.append(outcome)
        for process in processes:
            process.join(DEADLINE_S)
            assert process.exitcode == 0
        assert_one_winner(outcomes)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(10)
        results.close()
        results.join_thread()


def test_threads_racing_schedule_takers_never_share_an_item(engine_url):
    store = open_store(engine_url)
    items = 40
    for n in range(items):
        store.schedule_put(f"race-{n:02d}", NOW - n, "p")
    barrier = threading.Barrier(WORKERS)
    taken: list[list[str]] = [[] for _ in range(WORKERS)]
    errors: list[BaseException] = []

    def taker(index: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE_S)
            while batch := store.schedule_take_due(now=NOW, limit=3, visibility_s=60, claim=f"c{index}"):
                taken[index].extend(item.key for item in batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=taker, args=(i,)) for i in range(WORKERS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S)
        assert not errors, errors
        every = [key for keys in taken for key in keys]
        assert sorted(every) == sorted(f"race-{n:02d}" for n in range(items))  # each exactly once
    finally:
        store.close()
