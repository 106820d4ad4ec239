"""Validation of a listener's HealthCheck block as CreateListener / ModifyListener accept it.

Called by the listener actions (`actions_listeners.py`) with the listener protocol, the caller's
HealthCheck object and the listener's current (or default) settings; returns the merged settings or
raises the real API's refusal. Ranges come from the SDK's HealthCheck docs.
"""

from __future__ import annotations

from typing import Any

from emulators.clb.errors import INVALID_PARAMETER_VALUE, MISSING_PARAMETER, VALUE_LENGTH, VALUE_RANGE, ClbApiError
from emulators.clb.params import Params, check_range, opt_int, opt_str

_INT_FIELDS = ("HealthSwitch", "TimeOut", "IntervalTime", "HealthNum", "UnHealthNum", "HttpCode", "CheckPort")
_INT_FIELDS_FREE = ("SourceIpType",)
_STR_FIELDS = (
    "HttpCheckPath",
    "HttpCheckDomain",
    "HttpCheckMethod",
    "CheckType",
    "ContextType",
    "SendContext",
    "RecvContext",
    "HttpVersion",
    "ExtendedCode",
)
_RANGES = {
    "HealthSwitch": (0, 1),
    "TimeOut": (2, 60),
    "IntervalTime": (2, 300),
    "HealthNum": (2, 10),
    "UnHealthNum": (2, 10),
    "HttpCode": (1, 31),
}
_CHECK_TYPES = {
    "TCP": ("TCP", "HTTP", "CUSTOM"),
    "TCP_SSL": ("TCP", "HTTP", "CUSTOM"),
    "UDP": ("PING", "CUSTOM"),
    "QUIC": ("PING", "CUSTOM"),
    "HTTP": ("HTTP", "HTTPS", "GRPC"),
    "HTTPS": ("HTTP", "HTTPS", "GRPC"),
}
_CUSTOM_CONTEXT_MAX = 500


def merge_health_check(protocol: str, given: Params | None, current: dict[str, Any]) -> dict[str, Any]:
    """`current` updated with the non-null fields of `given`, validated as a whole."""
    merged = dict(current)
    if given:
        for key in _INT_FIELDS + _INT_FIELDS_FREE:
            value = opt_int(given, key, f"HealthCheck.{key}")
            if value is not None:
                merged[key] = value
        for key in _STR_FIELDS:
            text = opt_str(given, key, f"HealthCheck.{key}")
            if text is not None:
                merged[key] = text
    _validate(protocol, merged)
    return merged


def _validate(protocol: str, hc: dict[str, Any]) -> None:
    for key, (low, high) in _RANGES.items():
        check_range(f"HealthCheck.{key}", hc[key], low, high)
    if hc["TimeOut"] >= hc["IntervalTime"]:
        raise ClbApiError(
            VALUE_RANGE,
            f"HealthCheck.TimeOut ({hc['TimeOut']}) must be less than HealthCheck.IntervalTime ({hc['IntervalTime']}).",
        )
    check_port = hc["CheckPort"]
    if check_port != -1:
        check_range("HealthCheck.CheckPort", check_port, 1, 65535)
    allowed = _CHECK_TYPES[protocol]
    if hc["CheckType"] not in allowed:
        raise ClbApiError(
            INVALID_PARAMETER_VALUE,
            f"HealthCheck.CheckType {hc['CheckType']!r} is not allowed on a {protocol} listener; use one of "
            f"{', '.join(allowed)}.",
        )
    if hc["HttpCheckMethod"] not in ("HEAD", "GET"):
        raise ClbApiError(INVALID_PARAMETER_VALUE, "HealthCheck.HttpCheckMethod must be HEAD or GET.")
    if hc["CheckType"] == "HTTP":
        if not str(hc["HttpCheckPath"]).startswith("/"):
            raise ClbApiError(INVALID_PARAMETER_VALUE, "HealthCheck.HttpCheckPath must start with '/'.")
        if protocol in ("TCP", "TCP_SSL") and not hc["HttpCheckDomain"]:
            raise ClbApiError(
                MISSING_PARAMETER, "HealthCheck.HttpCheckDomain is required for an HTTP health check on a TCP listener."
            )
    for key in ("SendContext", "RecvContext"):
        if hc.get(key) and len(hc[key]) > _CUSTOM_CONTEXT_MAX:
            raise ClbApiError(VALUE_LENGTH, f"HealthCheck.{key} is longer than {_CUSTOM_CONTEXT_MAX} characters.")
