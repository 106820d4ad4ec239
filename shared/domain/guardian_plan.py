"""The guardian step as data: what it observes, the typed plan it returns, and `plan_guardian`.

`shared/steps/guardian.py` observes a `GuardianSnapshot` (the live MutatingWebhookConfiguration and, where
the guardian's own CA serves the endpoint, what its Secret's certificates say: `CertificateState`, read by
`shared.certs.read_certificates`, no key material), calls `plan_guardian` (pure: no I/O, no clock, no
randomness) and hands the `GuardianPlan` to one applier; a dry run returns the plan and writes nothing.
Every action carries its reason. A CA or serving certificate is minted by the applier, never here: the
plan names the bundle of a CA it mints `MINTED_CA_BUNDLE`, and the applier puts the minted bundle in its
place. The webhook's caBundle is written before the Secret, so during a rotation's overlap the API
server already trusts both the old and the new CA whichever certificate the endpoint serves.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.webhook_config import desired_webhook_configuration, webhook_drift

MINTED_CA_BUNDLE = "<the bundle of the CA minted by this plan>"  # until the applier has minted it
DAY_S = 86400.0

TrustMode = Literal["own", "public"]
CertificateAction = Literal["keep", "create", "rotate", "reissue", "update-bundle"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def ca_mode(mode: Literal["auto", "own", "public"], host: str) -> TrustMode:
    """`auto`: our CA for loopback / IP / in-cluster (.svc) hosts, which only we can serve; else public."""
    if mode != "auto":
        return mode
    try:
        ipaddress.ip_address(host)
        return "own"
    except ValueError:
        pass
    if host == "localhost" or host.endswith((".svc", ".svc.cluster.local", ".localhost")):
        return "own"
    return "public"


class CertificateState(_Frozen):
    """What the guardian's Secret holds, as facts: which entries parse, expiries, issuer, hosts, bundles."""

    complete: bool = Field(default=False, description="CA and serving certificate and keys are all present")
    parsable: bool = Field(default=False, description="every certificate and key parses")
    tls_not_after: float | None = Field(default=None, description="expiry of the serving certificate (epoch s)")
    ca_not_after: float | None = Field(default=None, description="expiry of the current CA (epoch s)")
    signed_by_ca: bool = Field(default=False, description="the serving certificate is issued by the current CA")
    hosts: list[str] = Field(default_factory=list, description="the serving certificate's IP and DNS names")
    bundle: str = Field(default="", description="the Secret's CA bundle (PEM, public certificates only)")
    current_bundle: str = Field(default="", description="the current CA plus the unexpired CAs of `bundle`")


class CertificateDecision(_Frozen):
    action: CertificateAction
    reason: str


def decide_certificates(
    state: CertificateState, *, host: str, now: float, rotate_before_days: int
) -> CertificateDecision:
    """What the Secret's certificates need: a new CA (create, rotate), a new serving certificate, a new bundle."""
    if not state.complete:
        return CertificateDecision(action="create", reason="webhook Secret missing or incomplete")
    if not state.parsable or state.tls_not_after is None or state.ca_not_after is None:
        return CertificateDecision(action="create", reason="webhook Secret holds unparsable certificates or keys")
    margin = rotate_before_days * DAY_S
    if now >= state.tls_not_after - margin or now >= state.ca_not_after - margin:
        expires = dt.datetime.fromtimestamp(state.tls_not_after, tz=dt.timezone.utc).isoformat()
        return CertificateDecision(action="rotate", reason=f"serving certificate expires {expires}")
    if not state.signed_by_ca or host not in state.hosts:
        why = "not signed by the current CA" if not state.signed_by_ca else f"not valid for host {host}"
        return CertificateDecision(action="reissue", reason=f"serving certificate {why}")
    if state.current_bundle != state.bundle:
        return CertificateDecision(
            action="update-bundle", reason="CA bundle missing the current CA or holding expired CAs"
        )
    return CertificateDecision(action="keep", reason="certificates valid")


class GuardianSnapshot(_Frozen):
    """What one guardian run observed, read once before planning."""

    configuration_name: str
    url: str
    host: str
    trust: TrustMode
    failure_policy: Literal["Ignore", "Fail"]
    live: dict[str, Any] | None = Field(description="the live MutatingWebhookConfiguration; None when missing")
    secret: str = Field(description="namespace/name of the guardian's CA Secret")
    secret_data: dict[str, str] | None = Field(
        default=None, exclude=True, repr=False, description="the Secret itself, for minting only (never dumped)"
    )
    certificates: CertificateState | None = Field(default=None, description="the Secret's state (trust own only)")
    now: float
    rotate_before_days: int


class MintCertificates(_Frozen):
    """A new CA and serving certificate (create, rotate) or a serving certificate from the current CA."""

    kind: Literal["mint_certificates"] = "mint_certificates"
    certificates: Literal["create", "rotate", "reissue"]
    reason: str


class ApplyWebhookConfiguration(_Frozen):
    """Create or replace the MutatingWebhookConfiguration with this caBundle ("" = the API server's roots)."""

    kind: Literal["apply_webhook_configuration"] = "apply_webhook_configuration"
    change: Literal["create", "repair"]
    name: str
    url: str
    failure_policy: Literal["Ignore", "Fail"]
    ca_bundle: str
    drift: list[str]
    reason: str

    def configuration(self, ca_bundle_pem: str) -> dict[str, Any]:
        return desired_webhook_configuration(
            name=self.name, url=self.url, ca_bundle_pem=ca_bundle_pem, failure_policy=self.failure_policy
        )


class ApplySecret(_Frozen):
    """Write the Secret with the certificates and keys minted above."""

    kind: Literal["apply_secret"] = "apply_secret"
    secret: str
    certificates: Literal["create", "rotate", "reissue"]
    reason: str


class WriteCaBundle(_Frozen):
    """Write only the Secret's CA bundle: the current CA plus the earlier CAs not expired yet."""

    kind: Literal["write_ca_bundle"] = "write_ca_bundle"
    secret: str
    bundle: str
    reason: str


class NothingToDo(_Frozen):
    kind: Literal["nothing_to_do"] = "nothing_to_do"
    reason: str


GuardianAction = Annotated[
    MintCertificates | ApplyWebhookConfiguration | ApplySecret | WriteCaBundle | NothingToDo,
    Field(discriminator="kind"),
]


class GuardianPlan(BaseModel):
    """Everything one guardian run will do, in order, plus the summary the step reports."""

    model_config = ConfigDict(extra="forbid")

    configuration: str
    actions: list[GuardianAction] = Field(default_factory=list)
    outcome: dict[str, Any] = Field(default_factory=dict)

    def add(self, action: GuardianAction) -> None:
        self.actions.append(action)


def plan_guardian(snap: GuardianSnapshot) -> GuardianPlan:
    """Certificates first (what the caBundle must carry), then the configuration, then the Secret."""
    plan = GuardianPlan(configuration=snap.configuration_name)
    if snap.trust == "public" or snap.certificates is None:
        drift = _plan_configuration(plan, snap, ca_bundle="")
        reason = f"{snap.host} serves a publicly trusted certificate: caBundle left empty (system roots)"
        plan.outcome = {"webhook_drift": drift, "certificates": "public", "reason": reason}
    else:
        _plan_own_ca(plan, snap, snap.certificates)
    if not plan.actions:
        plan.add(NothingToDo(reason="the webhook configuration matches and the certificates are valid"))
    return plan


def _plan_own_ca(plan: GuardianPlan, snap: GuardianSnapshot, certificates: CertificateState) -> None:
    decision = decide_certificates(
        certificates, host=snap.host, now=snap.now, rotate_before_days=snap.rotate_before_days
    )
    action, why = decision.action, decision.reason
    if action in ("create", "rotate", "reissue"):
        plan.add(MintCertificates(certificates=action, reason=why))
    new_ca = action in ("create", "rotate")
    drift = _plan_configuration(plan, snap, ca_bundle=MINTED_CA_BUNDLE if new_ca else certificates.current_bundle)
    if action in ("create", "rotate", "reissue"):
        plan.add(ApplySecret(secret=snap.secret, certificates=action, reason=why))
    elif action == "update-bundle":
        plan.add(WriteCaBundle(secret=snap.secret, bundle=certificates.current_bundle, reason=why))
    plan.outcome = {"certificates": action, "reason": why, "webhook_drift": drift}


def _plan_configuration(plan: GuardianPlan, snap: GuardianSnapshot, *, ca_bundle: str) -> list[str]:
    """Replace the configuration where anything the API server acts on was deleted or altered."""
    action = ApplyWebhookConfiguration(
        change="create" if snap.live is None else "repair",
        name=snap.configuration_name,
        url=snap.url,
        failure_policy=snap.failure_policy,
        ca_bundle=ca_bundle,
        drift=[],
        reason="",
    )
    drift = webhook_drift(snap.live, action.configuration(ca_bundle))
    if drift:
        why = "it is missing" if snap.live is None else f"{', '.join(drift)} differ from what admission needs"
        plan.add(action.model_copy(update={"drift": drift, "reason": why}))
    return drift
