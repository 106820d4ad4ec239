"""The operator's guide covers what the code does and points only at files that exist.

Collected from the source so a new annotation, Event reason, condition reason, ConfigMap key, CAM action
or function cannot ship undocumented, and no doc or comment cites notes that are not in the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from shared.domain import models, termination
from tests.deploy.multiscf import render
from tests.deploy.test_serverless import DEPLOY_ENV, SERVERLESS

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "operator-guide.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
EVENT_REASON_PATTERNS = [
    r'reason="([A-Z][A-Za-z]+)"',
    r'REASON_[A-Z_]+ = "([A-Z][A-Za-z]+)"',
    r'_warn\(deps, \w+, "([A-Z][A-Za-z]+)"',
    r'notices\.append\(\s*\(\s*"([A-Z][A-Za-z]+)"',
]


def source(*dirs: str) -> str:
    return "\n".join(p.read_text() for d in dirs for p in sorted((ROOT / d).rglob("*.py")))


def test_every_annotation_and_configmap_key_is_documented() -> None:
    names = [v for k, v in vars(models).items() if k.endswith("_ANNOTATION") and isinstance(v, str)]
    names += [termination.PROTECTION_ANNOTATION, models.GLOBAL_ROUTE_KEY]
    assert len(names) >= 10
    assert [n for n in names if f"`{n}`" not in GUIDE] == []


def test_every_event_and_condition_reason_is_documented() -> None:
    code = source("shared", "functions")
    reasons = {m for pattern in EVENT_REASON_PATTERNS for m in re.findall(pattern, code)}
    reasons |= set(re.findall(r'"(ReadinessGate[A-Za-z]+)"', code)) | {models.GATE_READY_REASON}
    assert {"CloudPermissionDenied", "DirectAccessLimit", "LoadBalancerNetworkGroupNotReady"} <= reasons
    assert sorted(r for r in reasons if f"`{r}`" not in GUIDE) == []


def test_every_cam_action_and_function_is_listed() -> None:
    tf = (ROOT / "infra" / "terraform" / "main.tf").read_text()
    actions = set(re.findall(r'"((?:clb|scf|ssm):[A-Za-z]+)"', tf))
    assert len(actions) >= 15
    assert sorted(a for a in actions if f"`{a}`" not in GUIDE) == []
    keys = render(SERVERLESS, DEPLOY_ENV).functions
    listed = re.search(r"clb-direct-<stage>-clb-direct-\{([a-z,]+)\}", GUIDE)
    assert listed is not None and set(listed.group(1).split(",")) == set(keys)


def test_docs_point_only_at_files_in_the_repo() -> None:
    tracked = set(
        subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    )
    dirs = {str(Path(p).parent) for p in tracked} | {str(p) for t in tracked for p in Path(t).parents}
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for link in re.findall(r"\]\(([^)#:]+)\)", text):
            target = (doc.parent / link).resolve().relative_to(ROOT)
            if str(target) not in tracked and str(target) not in dirs:
                missing.append(f"{doc.name}: ({link})")
        for found in re.findall(
            r"`((?:infra|docs|shared|functions|relay|cli|scripts|tests|emulators|demo)/[\w./-]*)`", text
        ):
            path = found.rstrip("/").split(" ")[0]
            if "<" in path or "*" in path:
                continue
            if path not in tracked and path not in dirs:
                missing.append(f"{doc.name}: `{path}`")
    assert missing == []


def test_nothing_in_the_repo_cites_notes_outside_it() -> None:
    pattern = r"DESIGN\.md|DESIGN rule|reference/[a-z-]+\.md|reference §|CONVENTIONS habit|/work/shared"
    out = subprocess.run(
        ["git", "grep", "-n", "-E", pattern, "--", ".", ":!tests/deploy/test_docs.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout == ""
