"""`wire_time.parse_rfc3339` reads every RFC 3339 form the wire carries, on Python 3.10 as on later versions.

The property: any instant, written with 0 to 9 fraction digits and a `Z`/`z` or a `±HH:MM` offset, parses back
to that instant truncated to microseconds. Examples pin what the wrappers in `shared/` and the simulator rely
on, and what is refused (no offset, a bare `.`, out-of-range fields).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.cluster.simclock import parse_time as simulator_parse_time
from shared.domain.flip_plan import epoch_of as step_parse_time
from shared.timeline import parse_k8s_time
from wire_time import parse_rfc3339

UTC_SUFFIXES = ("Z", "z", "+00:00", "-00:00")


def _wire(moment: datetime, nanos: int, digits: int, zone: str) -> str:
    """`moment` (whole seconds, UTC) plus `nanos`, with `digits` fraction digits, in the `zone` form."""
    if zone in UTC_SUFFIXES:
        local, suffix = moment, zone
    else:
        offset = timedelta(minutes=int(zone))
        local = moment + offset
        sign, magnitude = ("-", -offset) if offset < timedelta(0) else ("+", offset)
        hours, rest = divmod(int(magnitude.total_seconds()), 3600)
        suffix = f"{sign}{hours:02d}:{rest // 60:02d}"
    fraction = f".{nanos:09d}"[: digits + 1] if digits else ""
    return local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + suffix


@settings(max_examples=60, derandomize=True, deadline=None)  # no per-example deadline on a loaded machine
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)).map(
        lambda d: d.replace(microsecond=0, tzinfo=timezone.utc)
    ),
    nanos=st.integers(0, 999_999_999),
    digits=st.integers(0, 9),
    zone=st.sampled_from(UTC_SUFFIXES) | st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(str),
)
def test_any_fraction_width_and_offset_parses_to_the_instant(
    moment: datetime, nanos: int, digits: int, zone: str
) -> None:
    text = _wire(moment, nanos, digits, zone)
    kept = int(f"{nanos:09d}"[:digits].ljust(9, "0")) // 1000 if digits else 0
    parsed = parse_rfc3339(text)
    assert parsed.tzinfo is not None
    assert parsed == moment + timedelta(microseconds=kept), text


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000.5),
        ("2023-11-14T22:13:20.12Z", 1_700_000_000.12),
        ("2023-11-14T22:13:20.1234Z", 1_700_000_000.1234),
        ("2023-11-14T22:13:20.123456789Z", 1_700_000_000.123456),
        ("2023-11-15T06:13:20.000000001+08:00", 1_700_000_000.0),
        ("2023-11-14T16:43:20-05:30", 1_700_000_000.0),
        ("2023-11-14 22:13:20Z", 1_700_000_000.0),
    ],
)
def test_wire_examples(text: str, epoch: float) -> None:
    assert parse_rfc3339(text).timestamp() == pytest.approx(epoch, abs=1e-6)
    assert step_parse_time(text) == parse_k8s_time(text) == simulator_parse_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-14T22:13:20",  # no offset: no instant
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13Z",
        "2023-11-14T24:00:00Z",
        "2023-02-30T00:00:00Z",
        "2023-11-14T22:13:20+24:00",
        "2023-11-14T22:13:20+05:60",
        "2023-11-14T22:13:20+0530",
        "2023-11-14T22:13:20Z ",
        "１２３４-11-14T22:13:20Z",  # non-ASCII digits
        "",
    ],
)
def test_what_is_not_rfc3339_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_the_wrappers_answer_none_for_absent_or_unreadable_timestamps() -> None:
    assert step_parse_time(None) is None and parse_k8s_time("") is None
    assert step_parse_time("yesterday") is None and parse_k8s_time("2023-11-14T22:13:20") is None
