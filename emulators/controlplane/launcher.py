"""`ControlPlane`: a real etcd, kube-apiserver and kube-controller-manager on loopback, like envtest's.

Used by `clb-direct emulate control-plane` (`cli/cmd_emulate_controlplane.py`), the session fixture of
`tests/integration/controlplane` and `RealCluster` (`cluster.py`). `start()` writes the PKI (`pki.py`),
starts etcd (`--unsafe-no-fsync`: a test store), then kube-apiserver with client-certificate and
service-account token authentication, `--authorization-mode=Node,RBAC`, the NodeRestriction admission
plugin, the product's audit policy and (when `audit_url` is set) an audit webhook kubeconfig pointing at
the relay; then kube-controller-manager with per-controller service-account credentials and only the
controllers the product meets (Deployment, ReplicaSet, namespace, garbage collector, service accounts and
their tokens). Each process logs to `<state_dir>/<binary>.log`; one that exits or never turns healthy
raises `ControlPlaneError` naming the binary, the flag its log complains about, and the log's tail.
`stop()` ends them in reverse order (SIGTERM, then SIGKILL) and is safe to call twice.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from emulators.cluster.kubeconfig import write_kubeconfig
from emulators.controlplane.binaries import REPO_ROOT, Binaries, find_binaries
from emulators.controlplane.pki import CONTROLLER_MANAGER_USER, Pki, write_pki

log = logging.getLogger(__name__)

START_DEADLINE_S = 180.0  # a cold kube-apiserver on a loaded 2-core machine takes tens of seconds
STOP_GRACE_S = 15.0
SERVICE_CIDR = "10.0.0.0/24"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)
_FLAG = re.compile(r"(--[a-z0-9][a-z0-9-]*)")


class ControlPlaneError(RuntimeError):
    """A control plane process failed to start: which binary, which flag, and its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def audit_policy_path() -> Path:
    """The product's audit policy as shipped in infra/ (wherever the kustomize layout puts it)."""
    found = sorted(REPO_ROOT.glob("infra/**/audit-policy.yaml"))
    if not found:
        raise ControlPlaneError(f"no infra/**/audit-policy.yaml under {REPO_ROOT}: the audit policy is missing")
    return found[0]


@dataclass
class _Process:
    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    log_file: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> ControlPlaneError:
        tail = self.tail()
        flags = [flag for line in tail.splitlines() if "flag" in line.lower() for flag in _FLAG.findall(line)]
        blamed = f"; its log blames {flags[-1]}" if flags else ""
        return ControlPlaneError(
            f"{self.name} {what}{blamed}\ncommand: {' '.join(self.args)}\nlog {self.log_path} (last lines):\n{tail}"
        )


@dataclass
class ControlPlaneOptions:
    state_dir: Path | None = None  # None: a temporary directory removed by stop()
    audit_url: str | None = None  # the relay's audit endpoint (http or https); None: no audit backend
    audit_ca_file: Path | None = None
    audit_token: str | None = None  # the bearer token the audit kubeconfig presents (the relay checks it)
    audit_batch_wait_s: float = 1.0  # the real default is 30 s; tests want the relay to hear quickly
    binaries: Binaries | None = None
    extra_apiserver_flags: list[str] = field(default_factory=list)


class ControlPlane:
    def __init__(self, options: ControlPlaneOptions | None = None) -> None:
        self.options = options or ControlPlaneOptions()
        _check_audit_auth(self.options)
        self.binaries = self.options.binaries or find_binaries()
        self._own_dir = self.options.state_dir is None
        self.state_dir = self.options.state_dir or Path(tempfile.mkdtemp(prefix="clb-direct-cp-"))
        self.pki: Pki | None = None
        self.api_port = 0
        self.etcd_url = ""
        self._processes: list[_Process] = []

    # ------------------------------------------------------------------------------------ surface

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_pem(self) -> bytes:
        assert self.pki is not None, "start() first"
        return self.pki.ca_cert.read_bytes()

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    def kubeconfig_for(self, user: str, groups: list[str] | None = None, *, path: Path | None = None) -> Path:
        """A kubeconfig authenticating as `user` (in `groups`) with a client certificate from our CA."""
        assert self.pki is not None, "start() first"
        cert = self.pki.client(user, groups)
        target = path or self.state_dir / f"{user.replace(':', '-')}.kubeconfig"
        return self._write_cert_kubeconfig(target, cert.cert, cert.key)

    def node_kubeconfig(self, node: str) -> Path:
        return self.kubeconfig_for(f"system:node:{node}", ["system:nodes"])

    def token_kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig with a bearer token (a ServiceAccount's, from TokenRequest) and our CA."""
        return write_kubeconfig(path, self.api_url, self.ca_pem, token, context="clb-direct-cp")

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> ControlPlane:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.pki = write_pki(self.state_dir / "pki")
            admin = self.pki.admin()
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._write_cert_kubeconfig(self.admin_kubeconfig, admin.cert, admin.key)
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._processes:
            process = self._processes.pop()
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
                try:
                    process.popen.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait(STOP_GRACE_S)
            process.log_file.close()
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------ processes

    def _spawn(self, name: str, args: list[str]) -> _Process:
        binary = self.binaries.path(name)
        log_path = self.state_dir / f"{name}.log"
        log_file = log_path.open("ab")
        command = [str(binary), *args]
        popen = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        process = _Process(name, command, log_path, popen, log_file)
        self._processes.append(process)
        return process

    def _wait_healthy(self, process: _Process, probe: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise process.failure(f"exited with code {process.popen.returncode} during start-up")
            if probe():
                return
            time.sleep(0.2)
        raise process.failure(f"did not turn healthy within {START_DEADLINE_S:.0f} s")

    def _start_etcd(self) -> str:
        client_port, peer_port = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
        data_dir = self.state_dir / "etcd"
        process = self._spawn(
            "etcd",
            [
                f"--data-dir={data_dir}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_healthy(process, lambda: _etcd_healthy(client_url))
        self.etcd_url = client_url
        return client_url

    def _start_apiserver(self, etcd_url: str) -> None:
        assert self.pki is not None
        self.api_port = free_port()
        pki = self.pki
        args = [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki.sa_public}",
            f"--service-account-signing-key-file={pki.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            f"--audit-policy-file={audit_policy_path()}",
            *self._audit_flags(),
            *self.options.extra_apiserver_flags,
        ]
        process = self._spawn("kube-apiserver", args)
        admin = pki.admin()
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        self._wait_healthy(process, lambda: _https_ok(f"{self.api_url}/readyz", context))

    def _audit_flags(self) -> list[str]:
        if not self.options.audit_url:
            return []
        cluster: dict[str, str] = {"server": self.options.audit_url}
        if self.options.audit_ca_file is not None:
            cluster["certificate-authority"] = str(self.options.audit_ca_file)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "relay", "cluster": cluster}],
            "users": [
                {
                    "name": "kube-apiserver",
                    "user": {"token": self.options.audit_token} if self.options.audit_token else {},
                }
            ],
            "contexts": [{"name": "audit", "context": {"cluster": "relay", "user": "kube-apiserver"}}],
            "current-context": "audit",
        }
        path = self.state_dir / "audit-webhook.kubeconfig"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        wait_s = max(1, round(self.options.audit_batch_wait_s))
        return [
            f"--audit-webhook-config-file={path}",
            "--audit-webhook-mode=batch",
            f"--audit-webhook-batch-max-wait={wait_s}s",
            "--audit-webhook-initial-backoff=1s",
        ]

    def _start_controller_manager(self) -> None:
        assert self.pki is not None
        kubeconfig = self.kubeconfig_for(CONTROLLER_MANAGER_USER)
        port = free_port()
        process = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.state_dir / 'kcm-certs'}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki.sa_private}",
                f"--root-ca-file={self.pki.ca_cert}",
                "--leader-elect=false",
                "--concurrent-deployment-syncs=5",
                "--concurrent-replicaset-syncs=5",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the controller manager's self-signed serving cert: only /healthz
        self._wait_healthy(process, lambda: _https_ok(f"https://127.0.0.1:{port}/healthz", insecure))

    def _write_cert_kubeconfig(self, path: Path, cert: Path, key: Path) -> Path:
        assert self.pki is not None
        name = "clb-direct-cp"
        cluster = {"server": self.api_url, "certificate-authority": str(self.pki.ca_cert)}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": "user", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": "user", "namespace": "default"}}],
            "current-context": name,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path


def _check_audit_auth(options: ControlPlaneOptions) -> None:
    """Refuse an audit token the API server would silently drop.

    kube-apiserver loads the audit webhook kubeconfig with clientcmd, which applies a user's credentials
    only to https servers: over http the token is never sent and the relay answers every delivery 401.
    """
    if options.audit_token is None:
        return
    if not options.audit_token.strip():
        raise ControlPlaneError("the audit webhook token is empty: give the token the relay checks")
    if not (options.audit_url or "").startswith("https://"):
        raise ControlPlaneError(
            f"an audit webhook token needs an https audit URL, got {options.audit_url!r}: kube-apiserver sends "
            "the audit kubeconfig's bearer token only over TLS; serve the relay with --tls-cert/--tls-key and "
            "give the API server its CA (--audit-ca-file)"
        )


def _etcd_healthy(client_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=2) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def _https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.HTTPError):
        return False
