"""Writes a kubeconfig that points the real ``kubernetes`` client at a running cluster simulator.

Used by ``clb-direct emulate cluster``, the functions' local settings and tests:
``kubernetes.config.load_kube_config(config_file=path)`` then trusts the simulator's CA (embedded as
``certificate-authority-data``) and authenticates with the bearer token the server accepts.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any


def kubeconfig_dict(
    server_url: str, ca_pem: bytes, token: str, *, context: str = "clb-direct-sim", namespace: str = "default"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
        "current-context": context,
        "preferences": {},
    }


def write_kubeconfig(path: str | Path, server_url: str, ca_pem: bytes, token: str, **options: str) -> Path:
    """Write the kubeconfig (JSON is valid YAML, so no YAML dependency is needed) with mode 0600."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(kubeconfig_dict(server_url, ca_pem, token, **options), indent=2))
    target.chmod(0o600)
    return target
