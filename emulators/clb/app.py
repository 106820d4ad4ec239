"""`ClbEmulator`: the whole CLB stand-in in one object — model, API server, dataplane and its admin server.

Used by `clb-direct emulate clb` (`cli/cmd_emulate_clb.py`), by integration tests and by the demo. The API
server speaks CLB 2018-03-17 to the real SDK on `endpoint` (`HttpProfile(protocol="http",
endpoint=emulator.endpoint)`); the dataplane probes registered targets, forwards each TCP/HTTP listener's
`VIP:port` and POSTs health transitions to `notify_url` (see `emulators/clb/dataplane/notifier.py` and
`docs/clb-emulator.md` for the payload). The dataplane's admin endpoints (`/_emulator/notifications`,
`/_emulator/dataplane`) are served on `admin_url`, a second port, because the API server's admin routes
are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.dataplane.admin import DataplaneAdminServer
from emulators.clb.dataplane.notifier import HealthNotifier, NotifierSettings
from emulators.clb.dataplane.plane import DataPlane
from emulators.clb.model import ClbModel
from emulators.clb.server import ClbEmulatorServer

_MODEL_DEFAULTS = ClbEmulatorConfig()


@dataclass(frozen=True)
class ClbEmulatorOptions:
    """Everything `clb-direct emulate clb` can set; defaults match the model's own and the real CLB's."""

    secret_id: str
    secret_key: str
    host: str = "127.0.0.1"
    port: int = 0
    admin_port: int = 0
    region: str = _MODEL_DEFAULTS.region
    notify_url: str | None = None
    notify_secret: str | None = None
    notify_enabled: bool = True
    task_seconds: float = _MODEL_DEFAULTS.task_duration_s
    quota: int = _MODEL_DEFAULTS.backend_quota
    rate_limit: int = _MODEL_DEFAULTS.rate_limit_per_s
    signature_check: bool = True
    tick_s: float = 1.0
    vip_block: int = _MODEL_DEFAULTS.vip_block

    def model_config(self) -> ClbEmulatorConfig:
        return ClbEmulatorConfig(
            task_duration_s=self.task_seconds,
            rate_limit_per_s=self.rate_limit,
            backend_quota=self.quota,
            region=self.region,
            vip_block=self.vip_block,
        )


class ClbEmulator:
    def __init__(self, options: ClbEmulatorOptions, *, model: ClbModel | None = None) -> None:
        self.options = options
        self.model = model or ClbModel(options.model_config())
        self.server = ClbEmulatorServer(
            self.model,
            host=options.host,
            port=options.port,
            credentials={options.secret_id: options.secret_key},
            signature_check=options.signature_check,
        )
        self.notifier = HealthNotifier(
            NotifierSettings(
                url=options.notify_url,
                secret=options.notify_secret,
                enabled=options.notify_enabled,
                region=options.region,
            )
        )
        self.dataplane = DataPlane(self.model, self.notifier, tick_s=options.tick_s)
        self.admin = DataplaneAdminServer(self.dataplane, host=options.host, port=options.admin_port)
        self._running = False

    @property
    def endpoint(self) -> str:
        """`HOST:PORT` of the API server, for `HttpProfile(protocol="http", endpoint=...)`."""
        return self.server.endpoint

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin_url(self) -> str:
        return self.admin.url

    def start(self) -> ClbEmulator:
        if self._running:
            raise RuntimeError("ClbEmulator is already running; call stop() first")
        self._running = True
        try:
            self.server.start()
            self.dataplane.start()
            self.admin.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything that started (safe to call twice or after a failed start)."""
        if not self._running:
            return
        self._running = False
        self.admin.stop()
        self.dataplane.stop()
        self.server.stop()

    def __enter__(self) -> ClbEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
