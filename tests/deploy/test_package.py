"""`make package`: the layer and code zips serverless.yml uploads, checked on a real Python 3.10.

The layer is built exactly as `make package` builds it (scripts/package.py, from uv.lock, manylinux2014
wheels), unpacked the way SCF does (layer -> /opt, code -> /var/user, both on PYTHONPATH) and every
handler is imported by a CPython 3.10 interpreter, the version of SCF's Python3.10 runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from scripts import package
from tests.deploy.multiscf import render
from tests.deploy.test_serverless import DEPLOY_ENV, SERVERLESS

ROOT = Path(__file__).resolve().parents[2]
PYTHON310 = Path("/root/.pyenv/versions/3.10.13/bin/python3.10")
FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "handler.py").exists())


def python310() -> Path:
    found = PYTHON310 if PYTHON310.exists() else None
    if found is None:
        import shutil

        which = shutil.which("python3.10")
        found = Path(which) if which else None
    assert found is not None, "a CPython 3.10 interpreter is needed to check the SCF layer (pyenv install 3.10)"
    return found


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    assert package.main(["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def unpacked(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    opt, user = tmp_path_factory.mktemp("opt"), tmp_path_factory.mktemp("var-user")
    zipfile.ZipFile(artifacts / "layer.zip").extractall(opt)
    zipfile.ZipFile(artifacts / "code.zip").extractall(user)
    return opt, user


def run310(opt: Path, user: Path, code: str) -> dict:
    env = {"PYTHONPATH": f"{user}:{opt}", "PATH": "/usr/bin:/bin", "TENCENTCLOUD_RUNENV": "SCF"}
    result = subprocess.run(
        [str(python310()), "-S", "-c", code],
        env=env,
        cwd=user,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_code_zip_holds_only_the_functions(artifacts: Path) -> None:
    names = zipfile.ZipFile(artifacts / "code.zip").namelist()
    assert names and all(n.startswith("functions/") and n.endswith(".py") for n in names)
    assert {f"functions/{f}/handler.py" for f in FUNCTIONS} <= set(names)


def test_layer_is_shared_plus_locked_manylinux2014_wheels(artifacts: Path, unpacked: tuple[Path, Path]) -> None:
    opt, _ = unpacked
    assert (opt / "shared" / "config.py").exists() and not (opt / "functions").exists()
    assert package.check_wheel_tags(opt) == []
    assert not list(opt.rglob("__pycache__")) and not (opt / "bin").exists()
    installed = {p.name.split("-")[0].lower().replace("_", "-") for p in opt.glob("*.dist-info")}
    assert {"kubernetes", "cryptography", "pydantic-core", "redis", "tencentcloud-sdk-python-clb"} <= installed
    assert not installed & {"pytest", "mypy", "ruff", "rich", "matplotlib"}  # no dev or demo extras
    # Deterministic: fixed timestamps, sorted entries.
    infos = zipfile.ZipFile(artifacts / "layer.zip").infolist()
    assert {i.date_time for i in infos} == {package.FIXED_TIME}
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)


def test_every_handler_imports_on_python310_and_admission_stays_light(unpacked: tuple[Path, Path]) -> None:
    opt, user = unpacked
    code = (
        "import importlib, json, sys\n"
        f"names = {FUNCTIONS!r}\n"
        "import functions.admission.handler\n"
        "light = {m: m in sys.modules for m in ('kubernetes', 'tencentcloud', 'redis')}\n"
        "for f in names: importlib.import_module(f'functions.{f}.handler')\n"
        "import cryptography.hazmat.bindings._rust, pydantic_core._pydantic_core, _cffi_backend\n"
        "import shared.adapters.kubernetes_api, shared.adapters.tencent_clb, shared.adapters.store_redis\n"
        "import shared.adapters.invokers, shared.secrets, shared.certs\n"
        "print(json.dumps({'version': list(sys.version_info[:2]), 'light': light,"
        " 'kubernetes': 'kubernetes' in sys.modules, 'site': any('site-packages' in p for p in sys.path)}))\n"
    )
    seen = run310(opt, user, code)
    assert seen["version"] == [3, 10]
    assert seen["light"] == {"kubernetes": False, "tencentcloud": False, "redis": False}
    assert seen["kubernetes"] is True  # the adapters load it, from the layer
    assert seen["site"] is False  # nothing came from a local site-packages


def test_serverless_uploads_exactly_these_artifacts() -> None:
    rendered = render(SERVERLESS, DEPLOY_ENV)
    assert rendered.inputs["src"] == {"src": "./build/package/code.zip"}
    raw = yaml.safe_load(SERVERLESS.read_text())
    assert "exclude" not in raw["inputs"]["src"]
    for function in rendered.functions.values():
        assert function.inputs["layers"] == [{"name": "clb-direct-shared", "version": DEPLOY_ENV["LAYER_VERSION"]}]
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/package.py" in makefile and package.DOCKERFILE.exists()


def test_limits_fail_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    big = package.LIMITS["layer.zip"] + 1
    exceeded = package.report({"layer.zip": (big * 3, big), "code.zip": (10, 10)})
    assert exceeded == ["layer.zip is 50.0 MB, over SCF's 50 MB upload limit"]
    assert "layer.zip" in capsys.readouterr().out
    assert package.report({"layer.zip": (600 * package.MB, 1), "code.zip": (1, 1)})[0].startswith("code + layer")


def test_relay_dockerfile_copies_what_the_relay_imports() -> None:
    text = package.DOCKERFILE.read_text()
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line}
    for source in copied:
        assert (ROOT / source).exists(), source
    sources = ("shared", "relay", "cli", "limited_http", "wire_time", "functions", "emulators", "demo")
    packages = {p for p in sources if (ROOT / p).is_dir()}
    assert packages <= copied  # setuptools packages.find includes them all; a missing one breaks `uv sync`
    assert "uv sync --frozen --no-dev" in text and "USER 65532:65532" in text
    assert sys.version_info >= (3, 10)
