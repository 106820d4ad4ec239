"""What the dataplane needs from the CLB model, as a Protocol, so tests can pass a small fake.

`ClbModel` (`emulators/clb/model.py`) satisfies it; the health checker, the forwarding proxy and
`DataPlane` are typed against it rather than against the model class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from emulators.clb.views import ListenerView, TargetView

# Called with (listener, target, old_detail, new_detail) after the model accepted a health change.
TransitionHandler = Callable[[ListenerView, TargetView, str, str], None]


class DataplaneModel(Protocol):
    def dataplane_snapshot(self) -> list[ListenerView]: ...

    def set_target_health(self, lb_id: str, listener_id: str, ip: str, port: int, detail: str) -> str | None: ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]: ...
