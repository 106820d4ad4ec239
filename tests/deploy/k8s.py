"""Helpers for the deploy tests: render the kustomize base, load manifests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
BASE = K8S / "base"
EXAMPLE = K8S / "overlays" / "example"


def kustomize(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize <path>` (kubectl is part of the machine image; cp's build may provide one too)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render infra/k8s (kubectl kustomize); install it or run scripts/build-k8s.sh"
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]
