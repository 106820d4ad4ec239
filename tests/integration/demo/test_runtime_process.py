"""`RuntimeProcess`: the demo's functions runtime as a child `clb-direct serve`, started, read and stopped.

The demo runs its functions apart from the cluster and the CLB, as SCF does; these check the child's life
cycle on its own: a runtime that cannot start says why (the child's own message), one that starts answers
its stats and idles, and `stop` leaves no process behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.runtime_process import RuntimeProcess, RuntimeProcessError, RuntimeTimings
from demo.stack import free_port

TIMINGS = RuntimeTimings(health_poll_s=600.0, reconcile_s=600.0, guardian_s=600.0, workers=2)


def _process(tmp_path: Path, environ: dict[str, str]) -> RuntimeProcess:
    return RuntimeProcess(
        environ,
        port=free_port(),
        timings=TIMINGS,
        log_path=tmp_path / "functions.log",
        dead_letter_path=tmp_path / "dead-letters.jsonl",
    )


# A cold import of the CLI in a second interpreter can take a minute on a loaded 2-core machine.
@pytest.mark.timeout(300)
def test_a_runtime_that_cannot_start_reports_the_childs_reason(tmp_path: Path) -> None:
    # A lease shorter than two request timeouts is refused by the settings: the child exits at once.
    process = _process(
        tmp_path,
        {"CLB_DIRECT_STORE_URL": f"sqlite:///{tmp_path / 'state.db'}", "CLB_DIRECT_LEASE_TTL_S": "5"},
    )
    with pytest.raises(RuntimeProcessError) as failure:
        process.start()
    message = str(failure.value)
    assert "exited with code 1" in message
    assert "CLB_DIRECT_LEASE_TTL_S" in message, message
    process.stop()


@pytest.mark.timeout(300)
def test_a_started_runtime_answers_its_stats_idles_and_stops(tmp_path: Path) -> None:
    process = _process(tmp_path, {"CLB_DIRECT_STORE_URL": f"sqlite:///{tmp_path / 'state.db'}"})
    try:
        process.start()
        stats = process.snapshot()
        assert set(stats) >= {"invocations", "errors", "queue", "lanes", "dead_letters"}
        assert process.wait_idle(timeout_s=30.0)
        pid = process.pid
        assert pid is not None
    finally:
        process.stop()
    assert not Path(f"/proc/{pid}").exists(), "the child was reaped"
    assert process.pid is None
    assert "runtime: http://127.0.0.1:" in (tmp_path / "functions.log").read_text()
