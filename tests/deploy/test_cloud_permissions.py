"""The CAM policy in infra/terraform lists exactly the cloud API actions the code calls, scoped where CAM can.

Actions are derived from the source: every string literal in the CLB adapter that names a `ClbClient`
method, the SCF `Invoke` of the invoker, and Secrets Manager's `GetSecretValue`. The policy must grant all
of them (nothing missing: a CAM denial in production) and nothing else (nothing unused); CLB writes only
on CLBs tagged with the cluster id, Invoke only on our own functions, secrets only by name.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from tencentcloud.clb.v20180317 import clb_client

ROOT = Path(__file__).resolve().parents[2]
TF = (ROOT / "infra" / "terraform" / "main.tf").read_text()
READ_PREFIXES = ("Describe",)


def clb_actions_called() -> set[str]:
    tree = ast.parse((ROOT / "shared" / "adapters" / "tencent_clb.py").read_text())
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return {f"clb:{name}" for name in literals if hasattr(clb_client.ClbClient, name) and name[0].isupper()}


def other_actions_called() -> set[str]:
    invokers = (ROOT / "shared" / "adapters" / "invokers.py").read_text()
    secrets = (ROOT / "shared" / "secrets.py").read_text()
    found = set()
    if "self._client.Invoke(" in invokers:
        found.add("scf:Invoke")
    if '"GetSecretValue"' in secrets:
        found.add("ssm:GetSecretValue")
    return found


def policy_statements() -> list[dict]:
    block = TF[TF.index('resource "tencentcloud_cam_policy" "functions"') :]
    block = block[: block.index("\n}\n")]
    statements = []
    for raw in re.findall(r"\{\s*\n\s*effect\s*=.*?\n\s{6}\}", block, re.S):
        actions = re.findall(r'"((?:clb|scf|ssm):[A-Za-z]+)"', raw)
        resource = re.search(r"resource\s*=\s*(.+)", raw)
        condition = re.search(r"condition\s*=\s*(.+)", raw)
        statements.append(
            {
                "actions": actions,
                "resource": resource.group(1).strip() if resource else "",
                "condition": condition.group(1).strip() if condition else "",
            }
        )
    return statements


def test_policy_grants_exactly_the_actions_called() -> None:
    called = clb_actions_called() | other_actions_called()
    assert len(clb_actions_called()) == 13, sorted(clb_actions_called())
    granted = {a for s in policy_statements() for a in s["actions"]}
    assert sorted(called - granted) == [], "called but not granted: CAM denies them in production"
    assert sorted(granted - called) == [], "granted but never called"


def test_writes_are_scoped_by_tag_and_resource() -> None:
    for statement in policy_statements():
        clb_writes = [a for a in statement["actions"] if a.startswith("clb:") and not a[4:].startswith(READ_PREFIXES)]
        if clb_writes:
            assert "local.clb_resource" in statement["resource"], statement
            tag = "qcs:request_tag" if clb_writes == ["clb:CreateLoadBalancer"] else "qcs:resource_tag"
            assert tag in statement["condition"] and "local.cluster_tag" in statement["condition"], statement
        elif any(a.startswith("clb:") for a in statement["actions"]):
            assert statement["resource"] == '["*"]'  # Describe* support no resource-level authorisation
        if "scf:Invoke" in statement["actions"]:
            assert "function/clb-direct-${var.stage}-clb-direct-*" in statement["resource"]
        if "ssm:GetSecretValue" in statement["actions"]:
            assert "values(local.secrets)" in statement["resource"]
    assert re.search(r'cluster_tag\s*=\s*"tke-clusterId&\$\{var\.cluster_id\}"', TF)


def test_the_tag_the_policy_requires_is_the_tag_clb_direct_sets() -> None:
    from shared.domain.models import OWNER_TAG_CLUSTER

    assert re.search(rf'cluster_tag\s*=\s*"{OWNER_TAG_CLUSTER}&', TF)
    assert json.dumps(OWNER_TAG_CLUSTER) == '"tke-clusterId"'
