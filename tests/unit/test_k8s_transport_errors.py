"""A Kubernetes call that fails in transport says which way: no answer in time, or no connection at all."""

from __future__ import annotations

import pytest
import urllib3

from shared.adapters.k8s_mapping import call_api
from shared.domain.errors import RetryableError

REFUSED = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")  # type: ignore[arg-type]
READ_TIMEOUT = urllib3.exceptions.ReadTimeoutError(None, "/api/v1/pods", "Read timed out")  # type: ignore[arg-type]


def _raise(exc: Exception) -> None:
    raise exc


@pytest.mark.parametrize(
    ("failure", "code", "says"),
    [
        (urllib3.exceptions.MaxRetryError(None, "/api/v1/pods", REFUSED), None, "connection failed"),  # type: ignore[arg-type]
        (urllib3.exceptions.MaxRetryError(None, "/api/v1/pods", READ_TIMEOUT), "Timeout", "no answer within"),  # type: ignore[arg-type]
        (READ_TIMEOUT, "Timeout", "CLB_DIRECT_KUBE_REQUEST_TIMEOUT_S"),
    ],
)
def test_a_refused_connection_is_not_reported_as_a_timeout(failure: Exception, code: str | None, says: str) -> None:
    with pytest.raises(RetryableError) as raised:
        call_api("get Pod default/web-1", _raise, failure)
    assert raised.value.code == code and says in str(raised.value)
