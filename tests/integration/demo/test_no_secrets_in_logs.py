"""No configured secret ever reaches a log line or a dead letter, even at debug level (issue 14, deliver 5).

The whole local stack runs at `debug` with a real password-protected `redis-server` as its store: CLB
emulator (TC3-signed SDK calls), cluster simulator (bearer-token kubeconfig, audit webhook with a
token), relay, the local runtime running every function, the guardian writing the webhook's TLS key
into a Secret. A Service and a Deployment are rolled in, then the error paths are driven on purpose (a
forged relay batch, an unsigned and a wrongly signed health callback, a step that fails until it
is dead-lettered). Every log line and dead letter is then searched for every secret, verbatim and in
the encodings a careless log would use (base64, the TLS key's PEM body lines).
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kubernetes import client, config

from demo.scenario import ScenarioOptions, deployment, service, tke_service_config
from demo.stack import LocalStack, StackOptions
from tests.support.net import free_port
from tests.support.polling import eventually


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[tuple[str, str]]:
    password = "redis-pw-" + secrets.token_hex(12)
    port = free_port()
    binary = shutil.which("redis-server")
    assert binary, "redis-server is installed by scripts/ensure-redis.sh"
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{password}@127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    try:
        eventually(answers, "redis-server with a password")
        yield url, password
    finally:
        process.terminate()
        process.wait(10)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _encodings(secret: str) -> set[str]:
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    if "PRIVATE KEY" in secret:  # PEM: every base64 body line is a secret on its own
        forms |= {line for line in secret.splitlines() if len(line) >= 40 and "-----" not in line}
    return forms


@pytest.mark.timeout(240)
def test_debug_logs_and_dead_letters_hold_no_secret(
    tmp_path: Path, redis_with_password: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url, redis_password = redis_with_password
    monkeypatch.setenv("CLB_DIRECT_CLB_CALL_DEADLINE_S", "3")  # a failing CLB gives up (and dead-letters) soon
    options = StackOptions(run_dir=tmp_path / "run", log_level="debug", store_url=store_url, reconcile_s=5.0)
    stack = LocalStack(options).start()
    found: dict[str, str] = {}
    try:
        assert stack.runtime is not None and stack.settings is not None
        api = config.new_client_from_config(config_file=str(stack.kubeconfig))
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        custom = client.CustomObjectsApi(api)
        custom.create_namespaced_custom_object(
            "cloud.tencent.com", "v1alpha1", "default", "tkeserviceconfigs", tke_service_config(3)
        )
        core.create_namespaced_service("default", service())
        apps.create_namespaced_deployment("default", deployment(ScenarioOptions(), "v1", 2))

        def ready_pods() -> int:
            pods = core.list_namespaced_pod(
                "default", label_selector="app=" + service()["spec"]["selector"]["app"]
            ).items
            return sum(
                1 for p in pods if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
            )

        eventually(lambda: ready_pods() == 2, "two Ready (gated, bound, healthy) Pods", timeout=120)
        settings = stack.settings
        tls_secret = core.read_namespaced_secret(settings.webhook_secret_name, settings.webhook_secret_namespace)
        tls_key = base64.b64decode(tls_secret.data["tls.key"]).decode()
        kube_token = json.loads(stack.kubeconfig.read_text())["users"][0]["user"]["token"]

        # The error paths log too: a forged batch, unsigned and wrongly signed health callbacks, a dead letter.
        runtime = stack.runtime
        assert (
            _post(
                f"{runtime.url}/router",
                b'{"batchId": "forged-0001", "items": []}',
                {"X-Clb-Direct-Signature": "v1=" + "0" * 64, "X-Clb-Direct-Timestamp": str(int(time.time()))},
            )
            == 401
        )
        assert _post(f"{runtime.url}/health", b'{"x": 1}', {}) in (400, 401)
        assert _post(f"{runtime.url}/health", b'{"x": 1}', {"X-Emulator-Signature": "sha256=00"}) in (400, 401)
        assert stack.clb is not None
        stack.clb.model.set_fault({"action": "*", "error_code": "InternalError"})  # every CLB call fails
        runtime.submit(
            "service",
            {
                "step": "service",
                "services": [{"namespace": "default", "name": "web"}],
                "reason": "secrets test",
                "correlation_id": "secrets-0001",
            },
        )
        eventually(lambda: runtime.snapshot()["dead_letters"], "the failing step dead-lettered", timeout=90)
        stack.clb.model.clear_faults()
        stack.wait_idle()
        api.close()
    finally:
        stack.stop()
    secrets_by_name = {
        "CLB SecretId": stack.env["CLB_DIRECT_SECRET_ID"],
        "CLB SecretKey": stack.env["CLB_DIRECT_SECRET_KEY"],
        "relay HMAC key": stack.env["CLB_DIRECT_RELAY_HMAC_KEY"],
        "health notify secret": stack.env["CLB_DIRECT_HEALTH_NOTIFY_SECRET"],
        "Redis password": redis_password,
        "webhook TLS private key": tls_key,
        "cluster token": kube_token,
        "relay audit token": stack.audit_token,
    }
    logs = stack.log_path.read_text(errors="replace")
    dead_letters_path = options.run_dir / "dead-letters.jsonl"
    dead_letters = dead_letters_path.read_text() if dead_letters_path.exists() else ""
    assert len(logs.splitlines()) > 50, "the stack logged its work"
    assert dead_letters, "a dead letter was written"
    for name, secret in secrets_by_name.items():
        assert len(secret) >= 16, name
        for form in _encodings(secret):
            for where, text in (("log", logs), ("dead letter", dead_letters)):
                if form in text:
                    line = next(line for line in text.splitlines() if form in line)
                    found[f"{name} in a {where}"] = line[:300]
    assert not found, json.dumps(found, indent=1)
