"""The async invoke queue writes a dead letter to its file before it shows it in `dead_letters`.

Regression: the in-memory list was appended first, so a caller polling `dead_letters` (the runtime's
integration test, an operator's tooling) could read the file before the letter was in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulators.runtime.invoke_queue import AsyncInvokeQueue, _Item


def test_dead_letter_is_on_disk_before_it_is_visible_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "dead.jsonl"

    def never(_function: str, _payload: dict[str, Any], _request_id: str) -> None:
        raise AssertionError("not invoked in this test")

    queue = AsyncInvokeQueue(never, max_retries=2, dead_letter_path=path)
    seen_when_writing: list[int] = []
    real_open = Path.open

    def spying_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            seen_when_writing.append(len(queue.dead_letters))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spying_open)
    item = _Item(0.0, 0, "flaky", {"key": "b"}, "req-1", attempt=2)
    queue._on_failure(item, RuntimeError("attempt 3 failed"))

    assert seen_when_writing == [0]
    assert len(queue.dead_letters) == 1 and queue.stats.dead_lettered == 1
    letter = json.loads(path.read_text().splitlines()[0])
    assert letter["attempts"] == 3 and letter["function"] == "flaky"
