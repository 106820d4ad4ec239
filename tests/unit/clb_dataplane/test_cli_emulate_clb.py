"""`clb-direct emulate clb` argument handling and the shared `emulate` group (no server is started)."""

from __future__ import annotations

import argparse

import pytest

from cli import cmd_emulate_clb


def build_parser() -> argparse.ArgumentParser:
    """A parser with only this command, as `cli.main` builds it (without importing every other command)."""
    parser = argparse.ArgumentParser(prog="clb-direct")
    cmd_emulate_clb.register(parser.add_subparsers(dest="command"))
    return parser


def test_emulate_clb_parses_every_option() -> None:
    args = build_parser().parse_args(
        [
            "emulate",
            "clb",
            "--listen",
            "127.0.0.1:0",
            "--secret-id",
            "AKID",
            "--secret-key",
            "KEY",
            "--notify-url",
            "http://127.0.0.1:8080/cb",
            "--notify-secret",
            "n",
            "--task-seconds",
            "0.5",
            "--quota",
            "50",
            "--rate-limit",
            "5",
        ]
    )
    assert args.func is cmd_emulate_clb.run
    assert args.listen == ("127.0.0.1", 0)
    assert (args.notify_url, args.notify_secret, args.task_seconds, args.quota, args.rate_limit) == (
        "http://127.0.0.1:8080/cb",
        "n",
        0.5,
        50,
        5,
    )
    assert args.no_signature_check is False


def test_defaults_are_documented_values() -> None:
    args = build_parser().parse_args(["emulate", "clb", "--secret-id", "A", "--secret-key", "K"])
    assert args.listen == ("127.0.0.1", 9000)
    assert (args.quota, args.rate_limit, args.notify_url, args.region) == (200, 20, None, "ap-guangzhou")


@pytest.mark.parametrize("listen", ["9000", "127.0.0.1:", ":9000", "127.0.0.1:http", "127.0.0.1:70000"])
def test_bad_listen_address_is_refused(listen: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["emulate", "clb", "--listen", listen, "--secret-id", "A", "--secret-key", "K"])
    assert "HOST:PORT" in capsys.readouterr().err


def test_credentials_are_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["emulate", "clb"])
    assert "--secret-id" in capsys.readouterr().err


def test_emulate_without_emulator_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["emulate"])
    assert args.func(args) == 2
    assert "clb" in capsys.readouterr().out


def test_emulate_group_is_reused_when_another_emulator_registered_first() -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    other = cmd_emulate_clb.emulator_group(subparsers)
    other.add_parser("cluster")
    cmd_emulate_clb.register(subparsers)
    assert list(subparsers.choices) == ["emulate"]
    assert cmd_emulate_clb.emulator_group(subparsers) is other
    assert set(other.choices) == {"cluster", "clb"}


def test_existing_emulate_parser_without_subcommands_is_an_error() -> None:
    subparsers = argparse.ArgumentParser().add_subparsers()
    subparsers.add_parser("emulate")
    with pytest.raises(RuntimeError, match="no subcommands"):
        cmd_emulate_clb.emulator_group(subparsers)
