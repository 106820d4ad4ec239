"""The guardian planner is pure: what the Secret's certificates say and the live webhook configuration in, a
typed plan out (mint, write the configuration with which caBundle, write the Secret or only its bundle)."""

from __future__ import annotations

from typing import Any

from shared.domain.guardian_plan import (
    DAY_S,
    MINTED_CA_BUNDLE,
    ApplySecret,
    ApplyWebhookConfiguration,
    CertificateState,
    GuardianPlan,
    GuardianSnapshot,
    MintCertificates,
    NothingToDo,
    WriteCaBundle,
    decide_certificates,
    plan_guardian,
)
from shared.domain.webhook_config import desired_webhook_configuration

NOW = 1_700_000_000.0
URL = "https://127.0.0.1:8443/admission"
BUNDLE = "-----BEGIN CERTIFICATE-----\ncurrent CA\n-----END CERTIFICATE-----\n"
OLD_AND_CURRENT = BUNDLE + "-----BEGIN CERTIFICATE-----\nexpired CA\n-----END CERTIFICATE-----\n"


def valid(**changes: Any) -> CertificateState:
    values: dict[str, Any] = {
        "complete": True,
        "parsable": True,
        "tls_not_after": NOW + 300 * DAY_S,
        "ca_not_after": NOW + 300 * DAY_S,
        "signed_by_ca": True,
        "hosts": ["127.0.0.1"],
        "bundle": BUNDLE,
        "current_bundle": BUNDLE,
    }
    return CertificateState(**{**values, **changes})


def live(ca_bundle: str, **hook: Any) -> dict[str, Any]:
    config = desired_webhook_configuration(name="cfg", url=URL, ca_bundle_pem=ca_bundle, failure_policy="Ignore")
    config["webhooks"][0].update(hook)
    return config


def snapshot(certificates: CertificateState | None, live_config: dict[str, Any] | None, **kw: Any) -> GuardianSnapshot:
    values: dict[str, Any] = {
        "configuration_name": "cfg",
        "url": URL,
        "host": "127.0.0.1",
        "trust": "own" if certificates is not None else "public",
        "failure_policy": "Ignore",
        "live": live_config,
        "secret": "kube-system/tls",
        "certificates": certificates,
        "now": NOW,
        "rotate_before_days": 30,
    }
    return GuardianSnapshot(**{**values, **kw})


def kinds(plan: GuardianPlan) -> list[str]:
    return [action.kind for action in plan.actions]


def test_a_first_run_mints_a_ca_writes_the_configuration_with_its_bundle_then_the_secret() -> None:
    plan = plan_guardian(snapshot(CertificateState(), None))
    assert kinds(plan) == ["mint_certificates", "apply_webhook_configuration", "apply_secret"]
    mint, configure, secret = plan.actions
    assert isinstance(mint, MintCertificates) and mint.certificates == "create"
    assert mint.reason == "webhook Secret missing or incomplete"
    assert isinstance(configure, ApplyWebhookConfiguration)
    assert (configure.change, configure.drift, configure.ca_bundle) == ("create", ["missing"], MINTED_CA_BUNDLE)
    assert isinstance(secret, ApplySecret) and (secret.secret, secret.certificates) == ("kube-system/tls", "create")
    assert plan.outcome == {"certificates": "create", "reason": mint.reason, "webhook_drift": ["missing"]}


def test_valid_certificates_and_a_matching_configuration_need_nothing() -> None:
    plan = plan_guardian(snapshot(valid(), live(BUNDLE)))
    assert kinds(plan) == ["nothing_to_do"] and isinstance(plan.actions[0], NothingToDo)
    assert plan.outcome == {"certificates": "keep", "reason": "certificates valid", "webhook_drift": []}


def test_an_altered_configuration_is_repaired_with_the_current_bundle() -> None:
    plan = plan_guardian(snapshot(valid(), live(BUNDLE, failurePolicy="Fail")))
    (configure,) = plan.actions
    assert isinstance(configure, ApplyWebhookConfiguration)
    assert (configure.change, configure.drift, configure.ca_bundle) == ("repair", ["failurePolicy"], BUNDLE)
    assert "failurePolicy" in configure.reason


def test_rotation_before_expiry_mints_and_writes_the_bundle_before_the_secret() -> None:
    soon = valid(tls_not_after=NOW + 10 * DAY_S)
    plan = plan_guardian(snapshot(soon, live(BUNDLE)))
    assert kinds(plan) == ["mint_certificates", "apply_webhook_configuration", "apply_secret"]
    assert plan.outcome["certificates"] == "rotate" and plan.outcome["webhook_drift"] == ["clientConfig.caBundle"]
    assert plan.outcome["reason"].startswith("serving certificate expires 2023-11-24T")
    # an expiring CA rotates too, even with a fresh serving certificate
    expiring_ca = valid(ca_not_after=NOW + DAY_S)
    assert decide_certificates(expiring_ca, host="127.0.0.1", now=NOW, rotate_before_days=30).action == "rotate"


def test_a_serving_certificate_for_another_host_is_reissued_from_the_current_ca() -> None:
    moved = snapshot(valid(), live(BUNDLE), host="webhook.example.com", url="https://webhook.example.com/admission")
    plan = plan_guardian(moved)
    mint, configure, secret = plan.actions
    assert isinstance(mint, MintCertificates) and mint.certificates == "reissue"
    assert mint.reason == "serving certificate not valid for host webhook.example.com"
    assert isinstance(configure, ApplyWebhookConfiguration) and configure.ca_bundle == BUNDLE  # the CA stays
    assert isinstance(secret, ApplySecret) and secret.certificates == "reissue"
    foreign = decide_certificates(valid(signed_by_ca=False), host="127.0.0.1", now=NOW, rotate_before_days=30)
    assert (foreign.action, foreign.reason) == ("reissue", "serving certificate not signed by the current CA")


def test_an_expired_ca_leaves_the_bundle_and_only_the_bundle_is_written() -> None:
    pruned = valid(bundle=OLD_AND_CURRENT, current_bundle=BUNDLE)
    plan = plan_guardian(snapshot(pruned, live(OLD_AND_CURRENT)))
    assert kinds(plan) == ["apply_webhook_configuration", "write_ca_bundle"]
    configure, write = plan.actions
    assert isinstance(configure, ApplyWebhookConfiguration) and configure.ca_bundle == BUNDLE
    assert isinstance(write, WriteCaBundle) and write.bundle == BUNDLE
    assert plan.outcome["certificates"] == "update-bundle"


def test_an_unparsable_secret_is_recreated() -> None:
    broken = CertificateState(complete=True, bundle=BUNDLE)
    decision = decide_certificates(broken, host="127.0.0.1", now=NOW, rotate_before_days=30)
    assert (decision.action, decision.reason) == ("create", "webhook Secret holds unparsable certificates or keys")


def test_behind_a_public_certificate_the_bundle_stays_empty_and_no_secret_is_planned() -> None:
    plan = plan_guardian(snapshot(None, live(BUNDLE), host="gw.example.com", url="https://gw.example.com/admission"))
    (configure,) = plan.actions
    assert isinstance(configure, ApplyWebhookConfiguration)
    assert configure.ca_bundle == "" and configure.drift == ["clientConfig.url", "clientConfig.caBundle"]
    assert plan.outcome["certificates"] == "public" and "publicly trusted" in plan.outcome["reason"]
    quiet = plan_guardian(snapshot(None, live(""), url=URL))
    assert kinds(quiet) == ["nothing_to_do"]


def test_the_plan_and_the_snapshot_dump_no_key_material() -> None:
    secret = {"ca.key": "-----BEGIN PRIVATE KEY-----\nsecret\n", "tls.key": "-----BEGIN PRIVATE KEY-----\nx\n"}
    snap = snapshot(CertificateState(), None, secret_data=secret)
    assert snap.secret_data == secret
    assert "PRIVATE KEY" not in snap.model_dump_json() and "PRIVATE KEY" not in repr(snap)
    assert "PRIVATE KEY" not in plan_guardian(snap).model_dump_json()
