"""A demo stack starts from a clean run directory: nothing of an earlier run's state survives."""

from __future__ import annotations

from pathlib import Path

from demo.stack import LocalStack, StackOptions


def test_a_new_stack_drops_the_previous_runs_state_but_keeps_other_files(tmp_path: Path) -> None:
    for name in ("state.db", "state.db-wal", "functions.log", "dead-letters.jsonl", "kubeconfig"):
        (tmp_path / name).write_text("old run")
    (tmp_path / "notes.txt").write_text("mine")
    LocalStack(StackOptions(run_dir=tmp_path))._fresh_run_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
