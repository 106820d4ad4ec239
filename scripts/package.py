"""`make package`: the artifacts serverless.yml uploads, built from uv.lock for SCF's Python 3.10 runtime.

- build/package/layer.zip: the `clb-direct-shared` SCF layer. SCF unpacks a layer into /opt and puts /opt on
  PYTHONPATH, so the zip's root holds `shared/`, `wire_time/` (the stdlib-only timestamp parser `shared/`
  imports) and the locked runtime dependencies (no dev or demo extras), installed by uv from
  manylinux2014_x86_64 / pure-Python wheels only (SCF's Python 3.10 image has glibc 2.17; a manylinux_2_28+
  wheel would fail to import there), with hashes checked.
- build/package/code.zip: the function code, `functions/` only (handler paths functions/<key>/handler.py).
- The relay image is built from infra/docker/relay.Dockerfile (`docker build`; printed, not run here).

Each artifact's size is printed against SCF's limits and the command fails past one. Reproducible:
entries are sorted and carry a fixed timestamp, so the same lock gives the same bytes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.10"
PLATFORM = "x86_64-manylinux2014"
# Tags a wheel may carry to load on SCF's Python 3.10 (glibc 2.17): manylinux2014 or older, or pure.
ALLOWED_PLATFORM_TAGS = (
    "any",
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2010_x86_64",
    "manylinux_2_12_x86_64",
    "manylinux1_x86_64",
    "manylinux_2_5_x86_64",
)
PYTHON_TAGS = ("py3", "py2.py3", "py310", "cp310", "cp39", "cp38", "cp37")  # cp3x only with abi3
MB = 1024 * 1024
# SCF limits (Tencent Cloud SCF quota page): a zip uploaded directly <= 50 MB (code or layer); code plus
# all layers <= 500 MB once unpacked.
LIMITS = {"code.zip": 50 * MB, "layer.zip": 50 * MB}
UNZIPPED_LIMIT = 500 * MB
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
PRUNE_TOP = ("bin", ".lock")
LAYER_SOURCES = ("shared", "wire_time")
DOCKERFILE = ROOT / "infra" / "docker" / "relay.Dockerfile"


class PackageError(RuntimeError):
    pass


def run(args: list[str]) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(f"{' '.join(args[:3])} ... failed:\n{result.stderr.strip()[-2000:]}")
    return result.stdout


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        raise PackageError("uv not found: run `make venv` first")
    return found


def install_dependencies(target: Path) -> None:
    """Locked runtime dependencies for CPython 3.10 on manylinux2014, binary wheels only, hashes checked."""
    requirements = target.parent / "requirements.txt"
    requirements.write_text(
        run(
            [
                uv(),
                "export",
                "--frozen",
                "--no-dev",
                "--no-emit-project",
                "--no-header",
                "--format",
                "requirements-txt",
                "--quiet",
            ]
        )
    )
    run(
        [
            uv(),
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "--python-platform",
            PLATFORM,
            "--python-version",
            PYTHON_VERSION,
            "--only-binary",
            ":all:",
            "--no-deps",
            "--require-hashes",
            "-r",
            str(requirements),
        ]
    )


def check_wheel_tags(site: Path) -> list[str]:
    """Every installed distribution's WHEEL tags must load on SCF's Python 3.10 (glibc 2.17)."""
    problems = []
    for wheel in sorted(site.glob("*.dist-info/WHEEL")):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        ok = [t for t in tags if t.split("-")[-1] in ALLOWED_PLATFORM_TAGS and t.split("-")[0] in PYTHON_TAGS]
        if not ok:
            problems.append(f"{wheel.parent.name}: {', '.join(tags)}")
    return problems


def prune(tree: Path) -> None:
    """Drop what nothing imports at run time: console scripts, bytecode caches."""
    for name in PRUNE_TOP:
        path = tree / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for cache in sorted(tree.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    for compiled in tree.rglob("*.py[co]"):
        compiled.unlink(missing_ok=True)


def copy_sources(names: Iterable[str], into: Path) -> None:
    for name in names:
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_zip(tree: Path, out: Path) -> int:
    """Deterministic zip of `tree`; returns the unpacked size."""
    unpacked = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted((p for p in tree.rglob("*") if p.is_file()), key=lambda p: str(p.relative_to(tree))):
            info = zipfile.ZipInfo(str(path.relative_to(tree)), date_time=FIXED_TIME)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unpacked += len(data)
            archive.writestr(info, data)
    return unpacked


def build(out: Path) -> dict[str, tuple[int, int]]:
    out.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="clb-direct-package-") as tmp:
        layer = Path(tmp) / "layer"
        install_dependencies(layer)
        problems = check_wheel_tags(layer)
        if problems:
            raise PackageError(
                "wheels that will not load on SCF's Python 3.10 (glibc 2.17):\n  " + "\n  ".join(problems)
            )
        prune(layer)
        copy_sources(LAYER_SOURCES, layer)
        sizes["layer.zip"] = (write_zip(layer, out / "layer.zip"), (out / "layer.zip").stat().st_size)
        code = Path(tmp) / "code"
        copy_sources(["functions"], code)
        sizes["code.zip"] = (write_zip(code, out / "code.zip"), (out / "code.zip").stat().st_size)
    return sizes


def report(sizes: dict[str, tuple[int, int]]) -> list[str]:
    """Print the size table; return the limits exceeded."""
    exceeded = []
    print(f"{'artifact':<12} {'zip':>10} {'limit':>10} {'unpacked':>10}")
    for name, (unpacked, packed) in sizes.items():
        print(f"{name:<12} {_size(packed):>10} {LIMITS[name] / MB:>8.0f}MB {_size(unpacked):>10}")
        if packed > LIMITS[name]:
            exceeded.append(f"{name} is {packed / MB:.1f} MB, over SCF's {LIMITS[name] / MB:.0f} MB upload limit")
    total = sum(unpacked for unpacked, _ in sizes.values())
    print(f"{'unpacked':<12} {total / MB:>8.1f}MB {UNZIPPED_LIMIT / MB:>8.0f}MB  (code + layers, SCF limit)")
    if total > UNZIPPED_LIMIT:
        exceeded.append(f"code + layer unpack to {total / MB:.1f} MB, over SCF's {UNZIPPED_LIMIT / MB:.0f} MB")
    print(f"relay image: docker build -f {DOCKERFILE.relative_to(ROOT)} -t <registry>/clb-direct-relay:<tag> .")
    return exceeded


def _size(n: int) -> str:
    return f"{n / MB:.1f}MB" if n >= MB else f"{n / 1024:.1f}KB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the SCF layer and function code zips for serverless.yml.")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "package", help="output directory")
    args = parser.parse_args(argv)
    if not DOCKERFILE.exists():
        print(f"package: {DOCKERFILE} is missing", file=sys.stderr)
        return 1
    try:
        exceeded = report(build(args.out))
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    for line in exceeded:
        print(f"package: {line}", file=sys.stderr)
    return 1 if exceeded else 0


if __name__ == "__main__":
    sys.exit(main())
