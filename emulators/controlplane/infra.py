"""Apply the product's Kubernetes manifests (`infra/`) to a real control plane, as a user would.

Used by `RealCluster.apply_infra` (the test tier and the demo on the real control plane). The manifests
are rendered by the pinned `kubectl` (`kubectl kustomize` of the base where `infra/` holds a
kustomization, else the YAML files as they are), plus the bootstrap webhook template with its
placeholders filled the way its header asks a user to (`API_GATEWAY_HOST/release/admission` -> the local
admission URL, `CA_BUNDLE` -> empty: the guardian writes the real one); `kubectl apply` sends them with
the admin kubeconfig. Terraform is not applied; the audit policy is a kube-apiserver file (the launcher
passes it with --audit-policy-file), applied here only as the ConfigMap the base ships it in.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from emulators.controlplane.binaries import REPO_ROOT, Binaries

INFRA = REPO_ROOT / "infra"
FUNCTIONS_ACCOUNT = ("clb-direct", "clb-direct-functions")  # (namespace, name) of the functions' identity
RELAY_ACCOUNT = ("clb-direct", "clb-direct-relay")
_NOT_OBJECTS = ("audit-policy.yaml",)


class ApplyFailed(RuntimeError):
    """kubectl refused the manifests (what it said is in the message)."""


def _kustomization_dir() -> Path | None:
    """The kustomize base (overlays only add a user's image, router URL and CIDR on top of it)."""
    found = sorted(p.parent for p in INFRA.rglob("kustomization.yaml") if "terraform" not in p.parts)
    bases = [p for p in found if p.name == "base"] or found
    return bases[0] if bases else None


def _webhook_templates() -> list[Path]:
    return sorted(p for p in INFRA.rglob("webhook-template.yaml") if "terraform" not in p.parts)


def _run(command: list[str], *, stdin: str | None = None) -> str:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise ApplyFailed(f"{' '.join(command[:3])} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done.stdout


def render_infra(binaries: Binaries, *, bootstrap: bool = True) -> str:
    """All of infra/'s API objects as one multi-document YAML string; with `bootstrap`, the webhook template
    last (only for a first install: re-applying it would reset the caBundle the guardian keeps)."""
    base = _kustomization_dir()
    if base is not None:
        documents = [_run([str(binaries.path("kubectl")), "kustomize", str(base)])]
    else:
        documents = [p.read_text() for p in sorted(INFRA.glob("*.yaml")) if p.name not in _NOT_OBJECTS]
    templates = [p.read_text() for p in _webhook_templates()] if bootstrap else []
    return "\n---\n".join(documents + [t for t in templates if t not in documents])


def fill_webhook_template(manifests: str, webhook_url: str | None) -> str:
    """Fill the webhook template's placeholders like its instructions say (CA bundle left to the guardian)."""
    if webhook_url:
        parts = urlsplit(webhook_url)
        manifests = manifests.replace("https://API_GATEWAY_HOST/release/admission", webhook_url)
        manifests = manifests.replace("API_GATEWAY_HOST", parts.netloc)
    return manifests.replace("caBundle: CA_BUNDLE", 'caBundle: ""')


def apply_infra(binaries: Binaries, kubeconfig: Path, *, webhook_url: str | None, bootstrap: bool = True) -> str:
    """`kubectl apply` every infra/ object; returns kubectl's summary (one line per object)."""
    manifests = fill_webhook_template(render_infra(binaries, bootstrap=bootstrap), webhook_url)
    return _run([str(binaries.path("kubectl")), "--kubeconfig", str(kubeconfig), "apply", "-f", "-"], stdin=manifests)
