"""Hypothesis strategies for hostile input: arbitrary JSON, and valid fixtures with one part replaced.

A fuzzer that only sends random JSON rarely gets past the first type check; replacing one node of a
valid fixture (a label, a port, a whole `spec`) with a value of another type, or deleting it, reaches
every field a parser reads. Used by `test_parser_properties.py`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "ResponseComplete", "Pod", "pods", "True", "create", "9" * 30, "\u00e9\u4e2d", "-1"])
)

JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths_of(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths_of(child, (*prefix, index)))
    return found


def replace_at(value: Any, path: tuple[Any, ...], new: Any, *, delete: bool) -> Any:
    if not path:
        return new
    root = copy.deepcopy(value)
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif delete and isinstance(parent, list):
        parent.pop(path[-1])
    else:
        parent[path[-1]] = new
    return root


@st.composite
def mutated(draw: st.DrawFn, fixture: Any, *, times: int = 2) -> Any:
    """`fixture` with up to `times` nodes replaced by arbitrary JSON or deleted."""
    value = copy.deepcopy(fixture)
    for _ in range(draw(st.integers(min_value=1, max_value=times))):
        paths = paths_of(value)
        path = draw(st.sampled_from(paths))
        value = replace_at(value, path, draw(JSON), delete=bool(path) and draw(st.booleans()))
    return value


def hostile_bytes(fixture: Any) -> st.SearchStrategy[bytes]:
    """Bodies: a mutated fixture as JSON, arbitrary JSON, deep nesting, huge numbers, broken UTF-8, junk."""
    return st.one_of(
        mutated(fixture).map(lambda v: json.dumps(v).encode()),
        JSON.map(lambda v: json.dumps(v).encode()),
        st.integers(min_value=90, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(min_value=70, max_value=6000).map(lambda n: b'{"a": ' + b"7" * n + b"}"),
        st.binary(max_size=64),
        mutated(fixture).map(lambda v: json.dumps(v).encode()[:-3] + b"\xff\xfe}"),
    )
