"""RFC 3339 timestamps as Kubernetes and Tencent Cloud write them, parsed the same way on Python 3.10 and later.

`datetime.fromisoformat` on 3.10 (the SCF runtime) accepts only 3 or 6 fraction digits and no `Z`, while the
wire carries 0 to 9 (Go's `RFC3339Nano` trims trailing zeros: `.5Z`, `.123456789Z`). Everything that reads a
timestamp off the wire calls `parse_rfc3339`: the steps and timeline in `shared/` and the cluster simulator in
`emulators/`. It is a stdlib-only package below both in the import layers, as `limited_http` is, because the
emulators may import nothing of the product.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["parse_rfc3339"]

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<hours>\d{2}):(?P<minutes>\d{2}))",
    re.ASCII,
)


def parse_rfc3339(text: str) -> datetime:
    """The aware `datetime` of an RFC 3339 date-time (`2023-11-14T22:13:20.5Z`, `...+08:00`).

    Any number of fraction digits is accepted and truncated to microseconds (what `datetime` holds). An offset
    is required: a timestamp without one names no instant. Raises `ValueError` on anything else.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM)): {text!r}")
    zone = timezone.utc
    if not match["utc"]:
        hours, minutes = int(match["hours"]), int(match["minutes"])
        if minutes > 59:
            raise ValueError(f"RFC 3339 offset minutes out of range in {text!r}")
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if match["sign"] == "-" else offset)  # ValueError from 24:00 on
    micros = (match["fraction"] or "").ljust(6, "0")[:6]
    whole = datetime.fromisoformat(f"{match['date']}T{match['time']}")  # range-checks the fields (ValueError)
    return whole.replace(microsecond=int(micros), tzinfo=zone)
