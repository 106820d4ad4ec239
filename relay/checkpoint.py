"""The relay's watch checkpoint: per resource, the resourceVersion up to which every event was delivered.

Written by `relay.app.Relay` (a small JSON file, replaced atomically, at most every
`checkpoint_interval_s` and once more on stop) and read at start, so a restarted relay watches on
from where delivery stopped: the API server replays every change since, deletions included. When
that version is too old (410 Gone) the watcher relists and, from the objects the checkpoint knew,
synthesises the deletions that happened while it was down. Audit deliveries need no checkpoint: the
endpoint answers 200 only after delivery, and the API server resends what it was not told was taken.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class WatchCheckpoint:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._last: str | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """resource -> {"resourceVersion": str, "known": {key: minimal object}}; {} if none or unreadable."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(resource): entry
            for resource, entry in data.items()
            if isinstance(entry, dict)
            and isinstance(entry.get("resourceVersion"), str)
            and isinstance(entry.get("known"), dict)
        }

    def save(self, state: dict[str, dict[str, Any]]) -> bool:
        """Write the state if it changed; True when written."""
        text = json.dumps(state, separators=(",", ":"), sort_keys=True)
        if text == self._last:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        self._last = text
        return True
