"""`LocalStack`: the whole system on this machine — CLB emulator, local runtime, relay, cluster simulator.

Used by `clb-direct demo` (`demo/scenario.py` drives it), by `clb-direct serve` (only the runtime half:
`serve_runtime`) and by the demo's integration tests. Start order follows the data flow backwards so every
URL exists before someone needs it: the CLB emulator (its health notifications go to the runtime's `/health`
function), the runtime (functions behind HTTP, an async `/_invoke` queue, timers; configured only through
`CLB_DIRECT_*` variables, as on SCF), the relay in audit mode (signed batches to the runtime's `/router`), the
cluster simulator (audit webhook → the relay); then the guardian runs once so the webhook Secret exists and
the runtime's HTTPS endpoint serves `/admission` with that certificate, which the API server verifies against
the caBundle the guardian registered. `stop()` tears it all down in reverse and restores the environment.

With `StackOptions.runtime_process` (what `clb-direct demo` uses) the runtime is `clb-direct serve` in a child
process (`demo/runtime_process.py`): its URL is settled first, it starts last (its guardian needs the cluster),
and everything else waits or retries meanwhile, as it would for SCF.

With `StackOptions.control_plane` (or a `RealCluster` passed in) the cluster is a real kube-apiserver,
kube-controller-manager and etcd with our node agent (`emulators/controlplane/`) instead of the simulator:
infra/ is applied as a user would, and the functions authenticate with their own ServiceAccount's token
(`functions.kubeconfig`), so the least-privilege RBAC is what they run with; `kubeconfig` stays the admin's.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import structlog

from demo.runtime_process import RuntimeProcess, RuntimeTimings
from emulators.clb.app import ClbEmulator, ClbEmulatorOptions
from emulators.cluster.simulator import ClusterSimulator
from emulators.controlplane.cluster import RealCluster
from emulators.controlplane.infra import FUNCTIONS_ACCOUNT
from emulators.controlplane.pki import RelayServing, write_relay_serving
from emulators.runtime.runtime import DEFAULT_FUNCTIONS, LocalRuntime, TimerSpec
from relay.app import Relay
from relay.auth import AuditAuth
from relay.batcher import Batcher, BatcherConfig
from relay.server import http_limits
from shared.certs import TLS_CERT, TLS_KEY
from shared.config import Settings
from shared.logging import configure_logging

_PORT_ATTEMPTS = 5


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for URLs that must be known before their server starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def runtime_timers(*, health_poll_s: float, reconcile_s: float, guardian_s: float | None) -> list[TimerSpec]:
    """The SCF timer triggers: health poll, anti-entropy reconcile and (with a webhook) the guardian."""
    timers = [TimerSpec("health-poll", "health", health_poll_s), TimerSpec("reconcile", "reconcile", reconcile_s)]
    if guardian_s is not None:
        timers.append(TimerSpec("guardian", "guardian", guardian_s))
    return timers


class SecretTlsProvider:
    """Serving certificate for the HTTPS endpoint, read from the guardian's Secret through the Kubernetes API."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cluster: Any = None

    def __call__(self) -> tuple[bytes, bytes] | None:
        from shared.adapters.kubernetes_api import KubernetesCluster

        if self._cluster is None:
            self._cluster = KubernetesCluster.from_settings(self._settings)
        data = self._cluster.get_secret(self._settings.webhook_secret_namespace, self._settings.webhook_secret_name)
        if not data or TLS_CERT not in data or TLS_KEY not in data:
            return None
        return data[TLS_CERT].encode(), data[TLS_KEY].encode()

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def start_admission_endpoint(runtime: LocalRuntime, settings: Settings) -> str:
    """Run the guardian once (certificates, Secret, webhook configuration), then serve HTTPS on the webhook port."""
    if not settings.webhook_url:
        raise RuntimeError("no CLB_DIRECT_WEBHOOK_URL: nothing to serve over HTTPS")
    result = runtime.invoke("guardian", {"step": "guardian", "reason": "runtime start"})
    if not (isinstance(result, dict) and result.get("ok")):
        raise RuntimeError(f"the guardian could not set up the admission webhook: {result}")
    port = urlsplit(settings.webhook_url).port or 443
    return runtime.start_https(port)


def release_function_containers(runtime: LocalRuntime) -> None:
    """Close the adapters each loaded function built (a later runtime in this process builds its own)."""
    for spec in runtime.functions.values():
        module_name, _ = spec.entry_point
        module = importlib.import_module(module_name)
        shell = getattr(module, "shell", None)
        if shell is not None and hasattr(shell, "release"):
            shell.release()


@dataclass(frozen=True)
class StackOptions:
    """Sizes and timings of the local stack; defaults suit the demo on a small machine."""

    run_dir: Path
    gate: bool = True  # register the admission webhook (False: Pods get no readiness gate)
    health_poll_s: float = 2.0
    reconcile_s: float = 30.0
    guardian_s: float = 60.0
    drain_timeout_s: float = 10.0
    max_grace_s: float = 30.0
    pod_start_delay_s: float = 0.3
    relay_window_s: float = 0.2
    audit_batch_wait_s: float = 0.2
    runtime_workers: int = 6
    log_level: str = "info"
    store_url: str | None = None  # default: SQLite in the run directory
    control_plane: bool = False  # a real kube-apiserver + controller manager + etcd instead of the simulator
    relay_port: int = 0  # fixed when a shared control plane's audit webhook already points at it
    # The functions runtime in its own process (`clb-direct serve`), as SCF runs apart from the cluster: the demo
    # does, so its Pod servers and health probes never wait for function work. Tests that reach into the runtime
    # (its queue, a direct invoke) keep it in this process.
    runtime_process: bool = False


class LocalStack:
    """Everything `make demo` needs, started in one process; `env` is what CLI commands need to join in."""

    def __init__(self, options: StackOptions, cluster: RealCluster | None = None) -> None:
        self.options = options
        self._shared_cluster = cluster  # started and stopped by its owner (a test session)
        self.run_dir = options.run_dir
        self.clb: ClbEmulator | None = None
        self.runtime: LocalRuntime | None = None  # in this process
        self.runtime_process: RuntimeProcess | None = None  # or in its own (`StackOptions.runtime_process`)
        self._http_port = 0
        self.relay: Relay | None = None
        self.sim: ClusterSimulator | RealCluster | None = None
        self.env: dict[str, str] = {}
        self.audit_token = ""
        self.settings: Settings | None = None
        self._tls: SecretTlsProvider | None = None
        self._saved_env: dict[str, str | None] = {}
        self._log_file: IO[str] | None = None
        self._log_handler: logging.Handler | None = None
        self._saved_logging: dict[str, Any] | None = None
        self._stoppers: list[Callable[[], None]] = []

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def real_cluster(self) -> bool:
        return self.options.control_plane or self._shared_cluster is not None

    @property
    def functions_kubeconfig(self) -> Path:
        """What the functions authenticate with: their ServiceAccount on a real cluster, the admin otherwise."""
        return self.run_dir / "functions.kubeconfig" if self.real_cluster else self.kubeconfig

    @property
    def log_path(self) -> Path:
        return self.run_dir / "functions.log"

    def _fresh_run_dir(self) -> None:
        """A new stack is a new cluster and a new CLB: state left by an earlier run would only mislead it
        (stored resourceVersions, bindings to CLBs that no longer exist)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in (
            "state.db",
            "state.db-wal",
            "state.db-shm",
            "functions.log",
            "dead-letters.jsonl",
            "kubeconfig",
            "functions.kubeconfig",
        ):
            (self.run_dir / name).unlink(missing_ok=True)

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts = self.options
        self._fresh_run_dir()
        self._route_logs_to_file()
        secret_id, secret_key = "AKIDlocaldemo" + secrets.token_hex(8), secrets.token_hex(16)
        notify_secret, hmac_key = secrets.token_hex(16), secrets.token_hex(16)
        self.clb = ClbEmulator(
            ClbEmulatorOptions(
                secret_id=secret_id,
                secret_key=secret_key,
                notify_secret=notify_secret,
                # Not the default block: an emulator in another process (a test run) may hold 127.1.0.N:80.
                vip_block=random.SystemRandom().randrange(1, 255),
            )
        )
        self.clb.start()
        self._stoppers.append(self.clb.stop)
        keys = {"secret_id": secret_id, "secret_key": secret_key, "notify_secret": notify_secret, "hmac_key": hmac_key}
        runtime_url = self._prepare_runtime_process(keys) if opts.runtime_process else self._start_runtime(keys)
        self.clb.notifier.configure(url=f"{runtime_url}/health")
        batcher = Batcher(
            BatcherConfig(router_url=f"{runtime_url}/router", hmac_key=hmac_key.encode(), window_s=opts.relay_window_s)
        )
        # The API server presents this token to the relay, as an audit kubeconfig user would; a shared real
        # control plane was started with one already.
        shared_token = self._shared_cluster.audit_token if self._shared_cluster is not None else None
        audit_token = shared_token or secrets.token_hex(16)
        self.audit_token = audit_token
        relay_tls = self._relay_serving()
        assert self.settings is not None  # loaded with the runtime's environment
        self.relay = Relay(
            batcher=batcher,
            sources=["audit"],
            http_limits=http_limits(self.settings),
            audit_auth=AuditAuth(token=audit_token),
            port=opts.relay_port,
            tls_cert=str(relay_tls.cert) if relay_tls else None,
            tls_key=str(relay_tls.key) if relay_tls else None,
        )
        self.relay.start()
        self._stoppers.append(self.relay.stop)
        if self.real_cluster:
            self._join_real_cluster(audit_token, relay_tls)
        else:
            self.sim = ClusterSimulator(
                kubeconfig_path=self.kubeconfig,
                start_delay_s=opts.pod_start_delay_s,
                max_grace_s=opts.max_grace_s,
                audit_url=f"{self.relay.url}/audit",
                audit_batch_wait_s=opts.audit_batch_wait_s,
                audit_token=audit_token,
            )
            self.sim.start()
            self._stoppers.append(self.sim.stop)
        if opts.runtime_process:
            self._start_runtime_process()
        elif self._tls is not None and self.settings is not None and self.runtime is not None:
            start_admission_endpoint(self.runtime, self.settings)

    def _start_runtime(self, keys: dict[str, str]) -> str:
        """The runtime in this process (tests reach into it); ports are retried if taken meanwhile."""
        opts = self.options
        for attempt in range(_PORT_ATTEMPTS):
            http_port, webhook_port = free_port(), free_port()
            self._configure(keys, http_port=http_port, webhook_port=webhook_port)
            assert self.settings is not None
            if opts.gate and self._tls is None:
                self._tls = SecretTlsProvider(self.settings)
            runtime = LocalRuntime(
                functions=DEFAULT_FUNCTIONS,
                timers=runtime_timers(
                    health_poll_s=opts.health_poll_s,
                    reconcile_s=opts.reconcile_s,
                    guardian_s=opts.guardian_s if opts.gate else None,
                ),
                http_port=http_port,
                tls_provider=self._tls,
                environ=self.env,
                workers=opts.runtime_workers,
                dead_letter_path=self.run_dir / "dead-letters.jsonl",
                http_limits=http_limits(self.settings),
            )
            # Fresh containers: a request that reached a previous runtime while it stopped (a real API server
            # still calling its webhook) may have rebuilt a function's adapters from that stack's settings.
            release_function_containers(runtime)
            try:
                runtime.start()
            except OSError:
                runtime.stop()
                if attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            break
        self.runtime = runtime
        self._stoppers.append(self._stop_runtime)
        return runtime.url

    def _prepare_runtime_process(self, keys: dict[str, str]) -> str:
        """Settle the runtime process's ports and environment; it starts once the cluster exists."""
        self._configure(keys, http_port=free_port(), webhook_port=free_port())
        return f"http://127.0.0.1:{self._http_port}"

    def _start_runtime_process(self) -> None:
        opts = self.options
        process = RuntimeProcess(
            self.env,
            port=self._http_port,
            timings=RuntimeTimings(
                health_poll_s=opts.health_poll_s,
                reconcile_s=opts.reconcile_s,
                guardian_s=opts.guardian_s,
                workers=opts.runtime_workers,
            ),
            log_path=self.log_path,
            dead_letter_path=self.run_dir / "dead-letters.jsonl",
        )
        self._stoppers.append(process.stop)
        process.start()
        self.runtime_process = process

    def _configure(self, keys: dict[str, str], *, http_port: int, webhook_port: int) -> None:
        self._http_port = http_port
        self.env = self._environment(**keys, http_port=http_port, webhook_port=webhook_port)
        self._apply_environment()
        self.settings = Settings.load()

    def _relay_serving(self) -> RelayServing | None:
        """A real API server sends the audit token only over HTTPS, so on a real cluster the relay serves TLS."""
        if self._shared_cluster is not None:
            return self._shared_cluster.relay_serving
        return write_relay_serving(self.run_dir / "relay-tls") if self.options.control_plane else None

    def _join_real_cluster(self, audit_token: str, relay_tls: RelayServing | None) -> None:
        """Start (or join the shared) real control plane, apply infra/, give the functions their own token."""
        assert self.relay is not None
        cluster = self._shared_cluster
        if cluster is None:
            cluster = RealCluster(
                state_dir=self.run_dir / "control-plane",
                start_delay_s=self.options.pod_start_delay_s,
                max_grace_s=self.options.max_grace_s,
                audit_url=f"{self.relay.url}/audit",
                audit_batch_wait_s=self.options.audit_batch_wait_s,
                audit_token=audit_token,
                relay_serving=relay_tls,
            )
            cluster.start()
            self._stoppers.append(cluster.stop)
        self.sim = cluster
        self.kubeconfig.write_bytes(cluster.kubeconfig_path.read_bytes())
        self.kubeconfig.chmod(0o600)
        cluster.apply_infra(webhook_url=self.env.get("CLB_DIRECT_WEBHOOK_URL"))
        cluster.service_account_kubeconfig(*FUNCTIONS_ACCOUNT, self.functions_kubeconfig)

    def _environment(
        self, *, secret_id: str, secret_key: str, notify_secret: str, hmac_key: str, http_port: int, webhook_port: int
    ) -> dict[str, str]:
        assert self.clb is not None
        runtime_url = f"http://127.0.0.1:{http_port}"
        env = {
            "CLB_DIRECT_STORE_URL": self.options.store_url or f"sqlite:///{self.run_dir / 'state.db'}",
            "CLB_DIRECT_CLB_ENDPOINT": self.clb.endpoint,
            "CLB_DIRECT_CLB_PROTOCOL": "http",
            "CLB_DIRECT_SECRET_ID": secret_id,
            "CLB_DIRECT_SECRET_KEY": secret_key,
            "CLB_DIRECT_VPC_ID": "vpc-local",
            "CLB_DIRECT_CLUSTER_ID": "cls-local",
            "CLB_DIRECT_KUBECONFIG": str(self.functions_kubeconfig),
            "CLB_DIRECT_INVOKER": "local",
            "CLB_DIRECT_LOCAL_INVOKE_URL": f"{runtime_url}/_invoke",
            "CLB_DIRECT_RELAY_HMAC_KEY": hmac_key,
            "CLB_DIRECT_ROUTER_URL": f"{runtime_url}/router",
            "CLB_DIRECT_HEALTH_NOTIFY_SECRET": notify_secret,
            "CLB_DIRECT_DRAIN_TIMEOUT_S": str(self.options.drain_timeout_s),
            "CLB_DIRECT_LOG_LEVEL": self.options.log_level,
        }
        if self.options.gate:
            env["CLB_DIRECT_WEBHOOK_URL"] = f"https://127.0.0.1:{webhook_port}/admission"
        return env

    def _apply_environment(self) -> None:
        for key in self.env:
            self._saved_env.setdefault(key, os.environ.get(key))
        os.environ.update(self.env)

    def _route_logs_to_file(self) -> None:
        """Function logs (structlog JSON) and library logs go to the run directory, never to the terminal."""
        self._log_file = self.log_path.open("a", encoding="utf-8")
        self._saved_logging = structlog.get_config()
        configure_logging(self.options.log_level, stream=self._log_file, force=True)
        self._log_handler = logging.StreamHandler(self._log_file)
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logging.getLogger().addHandler(self._log_handler)

    def _stop_runtime(self) -> None:
        assert self.runtime is not None
        self.runtime.stop()
        release_function_containers(self.runtime)

    def stop(self) -> None:
        """Stop in reverse start order; safe after a failed start and when called twice."""
        while self._stoppers:
            self._stoppers.pop()()
        if self._tls is not None:
            self._tls.close()
            self._tls = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler = None
        if self._saved_logging is not None:
            structlog.configure(**self._saved_logging)
            self._saved_logging = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once the runtime's async queue has nothing queued or running."""
        if self.runtime_process is not None:
            return self.runtime_process.wait_idle(timeout_s)
        return self.runtime is not None and self.runtime.queue.wait_idle(timeout_s)

    @property
    def runtime_url(self) -> str:
        if self.runtime_process is not None:
            return self.runtime_process.url
        if self.runtime is not None:
            return self.runtime.url
        raise RuntimeError("the stack's runtime is not running")

    def runtime_stats(self) -> dict[str, Any]:
        """Invocations, errors, queue and dead letters, from whichever runtime this stack runs."""
        if self.runtime_process is not None:
            return self.runtime_process.snapshot()
        if self.runtime is not None:
            return self.runtime.snapshot()
        raise RuntimeError("the stack's runtime is not running")

    def describe(self) -> dict[str, str]:
        """URLs and paths to print for the user (`--keep`, `serve`)."""
        assert self.clb is not None and self.relay is not None and self.sim is not None
        return {
            "runtime": self.runtime_url,
            "admission": self.env.get("CLB_DIRECT_WEBHOOK_URL", "(no webhook: gate disabled)"),
            "relay audit endpoint": f"{self.relay.url}/audit",
            "CLB API": self.clb.url,
            "CLB dataplane admin": self.clb.admin_url,
            "cluster API": self.sim.api_url,
            "kubeconfig": str(self.kubeconfig),
            "function logs": str(self.log_path),
        }

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_runtime(
    environ: Mapping[str, str],
    *,
    health_poll_s: float,
    reconcile_s: float,
    guardian_s: float,
    port: int,
    workers: int = 4,
    dead_letter_path: Path | None = None,
) -> tuple[LocalRuntime, SecretTlsProvider | None]:
    """`clb-direct serve`: the runtime alone, configured from `CLB_DIRECT_*`; HTTPS admission with a webhook URL."""
    settings = Settings.load(environ)
    provider = SecretTlsProvider(settings) if settings.webhook_url else None
    runtime = LocalRuntime(
        functions=DEFAULT_FUNCTIONS,
        timers=runtime_timers(
            health_poll_s=health_poll_s,
            reconcile_s=reconcile_s,
            guardian_s=guardian_s if settings.webhook_url else None,
        ),
        http_port=port,
        tls_provider=provider,
        environ={k: v for k, v in environ.items() if k.startswith(("CLB_DIRECT_", "TENCENTCLOUD_"))},
        workers=workers,
        dead_letter_path=dead_letter_path,
        http_limits=http_limits(settings),
    )
    runtime.start()
    if provider is not None:
        try:
            start_admission_endpoint(runtime, settings)
        except BaseException:
            runtime.stop()
            provider.close()
            raise
    return runtime, provider


def stop_served_runtime(runtime: LocalRuntime, provider: SecretTlsProvider | None) -> None:
    """Undo `serve_runtime`: stop the servers, queue and timers, close what the functions and the provider hold."""
    runtime.stop()
    release_function_containers(runtime)
    if provider is not None:
        provider.close()


def wait_until(probe: Callable[[], Any], timeout_s: float, interval_s: float = 0.25) -> Any:
    """Poll `probe` until it returns something truthy (returned) or the deadline passes (None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval_s)
