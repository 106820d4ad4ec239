"""Where the pinned upstream Kubernetes binaries are, and which version they are.

`scripts/build-k8s.sh` builds kube-apiserver, kube-controller-manager, kubectl (from `k8s.io/kubernetes`)
and etcd (from `go.etcd.io/etcd/server/v3`) as pinned by `tools/k8s/go.mod` into
`$CLB_DIRECT_K8S_CACHE/<kubernetes version>/bin` (default cache: `~/.cache/clb-direct/k8s`). The launcher
(`launcher.py`), the CLI and the test fixtures find them here; `CLB_DIRECT_K8S_BIN` names another
directory holding the same four binaries. A missing binary is a `BinariesMissing` that says what to run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GO_MOD = REPO_ROOT / "tools" / "k8s" / "go.mod"
BUILD_SCRIPT = "scripts/build-k8s.sh"
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


class BinariesMissing(RuntimeError):
    """The control plane binaries are not built (or not where CLB_DIRECT_K8S_BIN says)."""


def _pinned(module: str) -> str:
    for line in GO_MOD.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == module and parts[1].startswith("v"):
            return parts[1]
    raise BinariesMissing(f"{GO_MOD} does not pin {module}")


def kubernetes_version() -> str:
    """The pinned k8s.io/kubernetes version, e.g. v1.34.12."""
    return _pinned("k8s.io/kubernetes")


def etcd_version() -> str:
    return _pinned("go.etcd.io/etcd/server/v3")


def cache_root() -> Path:
    explicit = os.environ.get("CLB_DIRECT_K8S_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clb-direct" / "k8s"


@dataclass(frozen=True)
class Binaries:
    directory: Path
    version: str

    def path(self, name: str) -> Path:
        return self.directory / name


def find_binaries() -> Binaries:
    """The built binaries, or `BinariesMissing` naming each absent one and the build command."""
    version = kubernetes_version()
    explicit = os.environ.get("CLB_DIRECT_K8S_BIN")
    directory = Path(explicit) if explicit else cache_root() / version / "bin"
    missing = [name for name in NAMES if not os.access(directory / name, os.X_OK)]
    if missing:
        where = "CLB_DIRECT_K8S_BIN" if explicit else "the build cache"
        raise BinariesMissing(
            f"the real control plane tier needs {', '.join(missing)} (Kubernetes {version}) in {directory} "
            f"({where}); run `bash {BUILD_SCRIPT}` to build them (about 8 minutes from nothing on a quiet "
            "2-core machine, seconds once cached), then re-run"
        )
    return Binaries(directory, version)
