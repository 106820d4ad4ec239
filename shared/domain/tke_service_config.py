"""TkeServiceConfig (`cloud.tencent.com/v1alpha1`) parsing: the CRD object → per-listener settings.

The service step reads the object named by the `service.cloud.tencent.com/tke-service-config` annotation
through the Cluster port and calls `parse_tke_service_config`; `listeners.desired_listeners` then applies
the matching `l4Listeners[]` entry (by protocol + port) to each listener. The CRD never creates or removes
listeners; it only configures those the Service's ports define.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.domain.errors import ConfigError
from shared.domain.models import HealthCheck, ListenerSpec


class _CrdModel(BaseModel):
    # The CRD is user-written and the real controller adds fields over time: tolerate unknown keys.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class TkeHealthCheck(_CrdModel):
    # Official docs spell it `enable`; an older design doc shows `enabled`: accept both.
    enable: bool = Field(default=True, validation_alias=AliasChoices("enable", "enabled"))
    interval_time: int | None = Field(default=None, alias="intervalTime")
    timeout: int | None = None
    health_num: int | None = Field(default=None, alias="healthNum")
    un_health_num: int | None = Field(default=None, alias="unHealthNum")
    check_type: Literal["TCP", "HTTP", "CUSTOM", "PING"] | None = Field(default=None, alias="checkType")
    check_port: int | None = Field(default=None, alias="checkPort")
    http_code: int | None = Field(default=None, alias="httpCode")
    http_check_path: str | None = Field(default=None, alias="httpCheckPath")
    http_check_domain: str | None = Field(default=None, alias="httpCheckDomain")
    http_check_method: Literal["HEAD", "GET"] | None = Field(default=None, alias="httpCheckMethod")
    http_version: Literal["HTTP/1.0", "HTTP/1.1"] | None = Field(default=None, alias="httpVersion")

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> TkeHealthCheck:
        interval = self.interval_time if self.interval_time is not None else 5
        timeout = self.timeout if self.timeout is not None else 2
        if timeout >= interval:
            raise ValueError(f"healthCheck.timeout ({timeout}) must be less than intervalTime ({interval})")
        return self

    def to_health_check(self) -> HealthCheck:
        values: dict[str, Any] = {"enabled": self.enable}
        optional = {
            "interval_s": self.interval_time,
            "timeout_s": self.timeout,
            "healthy_threshold": self.health_num,
            "unhealthy_threshold": self.un_health_num,
            "check_type": self.check_type,
            "check_port": self.check_port,
            "http_codes": self.http_code,
            "http_path": self.http_check_path,
            "http_domain": self.http_check_domain,
            "http_method": self.http_check_method,
            "http_version": self.http_version,
        }
        values.update({k: v for k, v in optional.items() if v is not None})
        return HealthCheck(**values)


class TkeSession(_CrdModel):
    enable: bool = Field(default=False, validation_alias=AliasChoices("enable", "enabled"))
    session_expire_time: int = Field(default=30, ge=30, le=3600, alias="sessionExpireTime")


class TkeL4Listener(_CrdModel):
    protocol: Literal["TCP", "UDP"]
    port: int = Field(ge=1, le=65535)
    deregister_target_rst: bool | None = Field(default=None, alias="deregisterTargetRst")
    session: TkeSession | None = None
    health_check: TkeHealthCheck | None = Field(default=None, alias="healthCheck")
    scheduler: Literal["WRR", "LEAST_CONN", "IP_HASH"] | None = None

    def apply_to(self, spec: ListenerSpec) -> ListenerSpec:
        """The listener spec with every attribute this entry sets; unset attributes keep `spec`'s value."""
        updates: dict[str, Any] = {}
        if self.health_check is not None:
            updates["health_check"] = self.health_check.to_health_check()
        if self.session is not None:
            updates["session_expire_s"] = self.session.session_expire_time if self.session.enable else 0
        if self.scheduler is not None:
            updates["scheduler"] = self.scheduler
        if self.deregister_target_rst is not None:
            updates["deregister_target_rst"] = self.deregister_target_rst
        return spec.model_copy(update=updates)


class _LoadBalancerSection(_CrdModel):
    l4_listeners: list[TkeL4Listener] = Field(default_factory=list, alias="l4Listeners")


class _Spec(_CrdModel):
    load_balancer: _LoadBalancerSection = Field(default_factory=_LoadBalancerSection, alias="loadBalancer")


class TkeServiceConfig(_CrdModel):
    """The parsed CRD: one entry per (protocol, port)."""

    name: str
    listeners: dict[tuple[str, int], TkeL4Listener] = Field(default_factory=dict)

    def for_listener(self, protocol: str, port: int) -> TkeL4Listener | None:
        return self.listeners.get((protocol.upper(), port))


def parse_tke_service_config(obj: Mapping[str, Any], *, name: str) -> TkeServiceConfig:
    """Validate a TkeServiceConfig object (the whole CR or just its `spec`) into per-listener settings.

    Raises `ConfigError` naming the object and the offending field so the user knows what to edit.
    """
    spec_obj = obj.get("spec", obj) if isinstance(obj, Mapping) else obj
    try:
        spec = _Spec.model_validate(spec_obj)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in exc.errors())
        raise ConfigError(
            f"TkeServiceConfig {name!r} is invalid ({problems}); fix spec.loadBalancer.l4Listeners and the "
            "Service will be re-synced"
        ) from exc
    listeners: dict[tuple[str, int], TkeL4Listener] = {}
    for entry in spec.load_balancer.l4_listeners:
        key = (entry.protocol, entry.port)
        if key in listeners:
            raise ConfigError(
                f"TkeServiceConfig {name!r} lists {entry.protocol}:{entry.port} twice in l4Listeners; keep one entry"
            )
        listeners[key] = entry
    return TkeServiceConfig(name=name, listeners=listeners)
