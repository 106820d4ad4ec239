"""The CLB of the unit tests: the emulator's model behind the real SDK and `TencentClbGateway`.

The one fake of the `LoadBalancer` port (tests/contract holds the model to the real API's shapes, limits
and errors): `responses` intercepts the SDK's requests in-process, so no socket is opened and the unit
tier's socket guard holds. `emulated_clb` yields the model (to seed state, set health, count calls) and
the gateway to put into `Deps.clb`; `seeded_lb` builds one CLB of a seed with fixed ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import FakeClock
from shared.config import Settings


@contextmanager
def emulated_clb(clock: FakeClock, *lbs: Mapping[str, Any]) -> Iterator[tuple[ClbModel, TencentClbGateway]]:
    """The emulator (tasks done at once, on the test's clock) seeded with `lbs`, and a gateway to it."""
    with clb_fake(config=ClbEmulatorConfig(task_duration_s=0), clock=clock.monotonic) as (model, endpoint):
        model.seed({"load_balancers": list(lbs)})
        settings = Settings.load({}, clb_endpoint=endpoint, secret_id="AKIDtest", secret_key="test-key")
        yield model, TencentClbGateway.from_settings(settings, clock=clock)


def seeded_lb(
    lb_id: str, *, vip: str | None = None, listeners: Mapping[str, Sequence[tuple[str, int, bool]]] | None = None
) -> dict[str, Any]:
    """One CLB of a seed: `listeners` maps a listener id (TCP, ports 80, 81, ...) to its (ip, port, healthy)
    targets."""
    seeded: dict[str, Any] = {"LoadBalancerId": lb_id, "Listeners": []}
    if vip is not None:
        seeded["Vip"] = vip
    for index, (listener_id, targets) in enumerate((listeners or {}).items()):
        seeded["Listeners"].append(
            {
                "ListenerId": listener_id,
                "Protocol": "TCP",
                "Port": 80 + index,
                "Targets": [
                    {"EniIp": ip, "Port": port, "Health": "Alive" if healthy else "Dead"}
                    for ip, port, healthy in targets
                ],
            }
        )
    return seeded


def _health(healthy: bool) -> str:
    return "Alive" if healthy else "Dead"
