"""The metric record schema (`shared.metrics.emit_metric`): one JSON line with the invocation context."""

from __future__ import annotations

import io
import json

import pytest

from shared.domain.errors import InvalidInput
from shared.logging import bind_invocation, configure_logging
from shared.metrics import emit_metric


def test_a_metric_is_one_record_with_name_value_unit_dimensions_and_context() -> None:
    out = io.StringIO()
    configure_logging(stream=out, force=True)
    try:
        bind_invocation(function="flip", request_id="req-1", cold_start=False, correlation_id="batch-9")
        emit_metric("stage_latency", 1, "Seconds", stage="gate_true", service="default/web")
    finally:
        configure_logging(force=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "metric"
    assert (record["metric_name"], record["metric_value"], record["metric_unit"]) == ("stage_latency", 1.0, "Seconds")
    assert record["dimensions"] == {"stage": "gate_true", "service": "default/web"}
    assert (record["function"], record["request_id"], record["correlation_id"]) == ("flip", "req-1", "batch-9")


@pytest.mark.parametrize(
    ("name", "value", "unit", "needle"),
    [
        ("", 1.0, "Count", "name"),
        ("x", 1.0, "seconds", "unit 'seconds'"),
        ("x", float("nan"), "Count", "finite"),
        ("x", True, "Count", "finite"),
    ],
)
def test_bad_metrics_are_refused_with_what_is_wrong(name: str, value: float, unit: str, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        emit_metric(name, value, unit)
