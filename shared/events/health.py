"""Health signals for the health function: the CLB emulator's notification and Cloud Monitor alarms.

`TargetHealthChanged` is the CLB emulator's callback (one target changed state on one listener).
`AlarmCallback` is Cloud Monitor's HTTP alarm callback; for the
metric `UnhealthRsCount` it is only a coarse "look at this CLB" signal, answered with
`AlarmAck` (`{"sessionId", "retCode": 0}`) or the monitor re-sends it up to 3 times.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shared.events.base import ForeignModel, OwnModel

HEALTHY_STATUSES = frozenset({"Alive", "Healthy", "healthy", "alive", "True", "true"})


class NotificationTarget(ForeignModel):
    ip: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class TargetHealthChanged(ForeignModel):
    type: Literal["TargetHealthChanged"]
    load_balancer_id: str = Field(alias="loadBalancerId", min_length=1)
    listener_id: str = Field(alias="listenerId", min_length=1)
    protocol: str = ""
    port: int | None = None
    target: NotificationTarget
    old_status: str | None = Field(default=None, alias="oldStatus")
    new_status: str = Field(alias="newStatus", min_length=1)
    timestamp: float | str | None = None
    sequence: int | None = None
    region: str | None = None

    @property
    def healthy(self) -> bool:
        return self.new_status in HEALTHY_STATUSES

    @classmethod
    def looks_like(cls, event: object) -> bool:
        return isinstance(event, dict) and event.get("type") == "TargetHealthChanged"


class AlarmObjInfo(ForeignModel):
    region: str | None = None
    namespace: str | None = None
    app_id: str | int | None = Field(default=None, alias="appId")
    dimensions: dict[str, Any] = Field(default_factory=dict)


class AlarmConditions(ForeignModel):
    metric_name: str = Field(default="", alias="metricName")
    current_value: str | float | None = Field(default=None, alias="currentValue")


class AlarmPolicyInfo(ForeignModel):
    policy_id: str | None = Field(default=None, alias="policyId")
    policy_name: str | None = Field(default=None, alias="policyName")
    conditions: AlarmConditions = Field(default_factory=AlarmConditions)


class AlarmCallback(ForeignModel):
    session_id: str = Field(alias="sessionId", min_length=1)
    alarm_status: str | int = Field(default="1", alias="alarmStatus")
    alarm_type: str = Field(default="metric", alias="alarmType")
    alarm_obj_info: AlarmObjInfo = Field(default_factory=AlarmObjInfo, alias="alarmObjInfo")
    alarm_policy_info: AlarmPolicyInfo = Field(default_factory=AlarmPolicyInfo, alias="alarmPolicyInfo")
    first_occur_time: str | None = Field(default=None, alias="firstOccurTime")
    recover_time: str | int | None = Field(default=None, alias="recoverTime")

    @classmethod
    def looks_like(cls, event: object) -> bool:
        return isinstance(event, dict) and "sessionId" in event and "alarmObjInfo" in event

    @property
    def firing(self) -> bool:
        return str(self.alarm_status) == "1"

    @property
    def metric_name(self) -> str:
        return self.alarm_policy_info.conditions.metric_name

    def candidate_vips(self) -> list[str]:
        """VIPs named by the dimensions: `vip`, or the first part of `objId` ("vip#port#proto")."""
        dims = self.alarm_obj_info.dimensions
        vips = [str(dims["vip"])] if dims.get("vip") else []
        obj_id = str(dims.get("objId", ""))
        if obj_id and obj_id.split("#", 1)[0] not in vips:
            vips.append(obj_id.split("#", 1)[0])
        return vips

    def candidate_lb_ids(self) -> list[str]:
        """CLB ids named directly by the dimensions (`loadBalancerId`, `lbId`, `objName` like lb-...)."""
        dims = self.alarm_obj_info.dimensions
        found = [str(dims[k]) for k in ("loadBalancerId", "lbId", "objName") if dims.get(k)]
        return [v for v in found if v.startswith("lb-")]


class AlarmAck(OwnModel):
    session_id: str = Field(alias="sessionId")
    ret_code: int = Field(default=0, alias="retCode")
