from __future__ import annotations

import io
import json

import pytest

from shared.config import Settings
from shared.domain.errors import ConfigError, RetryableError
from shared.logging import bind_invocation, configure_logging, get_logger


def test_settings_take_scf_role_credentials_when_no_explicit_ones() -> None:
    settings = Settings.load(
        {
            "TENCENTCLOUD_SECRETID": "AKIDrole",
            "TENCENTCLOUD_SECRETKEY": "rolekey",
            "TENCENTCLOUD_SESSIONTOKEN": "tok",
            "TENCENTCLOUD_REGION": "ap-shanghai",
        }
    )
    assert settings.require_credentials() == ("AKIDrole", "rolekey", "tok")
    assert settings.region == "ap-shanghai"


def test_explicit_settings_override_role_and_endpoint_is_overridable() -> None:
    settings = Settings.load(
        {
            "TENCENTCLOUD_SECRETID": "AKIDrole",
            "TENCENTCLOUD_SECRETKEY": "rolekey",
            "CLB_DIRECT_SECRET_ID": "mine",
            "CLB_DIRECT_SECRET_KEY": "minekey",
            "CLB_DIRECT_CLB_ENDPOINT": "127.0.0.1:9000",
            "CLB_DIRECT_CLB_PROTOCOL": "http",
        }
    )
    assert settings.require_credentials() == ("mine", "minekey", None)
    assert settings.clb_endpoint == "127.0.0.1:9000"


def test_missing_credentials_say_how_to_provide_them() -> None:
    with pytest.raises(ConfigError, match="execution role"):
        Settings.load({}).require_credentials()


def test_bad_setting_names_the_problem() -> None:
    with pytest.raises(ConfigError, match="CLB_DIRECT_STORE_URL"):
        Settings.load({"CLB_DIRECT_STORE_URL": "mysql://x"})
    with pytest.raises(ConfigError, match="CLB_DIRECT_BACKEND_QUOTA"):
        Settings.load({"CLB_DIRECT_BACKEND_QUOTA": "zero"})


def test_a_lease_shorter_than_the_pauses_of_a_clb_write_is_refused() -> None:
    # The writer renews its lease at the attempts and task polls of a write that waits for its CLB task
    # (clb_task_timeout_s, 60 s, is longer than the 30 s lease); a lease shorter than a few of those pauses
    # would lapse mid-write all the same.
    with pytest.raises(ConfigError, match=r"CLB_DIRECT_LEASE_TTL_S=5 is too short.*at least 15"):
        Settings.load({"CLB_DIRECT_LEASE_TTL_S": "5"})
    shipped = Settings.load({})
    assert shipped.lease_ttl_s < shipped.clb_task_timeout_s  # fine: renewed while it waits
    short = Settings.load({"CLB_DIRECT_LEASE_TTL_S": "15", "CLB_DIRECT_CLB_REQUEST_TIMEOUT_S": "5"})
    assert short.lease_ttl_s == 15


def test_a_clb_request_timeout_that_leaves_no_margin_inside_the_lease_is_refused() -> None:
    # The fence is checked before a request, not during it: a request must end (or be abandoned by the SDK)
    # with as long again to spare on the lease, so two request timeouts must fit in the lease TTL.
    shipped = Settings.load({})
    assert 2 * shipped.clb_request_timeout_s < shipped.lease_ttl_s
    assert shipped.clb_request_timeout_s < 60  # the SDK's own default outlasts the lease
    with pytest.raises(ConfigError) as info:
        Settings.load({"CLB_DIRECT_LEASE_TTL_S": "20"})  # exactly 2 x the default 10 s: no margin
    message = info.value.message
    assert "CLB_DIRECT_CLB_REQUEST_TIMEOUT_S=10 is too long for CLB_DIRECT_LEASE_TTL_S=20" in message
    assert "set CLB_DIRECT_CLB_REQUEST_TIMEOUT_S below 10 or CLB_DIRECT_LEASE_TTL_S above 20" in message
    with pytest.raises(ConfigError, match=r"CLB_DIRECT_CLB_REQUEST_TIMEOUT_S=16 is too long.*below 15 or"):
        Settings.load({"CLB_DIRECT_CLB_REQUEST_TIMEOUT_S": "16"})
    relaxed = Settings.load({"CLB_DIRECT_LEASE_TTL_S": "20", "CLB_DIRECT_CLB_REQUEST_TIMEOUT_S": "9.5"})
    assert relaxed.clb_request_timeout_s == 9.5
    with pytest.raises(ConfigError, match="CLB_DIRECT_KUBE_REQUEST_TIMEOUT_S"):
        Settings.load({"CLB_DIRECT_KUBE_REQUEST_TIMEOUT_S": "0"})


def test_logs_are_json_with_invocation_context_and_redacted_secrets() -> None:
    out = io.StringIO()
    configure_logging(stream=out, force=True)
    bind_invocation(function="bind", request_id="req-1", cold_start=True, correlation_id="batch-9")
    get_logger().info(
        "target.registered",
        lb_id="lb-1",
        secret_key="s3cr3t",
        headers={"Authorization": "TC3-HMAC-SHA256 Credential=AKIDabc/2026", "X-TC-Token": "tok"},
        note="key AKIDabcdefghijklmnopqrstu leaked",
    )
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["event"] == "target.registered"
    assert (line["function"], line["request_id"], line["cold_start"], line["correlation_id"]) == (
        "bind",
        "req-1",
        True,
        "batch-9",
    )
    assert line["secret_key"] == "***"
    assert line["headers"]["Authorization"] == "***"
    assert line["headers"]["X-TC-Token"] == "***"
    assert "AKIDabcdefghijklmnopqrstu" not in line["note"]
    configure_logging(force=True)


def test_a_new_invocation_clears_the_previous_context() -> None:
    out = io.StringIO()
    configure_logging(stream=out, force=True)
    bind_invocation(function="bind", request_id="a", cold_start=True, pod="web-1")
    bind_invocation(function="bind", request_id="b", cold_start=False)
    get_logger().info("x.done")
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert "pod" not in line and line["request_id"] == "b"
    configure_logging(force=True)


def test_retryable_error_carries_its_delay() -> None:
    err = RetryableError("CLB busy", delay_s=2.5, code="FailedOperation.ResourceInOperating")
    assert err.to_dict()["delay_s"] == 2.5 and err.retryable
