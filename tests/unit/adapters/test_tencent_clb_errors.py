"""CLB failures: transient codes retried under a deadline with jittered backoff; the rest permanent."""

from __future__ import annotations

import io
import json
import random

import pytest
import structlog

from shared import heartbeat
from shared.adapters.clb_errors import RetryPolicy, is_retryable_code
from shared.adapters.tencent_clb import TencentClbGateway, build_clb_client
from shared.clock import FakeClock
from shared.domain.errors import LimitExceeded, NotFound, PermanentError, RetryableError
from shared.domain.models import Target
from shared.logging import configure_logging
from tests.unit.adapters.clb_stub import BucketStore, ClbStub, settings

ONE = [Target(listener_id="lbl-1", ip="10.1.0.1", port=8080)]


@pytest.mark.parametrize(
    "code",
    [
        "RequestLimitExceeded",
        "RequestLimitExceeded.UinLimitExceeded",
        "FailedOperation.ResourceInOperating",
        "InternalError",
        "DROP",
    ],
)
def test_transient_failure_is_retried_then_succeeds(
    gateway: TencentClbGateway, clb_stub: ClbStub, clock: FakeClock, code: str
) -> None:
    clb_stub.fail("BatchRegisterTargets", code, times=2)
    clb_stub.on("BatchRegisterTargets", {"FailListenerIdSet": []})
    gateway.register_targets("lb-1", ONE)
    assert len(clb_stub.actions("BatchRegisterTargets")) == 3
    assert len(clock.sleeps) == 2
    assert all(0 <= s <= 5.0 for s in clock.sleeps)


def test_server_error_status_is_retried(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    answers = iter([(502, "bad gateway"), None])
    original = clb_stub.__call__

    def flaky(request):  # type: ignore[no-untyped-def]
        answer = next(answers)
        if answer is not None:
            return answer[0], {"Content-Type": "text/html"}, answer[1]
        return original(request)

    clb_stub.on("DescribeListeners", {"Listeners": []})
    import responses

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, "https://clb.tencentcloudapi.com/", callback=flaky)
        assert gateway.list_listeners("lb-1") == []


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=4.0, rng=random.Random(1))
    samples = [max(policy.backoff(attempt) for _ in range(200)) for attempt in range(8)]
    assert samples[0] <= 0.5 and samples[2] <= 2.0
    assert samples[2] > 1.0
    assert max(samples) <= 4.0


def test_deadline_exhausted_becomes_retryable_error(clb_stub: ClbStub, clock: FakeClock) -> None:
    gateway = TencentClbGateway(
        build_clb_client(settings()),
        region="ap-guangzhou",
        clock=clock,
        retry=RetryPolicy(deadline_s=10.0, rng=random.Random(3)),
    )
    clb_stub.fail("BatchRegisterTargets", "FailedOperation.ResourceInOperating", "lb locked", times=1000)
    with pytest.raises(RetryableError) as info:
        gateway.register_targets("lb-1", ONE)
    assert info.value.code == "FailedOperation.ResourceInOperating"
    assert "lb-1" in info.value.message and "lb locked" in info.value.message
    assert info.value.delay_s >= 1.0
    assert sum(clock.sleeps) <= 10.0
    assert len(clb_stub.actions("BatchRegisterTargets")) > 3


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("InvalidParameter.LBIdNotFound", NotFound),
        ("InvalidParameterValue.Range", PermanentError),
        ("LimitExceeded", LimitExceeded),
        ("AuthFailure.SignatureFailure", PermanentError),
    ],
)
def test_permanent_codes_name_action_lb_code_and_request_id(
    gateway: TencentClbGateway, clb_stub: ClbStub, clock: FakeClock, code: str, error_type: type[PermanentError]
) -> None:
    clb_stub.fail("BatchRegisterTargets", code, "the CLB says no")
    with pytest.raises(error_type) as info:
        gateway.register_targets("lb-1", ONE)
    assert type(info.value) is error_type
    assert info.value.code == code
    assert f"CLB BatchRegisterTargets on lb-1 failed: {code}: the CLB says no (RequestId req-1)" in info.value.message
    assert len(clb_stub.calls) == 1 and clock.sleeps == []


def test_code_classification() -> None:
    assert is_retryable_code("RequestLimitExceeded.GlobalRegionUinLimitExceeded")
    assert is_retryable_code("ServerNetworkError")
    assert not is_retryable_code("FailedOperation.ResourceInOperation")  # the wrong spelling is not ours
    assert not is_retryable_code("FailedOperation")


def test_writes_take_a_token_from_the_shared_regional_bucket(clb_stub: ClbStub, clock: FakeClock) -> None:
    store = BucketStore()
    gateway = TencentClbGateway(
        build_clb_client(settings()),
        region="ap-shanghai",
        clock=clock,
        store=store,  # type: ignore[arg-type]
        write_rate_per_s=20.0,
        retry=RetryPolicy(deadline_s=60.0, rng=random.Random(1)),
    )
    clb_stub.on("BatchRegisterTargets", {"FailListenerIdSet": []})
    clb_stub.on("DescribeListeners", {"Listeners": []})
    for _ in range(30):
        gateway.register_targets("lb-1", ONE)
    gateway.list_listeners("lb-1")
    assert set(store.takes) == {"clb-write:ap-shanghai:register"}
    # 20 burst tokens, then one token per 1/20 s: the last 10 calls wait about 0.5 s in total.
    assert len(clock.sleeps) == 10
    assert sum(clock.sleeps) == pytest.approx(0.5)


def test_exhausted_bucket_past_deadline_is_retryable(clb_stub: ClbStub, clock: FakeClock) -> None:
    store = BucketStore()
    gateway = TencentClbGateway(
        build_clb_client(settings()),
        region="ap-guangzhou",
        clock=clock,
        store=store,  # type: ignore[arg-type]
        write_rate_per_s=0.01,
        retry=RetryPolicy(deadline_s=5.0),
    )
    clb_stub.on("BatchRegisterTargets", {"FailListenerIdSet": []})
    gateway.register_targets("lb-1", ONE)
    with pytest.raises(RetryableError, match="clb-write:ap-guangzhou:register.*saturated"):
        gateway.register_targets("lb-1", ONE)


def test_requests_are_signed_with_role_credentials_and_token(clb_stub: ClbStub, clock: FakeClock) -> None:
    creds = settings(session_token="role-session-token", region="ap-beijing")
    gateway = TencentClbGateway.from_settings(creds, clock=clock)
    clb_stub.on("DescribeListeners", {"Listeners": []})
    gateway.list_listeners("lb-1")
    headers = clb_stub.calls[0].headers
    assert headers["X-TC-Action"] == "DescribeListeners" and headers["X-TC-Version"] == "2018-03-17"
    assert headers["X-TC-Region"] == "ap-beijing" and headers["X-TC-Token"] == "role-session-token"
    assert headers["Authorization"].startswith("TC3-HMAC-SHA256 Credential=AKIDunitunitunitunitunit/")
    assert "unit-key" not in json.dumps(headers)


def test_retry_logs_never_carry_credentials(gateway: TencentClbGateway, clb_stub: ClbStub) -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream, force=True)
    try:
        clb_stub.fail("DescribeListeners", "RequestLimitExceeded")
        clb_stub.on("DescribeListeners", {"Listeners": []})
        gateway.list_listeners("lb-1")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line["event"] == "clb.call.retrying" and line["code"] == "RequestLimitExceeded" for line in lines)
    assert "unit-key" not in stream.getvalue() and "AKIDunit" not in stream.getvalue()


def test_each_request_asks_the_heartbeat_for_two_request_timeouts_after_any_token_wait(
    clb_stub: ClbStub, clock: FakeClock
) -> None:
    # The fence is only checked before a request: that check must come after the wait for a write token
    # (it can last the whole call deadline) and ask for the lease the request may take, its timeout twice.
    client = build_clb_client(settings(clb_request_timeout_s=4.0))
    assert client.profile.httpProfile.reqTimeout == 4.0  # the SDK's 60 s default would outlast the lease
    gateway = TencentClbGateway(
        client,
        region="ap-guangzhou",
        clock=clock,
        store=BucketStore(),  # type: ignore[arg-type]
        write_rate_per_s=0.5,
        retry=RetryPolicy(deadline_s=60.0),
    )
    events: list[str] = []
    clb_stub.on("BatchRegisterTargets", lambda _params: events.append("request") or {"FailListenerIdSet": []})
    sleep = clock.sleep

    def recorded_sleep(seconds: float) -> None:
        events.append("token wait")
        sleep(seconds)

    clock.sleep = recorded_sleep  # type: ignore[method-assign]
    with heartbeat.beating(lambda lease_s: events.append(f"beat {lease_s:g}")):
        gateway.register_targets("lb-1", ONE)
        gateway.register_targets("lb-1", ONE)  # the bucket is empty: waits 2 s for its token
    assert events == ["beat 8", "request", "token wait", "beat 8", "request"]
