"""Response shapes of the CLB 2018-03-17 API, built from emulator state with every field the SDK defines.

The real API returns every documented field (null where it has no value), so these builders list them all;
the contract tests (`tests/contract/`) check each key against the SDK's own response models. Called by the
action handlers in `actions_instances.py` and `actions_targets.py`.
"""

from __future__ import annotations

import time
from typing import Any

from emulators.clb.state import L7_PROTOCOLS, ListenerState, LoadBalancerState, TargetState
from emulators.clb.views import HEALTH_ALIVE

HEALTH_CHECK_FIELDS = (
    "HealthSwitch",
    "TimeOut",
    "IntervalTime",
    "HealthNum",
    "UnHealthNum",
    "HttpCode",
    "HttpCheckPath",
    "HttpCheckDomain",
    "HttpCheckMethod",
    "CheckPort",
    "ContextType",
    "SendContext",
    "RecvContext",
    "CheckType",
    "HttpVersion",
    "SourceIpType",
    "ExtendedCode",
)

# The API reports times in Beijing time (UTC+8) as "YYYY-MM-DD HH:MM:SS".
_BEIJING_OFFSET_S = 8 * 3600


def format_time(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall + _BEIJING_OFFSET_S))


def load_balancer(lb: LoadBalancerState) -> dict[str, Any]:
    created = format_time(lb.created_at)
    return {
        "LoadBalancerId": lb.lb_id,
        "LoadBalancerName": lb.name,
        "LoadBalancerType": lb.lb_type,
        "Forward": 1,
        "Domain": "",
        "LoadBalancerVips": [lb.vip],
        "Status": lb.status,
        "CreateTime": created,
        "StatusTime": created,
        "ProjectId": lb.project_id,
        "VpcId": lb.vpc_id,
        "OpenBgp": 0,
        "Snat": False,
        "Isolation": 0,
        "Log": "",
        "SubnetId": lb.subnet_id,
        "Tags": [{"TagKey": key, "TagValue": value} for key, value in lb.tags],
        "SecureGroups": [],
        "TargetRegionInfo": None,
        "AnycastZone": "",
        "AddressIPVersion": lb.address_ip_version,
        "NumericalVpcId": 0,
        "VipIsp": "",
        "MasterZone": None,
        "BackupZoneSet": None,
        "IsolatedTime": None,
        "ExpireTime": None,
        "ChargeType": "POSTPAID_BY_HOUR",
        "NetworkAttributes": None,
        "PrepaidAttributes": None,
        "LogSetId": "",
        "LogTopicId": "",
        "AddressIPv6": None,
        "ExtraInfo": None,
        "IsDDos": False,
        "ConfigId": "",
        "LoadBalancerPassToTarget": False,
        "ExclusiveCluster": None,
        "IPv6Mode": None,
        "SnatPro": False,
        "SnatIps": [],
        "SlaType": "shared",
        "IsBlock": False,
        "IsBlockTime": "",
        "LocalBgp": False,
        "ClusterTag": None,
        "MixIpTarget": False,
        "Zones": None,
        "NfvInfo": "n",
        "HealthLogSetId": "",
        "HealthLogTopicId": "",
        "ClusterIds": None,
        "AttributeFlags": [],
        "LoadBalancerDomain": "",
        "Egress": "",
        "Exclusive": 0,
        "TargetCount": lb.target_count(),
        "AssociateEndpoint": None,
        "AvailableZoneAffinityInfo": None,
    }


def health_check(listener: ListenerState) -> dict[str, Any]:
    return {key: listener.health_check.get(key) for key in HEALTH_CHECK_FIELDS}


def listener(item: ListenerState) -> dict[str, Any]:
    return {
        "ListenerId": item.listener_id,
        "Protocol": item.protocol,
        "Port": item.port,
        "Certificate": None,
        "HealthCheck": health_check(item),
        "Scheduler": item.scheduler,
        "SessionExpireTime": item.session_expire_time,
        "SniSwitch": 0,
        "Rules": [] if item.protocol in L7_PROTOCOLS else None,
        "ListenerName": item.name,
        "CreateTime": format_time(item.created_at),
        "EndPort": 0,
        "TargetType": "NODE",
        "TargetGroup": None,
        "SessionType": "NORMAL",
        "KeepaliveEnable": 0,
        "Toa": False,
        "DeregisterTargetRst": item.deregister_target_rst,
        "AttrFlags": [],
        "TargetGroupList": None,
        "MaxConn": -1,
        "MaxCps": -1,
        "IdleConnectTimeout": 900,
        "RescheduleInterval": 0,
        "DataCompressMode": "transparent",
        "RescheduleStartTime": 0,
    }


def backend(target: TargetState) -> dict[str, Any]:
    return {
        "Type": "ENI",
        "InstanceId": "",
        "Port": target.port,
        "Weight": target.weight,
        "PublicIpAddresses": [],
        "PrivateIpAddresses": [target.ip],
        "InstanceName": "",
        "RegisteredTime": format_time(target.registered_at),
        "EniId": "",
        "Tag": target.tag,
        "Zone": "",
    }


def listener_backend(item: ListenerState, targets: list[TargetState]) -> dict[str, Any]:
    is_l7 = item.protocol in L7_PROTOCOLS
    return {
        "ListenerId": item.listener_id,
        "Protocol": item.protocol,
        "Port": item.port,
        # L7 listeners nest targets under rules; this emulator models no L7 rules, so they stay empty.
        "Rules": [] if is_l7 else None,
        "Targets": None if is_l7 else [backend(t) for t in targets],
        "EndPort": 0,
    }


def target_health(target: TargetState) -> dict[str, Any]:
    return {
        "IP": target.ip,
        "Port": target.port,
        "HealthStatus": target.health == HEALTH_ALIVE,
        "TargetId": "",
        "HealthStatusDetail": target.health,
        # The API still sends the deprecated misspelt twin of HealthStatusDetail.
        "HealthStatusDetial": target.health,
        "TargetGroupId": None,
        "Weight": target.weight,
    }


def listener_health(item: ListenerState) -> dict[str, Any]:
    # L4 listeners still nest targets in one generic rule with no location.
    rules = (
        []
        if item.protocol in L7_PROTOCOLS
        else [
            {
                "LocationId": None,
                "Domain": None,
                "Url": None,
                "RuleId": None,
                "Targets": [target_health(t) for t in item.targets.values()],
            }
        ]
    )
    return {
        "ListenerId": item.listener_id,
        "ListenerName": item.name,
        "Protocol": item.protocol,
        "Port": item.port,
        "Rules": rules,
    }
