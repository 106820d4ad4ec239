"""Bounded JSON parsing: the one place every handler turns untrusted bytes into Python values.

Used by the router (relay batches, EventLists, CLS records), the admission review parser, the health
callbacks and the API gateway body helper. The standard library parser crashes on hostile input in ways
that are not `json.JSONDecodeError`: a `RecursionError` on deep nesting, a `ValueError` on an integer of
more than 4,300 digits, a `UnicodeDecodeError` on invalid UTF-8, and a lone surrogate (`"\\ud800"`)
parses but makes every later UTF-8 encode (logs, the store) fail. `parse_json` turns each of these into
`InvalidInput` naming what was wrong, and caps nesting depth and number length well below the crash
points so the values that come out are safe for every later step (pydantic, `json.dumps`, the store).
`check_json_value` applies the same bounds to a value that arrived already parsed (an SCF event).
"""

from __future__ import annotations

import json
import math
from typing import Any

from shared.domain.errors import InvalidInput

# Kubernetes objects nest about 20 levels deep (managedFields inside a Pod inside an audit Event inside
# a relay batch); 100 leaves room for CRDs and stays far below Python's recursion limit (1,000).
MAX_JSON_DEPTH = 100
# An int64 has 19 digits and Kubernetes quantities are strings: 64 characters is generous.
MAX_NUMBER_CHARS = 64


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidInput(f"a number of {len(text)} digits is not accepted (at most {MAX_NUMBER_CHARS})")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise InvalidInput(f"a number of {len(text)} characters is not accepted (at most {MAX_NUMBER_CHARS})")
    number = float(text)
    if math.isinf(number):
        raise InvalidInput(f"the number {text} is out of range")
    return number


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


def _where(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "top level"


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_json_value(value: Any, *, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Raise `InvalidInput` if `value` nests deeper than `max_depth`, holds a huge number or a string that
    is not encodable as UTF-8, or is not plain JSON data; returns `value` unchanged. Iterative, so it
    cannot itself hit the recursion limit."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > max_depth:
            raise InvalidInput(f"{what} nests deeper than {max_depth} levels at {_where(path[:8])}...")
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str) or _has_lone_surrogate(key):
                    raise InvalidInput(f"{what} has an invalid object key at {_where(path)}")
                stack.append((child, [*path, key]))
        elif isinstance(node, list):
            stack.extend((child, [*path, index]) for index, child in enumerate(node))
        elif isinstance(node, str):
            if _has_lone_surrogate(node):
                raise InvalidInput(f"{what} field {_where(path)} holds a lone UTF-16 surrogate, not text")
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if node.bit_length() > MAX_NUMBER_CHARS * 4:
                raise InvalidInput(f"{what} field {_where(path)} holds a number too large to accept")
        elif not isinstance(node, float):
            raise InvalidInput(f"{what} field {_where(path)} holds a {type(node).__name__}, not JSON data")
    return value


def parse_json(raw: str | bytes | bytearray | None, *, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON text; `InvalidInput` names `what` and the problem. Empty input is an error."""
    if raw is None or len(raw) == 0:
        raise InvalidInput(f"{what} is empty: expected JSON")
    if isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{what} is not valid UTF-8 (byte {exc.start}: {exc.reason})") from exc
    else:
        text = raw
    try:
        value = json.loads(text, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_reject_constant)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc.message}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what} nests deeper than {max_depth} levels") from exc
    return check_json_value(value, what=what, max_depth=max_depth)
