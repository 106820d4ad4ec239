"""Secret settings by reference: `ssm:<name>[@<version>]` values resolved from Tencent Secrets Manager.

Called once per cold start by the function shell (`shared.shell.FunctionShell.deps`)
and by `clb-direct doctor`. No secret is written into serverless.yml or a function's plain environment:
an operator stores the HMAC keys, the Redis password and the cluster token in Secrets Manager (SSM)
and sets the setting to a reference, e.g. `CLB_DIRECT_RELAY_HMAC_KEY=ssm:clb-direct-relay-hmac-key`.
The execution role needs `ssm:GetSecretValue` on those secrets only. Values that are not references
are used as given (the local runtime, tests). A reference that cannot be resolved is a `ConfigError`
naming the setting and the secret, never the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pydantic import SecretStr

from shared.config import Settings
from shared.domain.errors import ConfigError

SSM_PREFIX = "ssm:"
SSM_VERSION = "2019-09-23"
DEFAULT_VERSION = "v1"

Fetch = Callable[[str, str], str]
"""(secret name, version id) -> the secret string."""


def secret_references(settings: Settings) -> dict[str, tuple[str, str]]:
    """Setting name -> (secret name, version) for every secret setting that holds an `ssm:` reference."""
    found: dict[str, tuple[str, str]] = {}
    for field, info in Settings.model_fields.items():
        if info.annotation not in (SecretStr, SecretStr | None):
            continue
        value = getattr(settings, field)
        if not isinstance(value, SecretStr):
            continue
        text = value.get_secret_value()
        if text.startswith(SSM_PREFIX):
            name, _, version = text[len(SSM_PREFIX) :].partition("@")
            if not name:
                raise ConfigError(f"CLB_DIRECT_{field.upper()}: `ssm:` needs a secret name (ssm:<name>[@<version>])")
            found[field] = (name, version or DEFAULT_VERSION)
    return found


def resolve_secrets(settings: Settings, fetch: Fetch | None = None) -> Settings:
    """Settings with every `ssm:` reference replaced by the secret's value (unchanged if there is none)."""
    references = secret_references(settings)
    if not references:
        return settings
    get = fetch or ssm_fetcher(settings)
    values: dict[str, SecretStr] = {}
    for field, (name, version) in references.items():
        try:
            values[field] = SecretStr(get(name, version))
        except ConfigError:
            raise
        except Exception as exc:  # any SDK / network failure: name the setting and the secret, not the value
            raise ConfigError(
                f"CLB_DIRECT_{field.upper()}: cannot read secret {name!r} (version {version}) from Secrets "
                f"Manager: {type(exc).__name__}: {exc}; check that it exists and that the execution role "
                "may call ssm:GetSecretValue on it"
            ) from exc
    return settings.model_copy(update=values)


def ssm_fetcher(settings: Settings) -> Fetch:
    """GetSecretValue through the SDK's generic client (no extra package: same signing as CLB)."""
    from tencentcloud.common import credential
    from tencentcloud.common.common_client import CommonClient

    secret_id, secret_key, token = settings.require_credentials()
    client = CommonClient("ssm", SSM_VERSION, credential.Credential(secret_id, secret_key, token), settings.region)

    def fetch(name: str, version: str) -> str:
        response = client.call_json("GetSecretValue", {"SecretName": name, "VersionId": version})
        body = response.get("Response", response) if isinstance(response, dict) else {}
        value = body.get("SecretString") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"secret {name!r} (version {version}) has no SecretString: {json.dumps(body)[:200]}")
        return value

    return fetch
