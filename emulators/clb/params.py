"""Typed reads of CLB request parameters with the real API's refusals.

Used by the model's action handlers: a missing required field answers `MissingParameter`, a value of the
wrong JSON type answers `InvalidParameter.FormatError`, a list past its documented length answers
`LimitExceeded`-style or `InvalidParameterValue.Length` errors chosen by the caller. Names in messages
use the API's dotted form (`Targets.3.Port`) so a client can find the offending field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulators.clb.errors import FORMAT_ERROR, MISSING_PARAMETER, VALUE_LENGTH, VALUE_RANGE, ClbApiError

Params = Mapping[str, Any]


def _missing(name: str) -> ClbApiError:
    return ClbApiError(MISSING_PARAMETER, f"The parameter `{name}` is required but was not provided.")


def _bad_type(name: str, expected: str, value: Any) -> ClbApiError:
    return ClbApiError(FORMAT_ERROR, f"The parameter `{name}` must be {expected}, got {type(value).__name__}.")


def opt_str(params: Params, key: str, path: str | None = None) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad_type(path or key, "a string", value)
    return value


def req_str(params: Params, key: str, path: str | None = None) -> str:
    value = opt_str(params, key, path)
    if value is None or value == "":
        raise _missing(path or key)
    return value


def opt_int(params: Params, key: str, path: str | None = None) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    # JSON booleans decode to bool, a subclass of int; the API treats them as a type error.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(path or key, "an integer", value)
    return value


def req_int(params: Params, key: str, path: str | None = None) -> int:
    value = opt_int(params, key, path)
    if value is None:
        raise _missing(path or key)
    return value


def opt_bool(params: Params, key: str, path: str | None = None) -> bool | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _bad_type(path or key, "a boolean", value)
    return value


def opt_list(params: Params, key: str, path: str | None = None) -> list[Any] | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad_type(path or key, "an array", value)
    return value


def req_list(params: Params, key: str, path: str | None = None) -> list[Any]:
    value = opt_list(params, key, path)
    if not value:
        raise _missing(path or key)
    return value


def str_list(params: Params, key: str, *, required: bool = False, max_len: int | None = None) -> list[str]:
    """A list of strings, e.g. `LoadBalancerIds`; `max_len` is the documented per-call limit."""
    items = req_list(params, key) if required else (opt_list(params, key) or [])
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise _bad_type(f"{key}.{index}", "a string", item)
    check_length(key, items, max_len)
    return items


def int_list(params: Params, key: str, *, required: bool = False, max_len: int | None = None) -> list[int]:
    items = req_list(params, key) if required else (opt_list(params, key) or [])
    for index, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, int):
            raise _bad_type(f"{key}.{index}", "an integer", item)
    check_length(key, items, max_len)
    return items


def dict_list(params: Params, key: str, *, required: bool = False, max_len: int | None = None) -> list[Params]:
    items = req_list(params, key) if required else (opt_list(params, key) or [])
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad_type(f"{key}.{index}", "an object", item)
    check_length(key, items, max_len)
    return items


def opt_dict(params: Params, key: str) -> Params | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad_type(key, "an object", value)
    return value


def check_length(name: str, items: list[Any], max_len: int | None) -> None:
    if max_len is not None and len(items) > max_len:
        raise ClbApiError(
            VALUE_LENGTH, f"The length of `{name}` is {len(items)}; at most {max_len} are allowed per call."
        )


def check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ClbApiError(VALUE_RANGE, f"The value of `{name}` is {value}; it must be within [{low}, {high}].")
