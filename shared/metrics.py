"""Metric log records: one structlog JSON line per measurement, in one documented schema.

Called by any step or service that measures something (stage latencies of a Pod's timeline, write
counts). Like Powertools Metrics' embedded format, a metric is a log record, so it travels with the
function logs (SCF -> CLS in production, the runtime's log file locally) and needs no extra client:

    {"event": "metric", "metric_name": "gate_latency", "metric_value": 0.42, "metric_unit": "Seconds",
     "dimensions": {"service": "default/web", "stage": "gate_true"},
     "function": "flip", "request_id": "...", "correlation_id": "...", ...}

`docs/metrics.md` documents the schema and the names in use. Dimensions are strings (low cardinality
where a backend aggregates them: service, listener, stage; a Pod name is fine in a log query).
"""

from __future__ import annotations

import math
from typing import Final, Literal

from shared.domain.errors import InvalidInput
from shared.logging import get_logger

MetricUnit = Literal["Count", "Seconds", "Milliseconds", "Bytes"]
UNITS: Final[frozenset[str]] = frozenset({"Count", "Seconds", "Milliseconds", "Bytes"})
METRIC_EVENT: Final = "metric"

log = get_logger("clb_direct.metrics")


def emit_metric(name: str, value: float, unit: str, **dimensions: str) -> None:
    """Write one metric record (event="metric") with the invocation's bound context.

    Raises `InvalidInput` for an empty name, a unit outside `UNITS` or a value that is not a finite
    number, so a typo shows at the first call rather than as a silently unparseable record.
    """
    if not name:
        raise InvalidInput("metric name must not be empty")
    if unit not in UNITS:
        raise InvalidInput(f"metric {name!r}: unit {unit!r} is not one of {', '.join(sorted(UNITS))}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"metric {name!r}: value {value!r} is not a finite number")
    log.info(
        METRIC_EVENT,
        metric_name=name,
        metric_value=float(value),
        metric_unit=unit,
        dimensions={str(k): str(v) for k, v in dimensions.items()},
    )


__all__ = ["METRIC_EVENT", "UNITS", "MetricUnit", "emit_metric"]
