"""The local runtime's in-process invoker: FIFO with flat recursion, SCF's retry-then-dead-letter, its own
copy of each event, SCF's payload limit, and the entry-point handler map the CLI and the tests install."""

from __future__ import annotations

from typing import Any

import pytest

from emulators.runtime.inline import (
    SCF_ASYNC_MAX_PAYLOAD_BYTES,
    EntryPointHandlers,
    InlineInvoker,
    PayloadTooLarge,
)
from shared.adapters.invokers import encode_payload
from shared.domain.errors import PermanentError


def test_inline_invoker_runs_fifo_with_flat_recursion() -> None:
    order: list[str] = []
    depth = {"now": 0, "max": 0}
    invoker: InlineInvoker

    def chain(event: dict[str, Any], context: dict[str, Any]) -> None:
        depth["now"] += 1
        depth["max"] = max(depth["max"], depth["now"])
        order.append(f"{context['function_name']}:{event['n']}")
        if event["n"] < 200:
            invoker.invoke_async("chain", {"n": event["n"] + 1})
            invoker.invoke_async("side", {"n": event["n"]})
        depth["now"] -= 1

    invoker = InlineInvoker({"chain": chain, "side": lambda e, c: order.append(f"side:{e['n']}")})
    request_id = invoker.invoke_async("chain", {"n": 0})
    assert request_id.startswith("inline-1-")
    assert depth["max"] == 1
    assert order[:5] == ["chain:0", "chain:1", "side:0", "chain:2", "side:1"]
    assert len(invoker.completed) == 401


def test_inline_invoker_retries_twice_then_dead_letters() -> None:
    attempts: list[int] = []

    def flaky(event: dict[str, Any], context: dict[str, Any]) -> None:
        attempts.append(event["k"])
        if event["k"] == "bad" or len(attempts) == 1:
            raise RuntimeError("boom")

    invoker = InlineInvoker({"f": flaky})
    invoker.invoke_async("f", {"k": "ok"})  # fails once, succeeds on retry
    invoker.invoke_async("f", {"k": "bad"})
    assert attempts == ["ok", "ok", "bad", "bad", "bad"]
    assert [d.payload for d in invoker.dead_letters] == [{"k": "bad"}]
    assert invoker.dead_letters[0].error == "RuntimeError: boom" and invoker.dead_letters[0].attempt == 2
    assert len(invoker.failures) == 4


def test_inline_invoker_gives_the_callee_its_own_copy_and_resolves_functions() -> None:
    received: list[dict[str, Any]] = []
    invoker = InlineInvoker({"f": lambda e, c: received.append(e)})
    payload = {"nested": {"a": 1}}
    invoker.invoke_async("f", payload)
    received[0]["nested"]["a"] = 2
    assert payload == {"nested": {"a": 1}}
    with pytest.raises(KeyError, match="no function 'nope'"):
        invoker.invoke_async("nope", {})


def test_payload_limit_is_scfs_or_the_hosts_encoder() -> None:
    blob = {"blob": "x" * SCF_ASYNC_MAX_PAYLOAD_BYTES}
    with pytest.raises(PayloadTooLarge, match="over 131072"):
        InlineInvoker({"f": lambda e, c: None}).invoke_async("f", blob)
    with pytest.raises(PermanentError, match="split_request"):
        InlineInvoker({"f": lambda e, c: None}, encode=encode_payload).invoke_async("f", blob)


def test_entry_point_handlers_import_each_function_lazily() -> None:
    import functions.flip.handler as flip

    handlers = EntryPointHandlers()
    assert "flip" in handlers and "prestop" in handlers and len(handlers) == 10
    assert handlers["flip"] is flip.main_handler
    with pytest.raises(KeyError):
        handlers["nope"]
