"""Secret settings by `ssm:` reference: resolution, errors that name the setting, the real SSM call shape."""

from __future__ import annotations

import base64
import json

import pytest
import requests
import responses

from shared.adapters.kubernetes_api import KubernetesCluster
from shared.config import Settings
from shared.domain.errors import ConfigError
from shared.secrets import resolve_secrets, secret_references, ssm_fetcher

CREDS = {"secret_id": "AKIDdeploydeploy", "secret_key": "deploy-key"}


def test_references_are_resolved_and_plain_values_kept() -> None:
    settings = Settings.load(
        {}, **CREDS, relay_hmac_key="ssm:relay", kube_token="ssm:token@v7", health_notify_secret="plain"
    )
    assert secret_references(settings) == {"relay_hmac_key": ("relay", "v1"), "kube_token": ("token", "v7")}
    asked: list[tuple[str, str]] = []

    def fetch(name: str, version: str) -> str:
        asked.append((name, version))
        return f"value-of-{name}"

    resolved = resolve_secrets(settings, fetch)
    assert resolved.relay_hmac_key is not None and resolved.relay_hmac_key.get_secret_value() == "value-of-relay"
    assert resolved.kube_token is not None and resolved.kube_token.get_secret_value() == "value-of-token"
    assert resolved.health_notify_secret is not None and resolved.health_notify_secret.get_secret_value() == "plain"
    assert sorted(asked) == [("relay", "v1"), ("token", "v7")]
    assert resolve_secrets(Settings.load({}), fetch) == Settings.load({})  # nothing to resolve: no call


def test_unreadable_secret_names_the_setting_not_the_value() -> None:
    settings = Settings.load({}, **CREDS, store_password="ssm:redis-pw")

    def fetch(name: str, version: str) -> str:
        raise RuntimeError("ResourceNotFound.SecretNotExist")

    with pytest.raises(ConfigError, match=r"CLB_DIRECT_STORE_PASSWORD: cannot read secret 'redis-pw'"):
        resolve_secrets(settings, fetch)
    with pytest.raises(ConfigError, match="needs a secret name"):
        secret_references(Settings.load({}, relay_hmac_key="ssm:"))


def test_ssm_get_secret_value_request() -> None:
    seen: list[requests.PreparedRequest] = []

    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        seen.append(request)
        body = {"Response": {"SecretName": "relay", "VersionId": "v1", "SecretString": "s3cret", "RequestId": "r"}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    fetch = ssm_fetcher(Settings.load({}, **CREDS, region="ap-shanghai"))
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, "https://ssm.tencentcloudapi.com/", callback=reply)
        assert fetch("relay", "v1") == "s3cret"
    headers = seen[0].headers
    assert headers["X-TC-Action"] == "GetSecretValue" and headers["X-TC-Version"] == "2019-09-23"
    assert headers["X-TC-Region"] == "ap-shanghai"
    assert json.loads(seen[0].body or b"{}") == {"SecretName": "relay", "VersionId": "v1"}


def test_store_password_goes_into_a_redis_url_without_one() -> None:
    with_pw = Settings.load({}, store_url="redis://10.0.0.1:6379/0", store_password="p@ss/word")
    assert with_pw.store_connection_url() == "redis://:p%40ss%2Fword@10.0.0.1:6379/0"
    own = Settings.load({}, store_url="redis://:x@10.0.0.1:6379/0", store_password="y")
    assert own.store_connection_url() == "redis://:x@10.0.0.1:6379/0"
    assert Settings.load({}).store_connection_url() == Settings.load({}).store_url


def test_cluster_from_server_ca_and_token() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    settings = Settings.load(
        {}, kube_api_server="https://10.0.0.3:443/", kube_token="tok", kube_ca_data=base64.b64encode(pem).decode()
    )
    cluster = KubernetesCluster.from_settings(settings)
    try:
        configuration = cluster._api.configuration
        assert configuration.host == "https://10.0.0.3:443"
        assert configuration.api_key == {"authorization": "Bearer tok"}
        with open(configuration.ssl_ca_cert, "rb") as handle:
            assert handle.read() == pem
    finally:
        cluster.close()
    with pytest.raises(ConfigError, match="Kubernetes client"):
        KubernetesCluster.from_settings(settings.model_copy(update={"kube_ca_data": "not base64!"}))
