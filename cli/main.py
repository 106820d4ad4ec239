"""`clb-direct`: the project's command line.

Subcommands live in `cli/cmd_*.py` modules, each exposing `register(subparsers)`; they are discovered
here so that each part of the project adds its own commands without touching this file. Every
subcommand sets `func(args) -> int` as its handler.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from importlib import metadata

import cli
from cli._inline import install_inline_invoker
from shared.domain.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clb-direct",
        description="Tencent CLB direct access to Pods: functions, emulators, relay and tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if module_info.name.startswith("cmd_"):
            module = importlib.import_module(f"cli.{module_info.name}")
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    install_inline_invoker()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        # A configuration problem is the operator's to fix: one line naming the setting, no traceback.
        print(f"clb-direct: {exc}", file=sys.stderr)
        return 2
    return result


def _version() -> str:
    try:
        return metadata.version("clb-direct")
    except metadata.PackageNotFoundError:
        return "unknown (not installed; run `make venv`)"


if __name__ == "__main__":
    sys.exit(main())
