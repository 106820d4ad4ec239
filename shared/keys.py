"""Every key clb-direct writes into the store's generic roles, in one place: KV entries, pending sets, leases.

The structured roles (idempotency records, binding records, selectors, events, buckets, the schedule)
have their own tables or Redis namespaces inside each engine; everything else shares three flat
namespaces, and a key here must never collide with another. Steps, services and CLI readers build
keys only through these functions, so the layout can be read (and changed) in one file. Pure: no I/O.

KV (`kv_get` / `kv_set` / `kv_set_if_absent`):
  gate:<pod uid>                           recorded gate state ("True"/"False"/"ungated"), read by the health poll
  limit:<pod uid>                          use-limit message that keeps a Pod unbound
  service-lb:<ns>/<name>                   what the service step created for a Service (JSON)
  checkpoint:<ns>/<name>                   reconcile's hash of what it last compared for a Service
  batch:<batch id>                         relay batch already routed (replay protection)
  rv:<Kind>:<ns>/<name>#<uid>              live resourceVersion a step read from the API server
  timeline:<pod uid>:<stage>@<listener>    when a Pod first reached a rollout stage
  selector-index:warm:<ns>                 the namespace's selector index was read from the API lately
  admission-notice:<ns>:<workload>:<why>   a Warning Event about a workload was emitted lately
  health-nonce:<nonce>                     a signed health notification's nonce was seen
  prestop:hmac-key                         the generated key of per-Pod preStop tokens
Pending sets (`pending_add` / `pending_take` / `pending_members`):
  lb:<lb id>                               work coalesced for a CLB while its writer holds the lease
  timeline-pod:<ns>/<name>                 a Pod's stage marks
  timeline-svc:<ns>/<name>                 Pods with marks, per Service
Leases (`acquire_lease` / `renew_lease` / ...):
  clb:<lb id>                              the one writer of a CLB's targets (bind/unbind batches)
  service:<ns>/<name>                      the one service step writing a Service's CLB and listeners
  guardian:<webhook configuration name>    the one guardian run
"""

from __future__ import annotations

from shared.domain.models import ObjectKey

# ---------------------------------------------------------------------------------------------- KV


# Recorded gate states that need no more flips: a True gate (a fence) and a Pod without our gate at all.
GATE_SETTLED = frozenset({"True", "ungated"})


def gate_key(pod_uid: str) -> str:
    """KV key of a Pod's recorded gate state ("True"/"False"/"ungated"); the health poller reads it."""
    return f"gate:{pod_uid}"


def limit_key(pod_uid: str) -> str:
    """KV key of the use-limit message that keeps a Pod unbound (shown in its gate condition)."""
    return f"limit:{pod_uid}"


def service_record_key(service: ObjectKey | str) -> str:
    """KV key of what the service step created for a Service: {"lb_id", "adopted", "uid"}."""
    return f"service-lb:{service}"


def checkpoint_key(service: ObjectKey | str) -> str:
    """KV key of reconcile's checkpoint hash for a Service (a pass that finds it unchanged skips the CLB)."""
    return f"checkpoint:{service}"


def batch_marker_key(batch_id: str) -> str:
    """KV key claimed once per relay batch id, so a replayed batch is refused."""
    return f"batch:{batch_id}"


def version_key(kind: str, namespace: str, name: str, uid: str) -> str:
    """KV key of the live resourceVersion last read for one object (per UID: a re-created object starts over)."""
    return f"rv:{kind}:{namespace}/{name}#{uid}"


def timeline_mark_key(pod_uid: str, stage: str, listener: str) -> str:
    """KV key of when a Pod first reached `stage` on `listener` (first observation wins)."""
    return f"timeline:{pod_uid}:{stage}@{listener}"


def warm_key(namespace: str) -> str:
    """KV key present while the namespace's selector index was recently re-read from the API server."""
    return f"selector-index:warm:{namespace}"


def admission_notice_key(namespace: str, workload: str, reason: str) -> str:
    """KV key present while a Warning Event about `workload` for `reason` was emitted recently."""
    return f"admission-notice:{namespace}:{workload}:{reason}"


def nonce_key(nonce: str) -> str:
    """KV key of a signed health notification's nonce (accepted once within the skew window)."""
    return f"health-nonce:{nonce}"


PRESTOP_HMAC_KEY = "prestop:hmac-key"
"""KV key of the generated key of per-Pod preStop tokens (when no key is configured)."""

# ---------------------------------------------------------------------------------------------- pending sets


def pending_queue(lb_id: str) -> str:
    """Pending set of work coalesced for a CLB while its writer holds the lease."""
    return f"lb:{lb_id}"


def quota_wait_queue(lb_id: str) -> str:
    """Pending set of the work the backend quota refused on a CLB, queued again once a deregistration
    frees room (so a rollout at the quota waits for the next deregistration, not the reconcile timer)."""
    return f"quota-wait:{lb_id}"


def timeline_pod_set(pod: str) -> str:
    """Pending set of a Pod's stage marks ("ns/name")."""
    return f"timeline-pod:{pod}"


def timeline_service_set(service: str) -> str:
    """Pending set of the Pods with stage marks of a Service ("ns/name")."""
    return f"timeline-svc:{service}"


# ---------------------------------------------------------------------------------------------- leases


def lease_name(lb_id: str) -> str:
    """Lease of the one writer of a CLB."""
    return f"clb:{lb_id}"


def service_lease_name(service: ObjectKey | str) -> str:
    """Lease of the one service step writing a Service's CLB and listeners ("ns/name")."""
    return f"service:{service}"


def guardian_lease_name(configuration_name: str) -> str:
    """Lease of the one guardian run for a MutatingWebhookConfiguration."""
    return f"guardian:{configuration_name}"
