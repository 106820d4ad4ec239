"""Tunables of the CLB emulator: task duration, per-action rate limits, backend quota, id seed.

Built by whoever creates a `ClbModel` (tests, `ClbEmulatorServer`, the demo) and changed at run time via
`ClbModel.update_config` (the server's `POST /_emulator/config`). Defaults follow the real service where
it is documented (20 req/s per action, 200 backends per CLB in this project's design).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from emulators.clb.errors import INVALID_PARAMETER_VALUE, ClbApiError


@dataclass(frozen=True)
class ClbEmulatorConfig:
    """`task_duration_s`: how long an async write keeps the CLB locked (0 = done at once).
    `rate_limit_per_s`: default requests per second per action; `rate_limits` overrides it per action.
    `backend_quota`: targets per CLB over all listeners. `id_seed`: seeds generated ids and RequestIds.
    `signature_leeway_s`: allowed |now - X-TC-Timestamp| (the real API allows 300 s).
    `vip_block`: third octet of the first VIP (127.1.<vip_block>.1); emulators sharing a machine pick different
    blocks, or their listeners would fight over the same VIP:port.
    """

    task_duration_s: float = 0.05
    rate_limit_per_s: int = 20
    rate_limits: dict[str, int] = field(default_factory=dict)
    backend_quota: int = 200
    id_seed: int = 0
    signature_leeway_s: float = 300.0
    region: str = "ap-guangzhou"
    vip_block: int = 0

    def rate_limit_for(self, action: str) -> int:
        return self.rate_limits.get(action, self.rate_limit_per_s)

    def updated(self, changes: dict[str, Any]) -> ClbEmulatorConfig:
        """A copy with `changes` applied; unknown keys or wrong types are refused with a clear message."""
        known = {f.name: f for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ClbApiError(
                    INVALID_PARAMETER_VALUE, f"unknown emulator config key {key!r}; known: {sorted(known)}"
                )
            current = getattr(self, key)
            numeric = isinstance(current, (int, float)) and not isinstance(value, bool)
            if isinstance(current, dict):
                ok = isinstance(value, dict) and all(isinstance(v, int) and v >= 0 for v in value.values())
            elif numeric:
                ok = isinstance(value, (int, float)) and value >= 0
            else:
                ok = isinstance(value, type(current))
            if not ok:
                raise ClbApiError(
                    INVALID_PARAMETER_VALUE, f"emulator config {key}={value!r} has the wrong type or sign"
                )
        merged = dict(changes)
        if "rate_limits" in merged:
            merged["rate_limits"] = {**self.rate_limits, **merged["rate_limits"]}
        for key in ("rate_limit_per_s", "backend_quota", "id_seed"):
            if key in merged:
                merged[key] = int(merged[key])
        return replace(self, **merged)
