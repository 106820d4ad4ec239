"""Helpers shared by the long-running commands (`emulate clb`, `emulate cluster`, `serve`, `relay`).

Not a subcommand (discovery only loads `cmd_*` modules): the `emulate` command group that every
`cmd_emulate_*` module registers into, HOST:PORT parsing, and running in the foreground until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any


def emulator_group(subparsers: Any) -> Any:
    """The `emulate` group's own subparsers, created on first use so discovery order does not matter."""
    emulate = subparsers.choices.get("emulate")
    if emulate is None:
        emulate = subparsers.add_parser(
            "emulate",
            help="run a local stand-in for a cloud service or the cluster",
            description="Run a local emulator in the foreground.",
        )
        emulate.set_defaults(func=lambda _args: _print_help(emulate))
        emulate.add_subparsers(dest="emulator", metavar="EMULATOR")
    for action in emulate._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the `emulate` parser exists but has no subcommands; create it with emulator_group()")


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def positive(kind: type[int] | type[float]) -> Any:
    """argparse type for a number > 0 of `kind`."""

    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from exc
        if number <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
        return number

    return parse


def host_port(value: str) -> tuple[str, int]:
    """argparse type for HOST:PORT (port 0 = any free port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:9000), got {value!r}")
    return host, int(port)


class ForegroundUntilSignalled:
    """Context manager: SIGINT/SIGTERM set `stop`; `wait()` blocks until then; handlers restored on exit."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ForegroundUntilSignalled:
        self._previous = {
            sig: signal.signal(sig, lambda *_: self.stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def wait(self) -> None:
        while not self.stop.wait(0.5):
            pass
