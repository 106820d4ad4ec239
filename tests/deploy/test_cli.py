"""CLI polish: --version, one-line configuration errors, help on every option, user-facing descriptions,
the generated settings reference, and `clb-direct doctor` against the cluster simulator and CLB emulator."""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from cli import cmd_settings_doc
from cli.main import build_parser, main
from emulators.clb.model import ClbModel
from emulators.clb.server import ClbEmulatorServer
from emulators.cluster.server import ClusterApiServer
from emulators.cluster.simulator import version_info
from emulators.cluster.store import ObjectStore
from shared.config import Settings
from shared.domain.webhook_config import desired_webhook_configuration
from tests.deploy.k8s import BASE, kustomize

ROOT = Path(__file__).resolve().parents[2]
RBAC_KINDS = {
    "Role": "roles",
    "ClusterRole": "clusterroles",
    "RoleBinding": "rolebindings",
    "ClusterRoleBinding": "clusterrolebindings",
}
APIGW = "https://service-abcd1234-1250000000.gz.apigw.tencentcs.com/release/admission"


def walk(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, [*path, name])


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "cli.main", "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "clb-direct 0.1.0"


def test_configuration_error_is_one_line_naming_the_setting() -> None:
    env = {"PATH": "/usr/bin:/bin", "CLB_DIRECT_STORE_URL": "ftp://user:pw@host", "CLB_DIRECT_BACKEND_QUOTA": "0"}
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "doctor"], capture_output=True, text=True, check=False, env=env, cwd=ROOT
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "CLB_DIRECT_STORE_URL" in lines[0] and "CLB_DIRECT_BACKEND_QUOTA" in lines[0]
    assert "pw" not in lines[0]  # a rejected value (it may carry a password) is never echoed


def test_every_option_has_help_and_descriptions_are_for_users() -> None:
    missing = []
    for path, parser in walk(build_parser(), ["clb-direct"]):
        for action in parser._actions:
            if isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)):
                continue
            if not action.help:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
        description = parser.description or ""
        assert description, f"{' '.join(path)} has no description"
        for internal in ("Discovered by", "cli/", "demo/stack.py", "module"):
            assert internal not in description, f"{' '.join(path)}: internal text in --help: {internal!r}"
    assert missing == []


def test_settings_reference_is_generated_from_settings() -> None:
    assert main(["settings-doc", "--check"]) == 0, "docs/settings.md is stale: run `clb-direct settings-doc`"
    text = (ROOT / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"`CLB_DIRECT_{name.upper()}`" in text
    assert cmd_settings_doc.render() == text


# ------------------------------------------------------------------------------------------ doctor


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.store = ObjectStore()
        self.function_token = "fn-token-0123456789"
        self.cluster = ClusterApiServer.self_signed(
            self.store,
            version=version_info("1.30.2"),
            tokens={
                "admin-token-0123456789": "system:admin",
                self.function_token: "system:serviceaccount:clb-direct:clb-direct-functions",
            },
        ).start()
        self.clb = ClbEmulatorServer(ClbModel(), credentials={"AKIDdoctor": "doctor-key"}).start()
        for doc in kustomize(BASE):
            if doc["kind"] in RBAC_KINDS:
                self.store.create(RBAC_KINDS[doc["kind"]], doc["metadata"].get("namespace"), doc)
        self.store.create(
            "mutatingwebhookconfigurations",
            None,
            desired_webhook_configuration(
                name="clb-direct-readiness-gate", url=APIGW, ca_bundle_pem="", failure_policy="Ignore"
            ),
        )

    def env(self, **changes: str) -> dict[str, str]:
        assert self.cluster.ca_pem is not None
        env = {
            "CLB_DIRECT_INVOKER": "scf",
            "CLB_DIRECT_STORE_URL": "redis://10.0.0.12:6379/0",
            "CLB_DIRECT_FUNCTION_NAME_TEMPLATE": "clb-direct-prod-clb-direct-{function}",
            "CLB_DIRECT_WEBHOOK_URL": APIGW,
            "CLB_DIRECT_WEBHOOK_CA_MODE": "public",
            "CLB_DIRECT_SERVICE_OWNERSHIP": "load-balancer-class",
            "CLB_DIRECT_CLUSTER_ID": "cls-doctor",
            "CLB_DIRECT_KUBE_API_SERVER": self.cluster.url,
            "CLB_DIRECT_KUBE_TOKEN": self.function_token,
            "CLB_DIRECT_KUBE_CA_DATA": base64.b64encode(self.cluster.ca_pem).decode(),
            "CLB_DIRECT_CLB_ENDPOINT": self.clb.endpoint,
            "CLB_DIRECT_CLB_PROTOCOL": "http",
            "CLB_DIRECT_SECRET_ID": "AKIDdoctor",
            "CLB_DIRECT_SECRET_KEY": "doctor-key",
        }
        env.update(changes)
        return env

    def stop(self) -> None:
        self.clb.stop()
        self.cluster.stop()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path)
    try:
        yield d
    finally:
        d.stop()


def doctor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> tuple[int, dict[str, str]]:
    for key in [k for k in list(__import__("os").environ) if k.startswith(("CLB_DIRECT_", "TENCENTCLOUD_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    saved = structlog.get_config()
    try:
        code = main(["doctor"])
    finally:
        # doctor sent logs to stderr: give later tests the configuration they had (configuring the default
        # here would bind this test's capsys stream, closed once it ends, and break every later log line).
        structlog.configure(**saved)
    lines = capsys.readouterr().out.strip().splitlines()
    by_check: dict[str, str] = {}
    for line in lines:
        status, rest = line.split("] ", 1)
        check, message = rest.split(": ", 1)
        by_check[check] = f"{status.strip('[')} {message}"
    return code, by_check


def test_doctor_passes_a_healthy_deployment(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    code, found = doctor(monkeypatch, capsys, deployment.env())
    assert code == 0, found
    assert set(found) == {"settings", "secrets", "rbac", "webhook", "clb"}
    assert all(v.startswith("ok ") for v in found.values()), found


def test_doctor_names_what_is_wrong(deployment: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    # RBAC without `get pods/status`, a webhook pinned to a private CA behind the gateway, wrong CLB keys.
    role = deployment.store.get("clusterroles", None, "clb-direct-functions")
    assert role is not None
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["pods/status"]]
    deployment.store.delete("clusterroles", None, "clb-direct-functions")
    deployment.store.create(
        "clusterroles",
        None,
        {k: v for k, v in role.items() if k != "metadata"} | {"metadata": {"name": "clb-direct-functions"}},
    )
    hook = deployment.store.get("mutatingwebhookconfigurations", None, "clb-direct-readiness-gate")
    assert hook is not None
    hook["webhooks"][0]["clientConfig"]["caBundle"] = base64.b64encode(b"private CA").decode()
    deployment.store.replace("mutatingwebhookconfigurations", None, "clb-direct-readiness-gate", hook)
    code, found = doctor(
        monkeypatch, capsys, deployment.env(CLB_DIRECT_SECRET_KEY="wrong", CLB_DIRECT_INVOKER="inline")
    )
    assert code == 1
    assert found["settings"].startswith("fail CLB_DIRECT_INVOKER=inline")
    assert found["rbac"].startswith("fail denied: get pods/status") and "patch pods/status" in found["rbac"]
    assert found["webhook"].startswith("fail caBundle is set although the endpoint serves a public certificate")
    assert found["clb"].startswith("fail DescribeLoadBalancers failed (AuthFailure")


def test_doctor_reports_an_unusable_token(deployment: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    code, found = doctor(monkeypatch, capsys, deployment.env(CLB_DIRECT_KUBE_TOKEN="not-a-token"))
    assert code == 1 and found["cluster"].startswith("fail the API server answered 401")
