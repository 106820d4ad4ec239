"""The one Settings model of clb-direct.

Built once per cold start by a handler (or the CLI / local runtime) and passed down; nothing below the
handler reads the environment. Every field can be set by an environment variable with the prefix
`CLB_DIRECT_` (e.g. `CLB_DIRECT_STORE_URL`). Tencent credentials also come from the SCF execution role
variables `TENCENTCLOUD_SECRETID` / `TENCENTCLOUD_SECRETKEY` / `TENCENTCLOUD_SESSIONTOKEN`
(injected by SCF for the function's execution role) when the explicit settings are absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.errors import ConfigError
from shared.domain.limits import MIN_LEASE_TTL_S, REQUEST_LEASE_FACTOR


class Settings(BaseSettings):
    """Runtime settings for every function, the relay, the CLI and the local runtime."""

    model_config = SettingsConfigDict(env_prefix="CLB_DIRECT_", extra="ignore", frozen=True)

    # --- storage -------------------------------------------------------------------------------------
    store_url: str = Field(
        default="sqlite:///.clb-direct/state.db",
        description="KV store: sqlite:///path (embedded default) or redis://host:port/db (production).",
    )

    # --- Tencent Cloud -------------------------------------------------------------------------------
    region: str = Field(
        default="ap-guangzhou",
        description="Tencent Cloud region of the CLBs and functions (SCF sets TENCENTCLOUD_REGION; this wins)",
    )
    clb_endpoint: str | None = Field(
        default=None, description="host[:port] of the CLB API; None = clb.tencentcloudapi.com"
    )
    clb_protocol: Literal["https", "http"] = Field(
        default="https", description="scheme of the CLB API; http only for the local emulator"
    )
    scf_endpoint: str | None = Field(
        default=None, description="host of the SCF API for async Invoke; None = scf.tencentcloudapi.com"
    )
    scf_namespace: str = Field(
        default="default", description="SCF namespace the functions are deployed in (async Invoke targets)"
    )
    secret_id: SecretStr | None = Field(
        default=None, description="Tencent SecretId; normally unset, the execution role's TENCENTCLOUD_SECRETID is used"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Tencent SecretKey; normally unset, the execution role's TENCENTCLOUD_SECRETKEY is used",
    )
    session_token: SecretStr | None = Field(
        default=None, description="temporary-credential token; normally the execution role's TENCENTCLOUD_SESSIONTOKEN"
    )
    vpc_id: str | None = Field(default=None, description="VPC of the cluster: internal CLBs are created in it")
    cluster_id: str = Field(
        default="cls-local", description="TKE cluster id (cls-...): tags every CLB clb-direct creates (tke-clusterId)"
    )
    clb_write_rate_per_s: float = Field(default=20.0, gt=0, description="CLB write API limit (20/s)")
    clb_call_deadline_s: float = Field(
        default=60.0,
        gt=0,
        description="give up retrying one CLB/SCF call (throttling, instance lock) after this many seconds",
    )
    clb_task_timeout_s: float = Field(
        default=60.0, gt=0, description="longest wait for an async CLB task (DescribeTaskStatus)"
    )
    clb_request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="the SDK gives up waiting on one CLB/SCF API request (to connect, or for the next bytes of "
        "the answer) after this many seconds, and the call is retried; a fenced CLB write starts a request only "
        f"with {REQUEST_LEASE_FACTOR} times this left on its lease, so it must be under lease_ttl_s / "
        f"{REQUEST_LEASE_FACTOR}",
    )

    # --- Kubernetes ----------------------------------------------------------------------------------
    kubeconfig: str | None = Field(
        default=None, description="path of a kubeconfig; unset = kube_api_server + kube_token, else in-cluster config"
    )
    kube_context: str | None = Field(
        default=None, description="context of that kubeconfig (default: its current context)"
    )
    kube_request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="each Kubernetes API request gives up after this many seconds (per attempt: the client "
        "retries a failed connection)",
    )

    # --- behaviour -----------------------------------------------------------------------------------
    backend_quota: int = Field(default=200, ge=1, description="max backends per CLB (CLB default 200)")
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="how long a leaving Pod's target stays at weight 0 before it is deregistered"
    )
    default_weight: int = Field(
        default=10, ge=0, le=100, description="CLB weight of a bound Pod without the custom-weight annotation"
    )
    function_timeout_s: float = Field(
        default=60.0, gt=0, description="this function's SCF timeout; idempotency claims and leases expire after it"
    )
    event_log_ttl_s: float = Field(
        default=3 * 24 * 3600.0,
        gt=0,
        description="how long received events are kept for `clb-direct events` / `replay`",
    )
    lease_ttl_s: float = Field(
        default=30.0,
        gt=0,
        description="lease of the per-CLB writer and of the service step (one at a time); renewed while a write "
        f"waits for its CLB task, at least {MIN_LEASE_TTL_S:g} and over {REQUEST_LEASE_FACTOR} x "
        "clb_request_timeout_s",
    )
    schedule_visibility_s: float = Field(
        default=180.0,
        gt=0,
        description="a claimed schedule item not completed within this time is due again (crash, dead letter)",
    )

    # --- webhook / guardian --------------------------------------------------------------------------
    webhook_url: str | None = Field(default=None, description="https URL the API server calls")
    webhook_configuration_name: str = Field(
        default="clb-direct-readiness-gate",
        description="name of the MutatingWebhookConfiguration the guardian maintains",
    )
    webhook_failure_policy: Literal["Ignore", "Fail"] = Field(
        default="Ignore",
        description="Ignore: Pods are created without the gate while the webhook is down; Fail: Pod creation stops",
    )
    webhook_secret_namespace: str = Field(
        default="kube-system", description="namespace of the guardian's CA Secret (webhook_ca_mode own)"
    )
    webhook_secret_name: str = Field(
        default="clb-direct-webhook-tls", description="name of the guardian's CA Secret (pre-created by infra/k8s)"
    )
    cert_validity_days: int = Field(
        default=365, ge=1, description="validity of the guardian's CA and serving certificate"
    )
    cert_rotate_before_days: int = Field(
        default=30, ge=0, description="rotate that long before expiry (both CAs trusted during the overlap)"
    )

    # --- relay / router ------------------------------------------------------------------------------
    relay_hmac_key: SecretStr | None = Field(
        default=None, description="HMAC key of relay batches; the relay signs with it, the router accepts it"
    )
    relay_hmac_key_previous: SecretStr | None = Field(
        default=None,
        description="the key being rotated out: the router accepts it too (set it to the old key, move the "
        "router and then the relay to the new relay_hmac_key, then unset it)",
    )
    relay_max_skew_s: float = Field(
        default=300.0, gt=0, description="relay batches signed further from the router's clock than this are refused"
    )
    router_url: str | None = Field(
        default=None, description="the router's URL the relay posts batches to (https://<api gateway>/release/router)"
    )
    health_notify_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of CLB health notifications (X-Emulator-Timestamp/Nonce/Signature); unsigned, "
        "stale or replayed ones get 401",
    )
    health_notify_secret_previous: SecretStr | None = Field(
        default=None, description="the health notify secret being rotated out; accepted as well while set"
    )
    health_notify_max_skew_s: float = Field(
        default=300.0, gt=0, description="a signed health callback is accepted this long after it was signed"
    )
    health_alarm_token: SecretStr | None = Field(
        default=None, description="token the Cloud Monitor alarm callback URL carries as ?token= (it cannot sign)"
    )
    health_notify_allow_unsigned: bool = Field(
        default=False, description="accept unauthenticated health callbacks (only on a private route)"
    )
    invoker: Literal["scf", "local", "inline"] = Field(
        default="scf",
        description=(
            "scf = async SCF Invoke (production, the default); local = clb-direct serve's /_invoke; "
            "inline = in-process (the CLI, demo and tests set it explicitly)"
        ),
    )
    local_invoke_url: str | None = Field(default=None, description="the local runtime's /_invoke URL (invoker local)")

    # --- HTTP servers we run (relay, local runtime): one set of limits ---------------------------------
    http_max_body_bytes: int = Field(
        default=6 * 1024 * 1024, ge=1, description="request body cap (413 above it); SCF's 6 MB sync event limit"
    )
    http_read_timeout_s: float = Field(
        default=15.0, gt=0, description="per-request read deadline incl. TLS handshake and keep-alive idle (408)"
    )
    http_max_connections: int = Field(
        default=320,
        ge=1,
        description="open connections per server (503 beyond); above prestop_max_holds, so the preStop calls "
        "held while a wave of Pods drains leave room for admission reviews on the same server",
    )

    # --- termination protection (preStop drain wait) -------------------------------------------------
    prestop_mode: Literal["auto", "http", "sleep", "off"] = Field(
        default="auto",
        description="preStop hook added to gated Pods: http (wait on the prestop endpoint), sleep (a native "
        "sleep of prestop_drain_budget_s), off; auto = http when the endpoint URL is known, else sleep",
    )
    prestop_url: str | None = Field(
        default=None,
        description="https URL of the prestop function as the nodes reach it; default: webhook_url with its last "
        "path segment replaced by /prestop (both behind one API gateway)",
    )
    prestop_hmac_key: SecretStr | None = Field(
        default=None, description="key of the per-Pod hook tokens; default: a random key kept in the store"
    )
    prestop_drain_budget_s: float = Field(
        default=10.0, gt=0, description="expected deletion -> weight 0 -> drained time (sleep hook, grace warning)"
    )
    prestop_linger_s: float = Field(default=1.0, ge=0, description="connection drain after weight 0 is applied")
    prestop_max_hold_s: float = Field(default=300.0, gt=0, description="longest a prestop request is held")
    prestop_max_holds: int = Field(default=256, ge=1, description="prestop requests held at once per instance")
    prestop_poll_s: float = Field(default=0.25, gt=0, description="how often a held request re-reads the bindings")

    # --- logging -------------------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="structlog level of the JSON logs"
    )

    # --- deployment ----------------------------------------------------------------------------------
    function_name_template: str = Field(
        default="{function}",
        description=(
            "deployed SCF name of each function, `{function}` = its key (bind, flip, ...); multi-scf deploys "
            "`<name>-<stage>-<app>-<key>`, e.g. clb-direct-prod-clb-direct-{function}"
        ),
    )
    webhook_ca_mode: Literal["auto", "own", "public"] = Field(
        default="auto",
        description=(
            "trust of the admission endpoint: `public` leaves the webhook's caBundle empty (the API gateway "
            "serves a publicly trusted certificate), `own` writes the guardian's CA (it also serves the "
            "endpoint), `auto` = own for loopback/IP/in-cluster (.svc) hosts, public otherwise"
        ),
    )
    store_password: SecretStr | None = Field(
        default=None,
        description="Redis password (or an ssm:<name> reference), added to a redis:// store_url without one",
    )
    kube_api_server: str | None = Field(
        default=None,
        description="https URL of the API server; with kube_token, used instead of a kubeconfig",
    )
    kube_ca_data: str | None = Field(default=None, description="base64 PEM CA of the API server (with kube_api_server)")
    kube_token: SecretStr | None = Field(
        default=None, description="bearer token of the functions' ServiceAccount (or an ssm:<name> reference)"
    )
    service_ownership: Literal["annotation", "load-balancer-class"] = Field(
        default="annotation",
        description=(
            "which Services are ours: `load-balancer-class` = only spec.loadBalancerClass "
            "clb-direct.cloud.tencent.com/direct (TKE's service controller ignores them; use on TKE), "
            "`annotation` = also class-less Services with the direct-access annotation (clusters without "
            "TKE's controller)"
        ),
    )

    # --- flip ------------------------------------------------------------------------------------------
    flip_concurrency: int = Field(
        default=8, ge=1, le=64, description="gate writes (pods/status patches) one flip invocation runs at once"
    )

    @field_validator("function_name_template")
    @classmethod
    def _names_each_function(cls, value: str) -> str:
        if value.count("{function}") != 1 or value.replace("{function}", "").count("{") > 0:
            raise ValueError(f"function_name_template {value!r} must contain `{{function}}` exactly once")
        return value

    def store_connection_url(self) -> str:
        """store_url with store_password filled into a redis URL that carries none."""
        if self.store_password is None or not self.store_url.startswith(("redis://", "rediss://")):
            return self.store_url
        scheme, _, rest = self.store_url.partition("://")
        if "@" in rest.split("/", 1)[0]:
            return self.store_url
        return f"{scheme}://:{quote(self.store_password.get_secret_value(), safe='')}@{rest}"

    def function_name(self, function: str) -> str:
        """The deployed SCF name of one of our functions (the invoke target)."""
        return self.function_name_template.replace("{function}", function)

    @field_validator("store_url")
    @classmethod
    def _known_store_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "redis://", "rediss://", "memory://")):
            scheme = value.split("://", 1)[0] if "://" in value else "(none)"
            raise ValueError(f"store_url has an unknown scheme {scheme!r}; use sqlite:///path or redis://host:port/db")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_the_pauses_of_a_write(self) -> Settings:
        if self.lease_ttl_s < MIN_LEASE_TTL_S:
            longest = REQUEST_LEASE_FACTOR * self.clb_request_timeout_s
            also = (
                f" and above {longest:g} ({REQUEST_LEASE_FACTOR} x CLB_DIRECT_CLB_REQUEST_TIMEOUT_S)"
                if longest >= MIN_LEASE_TTL_S
                else ""
            )
            raise ValueError(
                f"CLB_DIRECT_LEASE_TTL_S={self.lease_ttl_s:g} is too short: a CLB writer renews its lease at the "
                f"attempts and task polls of a write (which waits up to CLB_DIRECT_CLB_TASK_TIMEOUT_S="
                f"{self.clb_task_timeout_s:g}s), and those pause up to {MIN_LEASE_TTL_S / 3:g}s, so a shorter lease "
                f"lapses mid-write and a second writer starts beside it; set it to at least {MIN_LEASE_TTL_S:g}{also}"
            )
        return self

    @model_validator(mode="after")
    def _requests_end_inside_the_lease(self) -> Settings:
        longest = REQUEST_LEASE_FACTOR * self.clb_request_timeout_s
        if self.lease_ttl_s <= longest:
            raise ValueError(
                f"CLB_DIRECT_CLB_REQUEST_TIMEOUT_S={self.clb_request_timeout_s:g} is too long for "
                f"CLB_DIRECT_LEASE_TTL_S={self.lease_ttl_s:g}: a fenced CLB write starts a request only with "
                f"{REQUEST_LEASE_FACTOR} request timeouts ({longest:g}s) left on its lease, so that a request that "
                "hangs is abandoned while the lease still holds; set CLB_DIRECT_CLB_REQUEST_TIMEOUT_S below "
                f"{self.lease_ttl_s / REQUEST_LEASE_FACTOR:g} or CLB_DIRECT_LEASE_TTL_S above {longest:g}"
            )
        return self

    @model_validator(mode="after")
    def _secret_pairs(self) -> Settings:
        if (self.secret_id is None) != (self.secret_key is None):
            raise ValueError("set both secret_id and secret_key, or neither (then the SCF role is used)")
        return self

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from an environment mapping (default `os.environ`) plus explicit overrides.

        SCF role credentials fill in secret_id/secret_key/session_token when no explicit ones are set.
        Invalid values raise `ConfigError` naming the variable.
        """
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        prefix = "CLB_DIRECT_"
        for key, value in env.items():
            if key.startswith(prefix):
                values[key[len(prefix) :].lower()] = value
        if "secret_id" not in values and env.get("TENCENTCLOUD_SECRETID"):
            values["secret_id"] = env["TENCENTCLOUD_SECRETID"]
            values["secret_key"] = env.get("TENCENTCLOUD_SECRETKEY")
            if env.get("TENCENTCLOUD_SESSIONTOKEN"):
                values["session_token"] = env["TENCENTCLOUD_SESSIONTOKEN"]
        if "region" not in values and env.get("TENCENTCLOUD_REGION"):
            values["region"] = env["TENCENTCLOUD_REGION"]
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(f"invalid clb-direct settings: {_one_line(exc)}") from exc
        except ValueError as exc:
            raise ConfigError(f"invalid clb-direct settings: {exc}") from exc

    def relay_hmac_keys(self) -> list[bytes]:
        """Keys a relay batch may be signed with, newest first (two while a rotation is under way)."""
        return _keys(self.relay_hmac_key, self.relay_hmac_key_previous)

    def health_notify_keys(self) -> list[bytes]:
        """Keys a health callback may be signed with, newest first; [] when callbacks are unsigned."""
        return _keys(self.health_notify_secret, self.health_notify_secret_previous)

    def require_credentials(self) -> tuple[str, str, str | None]:
        """Return (secret_id, secret_key, token) or raise a ConfigError saying how to provide them."""
        if self.secret_id is None or self.secret_key is None:
            raise ConfigError(
                "no Tencent Cloud credentials: bind an execution role to the function "
                "(TENCENTCLOUD_SECRETID/SECRETKEY/SESSIONTOKEN) or set CLB_DIRECT_SECRET_ID and "
                "CLB_DIRECT_SECRET_KEY"
            )
        token = self.session_token.get_secret_value() if self.session_token else None
        return self.secret_id.get_secret_value(), self.secret_key.get_secret_value(), token


def _keys(*secrets: SecretStr | None) -> list[bytes]:
    return [secret.get_secret_value().encode() for secret in secrets if secret and secret.get_secret_value()]


def _one_line(exc: ValidationError) -> str:
    """`CLB_DIRECT_<FIELD>: <what is wrong>` per error, on one line, without the rejected value."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in error.get("loc") or ())
        name = f"CLB_DIRECT_{field.upper()}" if field else "settings"
        parts.append(f"{name}: {str(error.get('msg', '')).replace('Value error, ', '')}")
    return "; ".join(parts)
