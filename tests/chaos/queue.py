"""`ChaosQueue`: the chaos world's async invocations, with SCF's delivery rules and chosen disorder.

Invocations run in a seeded random order, each may be delivered twice (at least once), and a failing one is
retried by SCF's async rule (3 attempts, then a dead letter). The world runs it after every operation.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

SCF_ATTEMPTS = 3


@dataclass
class ChaosQueue:
    """Async invocations, run in a seeded random order with duplicates and SCF's retry-then-dead-letter."""

    rng: random.Random
    duplicate_rate: float = 0.0
    items: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)
    dead_letters: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    executed: dict[str, int] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def invoke_async(self, function: str, payload: Any) -> str:
        # The guardian repairs the webhook; it has no part in the target/gate invariants checked here.
        if function != "guardian":
            self.items.append((function, dict(payload), 0))
        return f"chaos-{next(self._ids)}"

    def run(self, call: Callable[[str, dict[str, Any]], Any], *, ordered: bool = False, limit: int = 2000) -> None:
        while self.items and limit > 0:
            limit -= 1
            index = 0 if ordered else self.rng.randrange(len(self.items))
            function, payload, attempt = self.items.pop(index)
            if not ordered and self.rng.random() < self.duplicate_rate:
                self.items.append((function, dict(payload), attempt))  # at-least-once delivery
            self.executed[function] = self.executed.get(function, 0) + 1
            try:
                call(function, payload)
            except Exception as exc:
                if attempt + 1 < SCF_ATTEMPTS:
                    self.items.append((function, payload, attempt + 1))
                else:
                    self.dead_letters.append((function, payload, repr(exc)))
        if self.items:
            raise AssertionError(f"step queue did not drain: {len(self.items)} invocations left (a loop?)")
