"""The import contracts of `make lint` bite: a wrong-way import in a copy of the packages breaks each one.

`lint-imports` runs over a temporary copy of the project's packages (the real tree stays untouched; the
packages copied are pyproject's `[tool.importlinter] root_packages`, so a new one is never left out)
with one wrong-way import planted per contract; every contract must come back BROKEN, naming the
planted import. The clean tree is checked by `make lint` itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # import-linter itself depends on tomli below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]
PACKAGES: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]

# (module planted, its import, the contract that must break)
WRONG_WAY = [
    ("shared/domain/_wrong_wire.py", "from shared.events.audit import AuditEvent", "The domain is pure"),
    ("shared/domain/_wrong_config.py", "from shared.config import Settings", "The domain is pure"),
    ("shared/_wrong_upward.py", "import functions.bind.handler", "Packages flow one way"),
    ("demo/_wrong_cli.py", "import cli._common", "Packages flow one way"),
    ("emulators/runtime/_wrong_shared.py", "import shared.deps", "Emulators are stand-ins"),
    ("shared/adapters/_wrong_steps.py", "import shared.steps", "Adapters translate the world"),
    ("shared/events/_wrong_sdk.py", "import kubernetes.client", "Wire models, ports, key layout"),
    ("functions/bind/_wrong_peer.py", "import functions.flip.handler", "Each function is its own deployable"),
]


def _copy_tree(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    # The copy comes first on the path, so grimp analyses it and not the editable install of the real tree.
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "200"}
    return subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_copied_packages_are_the_linted_root_packages() -> None:
    assert {"shared", "functions", "wire_time"} <= set(PACKAGES)
    assert all((ROOT / package / "__init__.py").is_file() for package in PACKAGES), PACKAGES


def test_every_contract_breaks_on_a_wrong_way_import(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    for module, statement, _contract in WRONG_WAY:
        (tmp_path / module).write_text(f'"""A wrong-way import planted by the contract test."""\n\n{statement}\n')
    # The independence contract lists shared.health: plant its wrong import inside that module too.
    health = tmp_path / "shared" / "health.py"
    health.write_text(health.read_text() + "\nimport shared.router  # planted wrong-way import\n")

    result = _lint_imports(tmp_path)
    report = result.stdout + result.stderr

    assert result.returncode != 0, report
    broken = {line.removesuffix(" BROKEN").strip() for line in report.splitlines() if line.endswith("BROKEN")}
    for module, _statement, contract in WRONG_WAY:
        assert any(name.startswith(contract) for name in broken), f"{contract!r} not broken by {module}:\n{report}"
    assert any(name.startswith("The services are independent") for name in broken), report
    for module, _statement, _contract in WRONG_WAY:
        dotted = module.removesuffix(".py").replace("/", ".")
        assert dotted in report, f"the report does not name {dotted}:\n{report}"
    assert "shared.health -> shared.router" in report, report
    assert "7 broken" in report, report
