"""Two overlapping guardian runs: one mints the CA, and the served certificate always verifies against
the caBundle (issue: each run minted its own CA, the bundle and the Secret then disagreed)."""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from shared.certs import CA_BUNDLE, TLS_CERT, split_bundle
from tests.functional.steps.conftest import Env


def _verifies(secret: dict[str, str], bundle_pem: str) -> bool:
    served = x509.load_pem_x509_certificate(secret[TLS_CERT].encode())
    for ca in split_bundle(bundle_pem):
        try:
            served.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def test_an_overlapping_run_does_not_mint_a_second_ca(env: Env) -> None:
    name = env.deps.settings.webhook_configuration_name
    cluster = env.cluster
    original_apply = cluster.apply_mutating_webhook_configuration
    overlapped: list[dict[str, Any]] = []
    started: list[bool] = []

    def apply_then_overlap(body: dict[str, Any]) -> None:
        original_apply(body)
        if not started:  # a second run (admission cold start kick, next timer) starts meanwhile
            started.append(True)
            overlapped.append(env.invoke("guardian", "guardian_timer"))

    cluster.apply_mutating_webhook_configuration = apply_then_overlap  # type: ignore[method-assign]
    first = env.invoke("guardian", "guardian_timer")
    assert first["ok"] and first["result"]["certificates"] == "create"
    assert overlapped and overlapped[0]["ok"]
    assert overlapped[0]["result"].get("skipped"), overlapped[0]
    secret = cluster.secrets[("kube-system", "clb-direct-webhook-tls")]
    bundle = base64.b64decode(cluster.webhooks[name]["webhooks"][0]["clientConfig"]["caBundle"]).decode()
    assert len(split_bundle(bundle)) == 1 and bundle == secret[CA_BUNDLE]
    assert _verifies(secret, bundle)
    # the lease is released at the end: the next run proceeds and has nothing to do
    cluster.apply_mutating_webhook_configuration = original_apply  # type: ignore[method-assign]
    quiet = env.invoke("guardian", "guardian_timer")
    assert quiet["result"]["certificates"] == "keep" and quiet["actions"] == []


def test_a_run_whose_lease_was_taken_over_writes_nothing_more(env: Env) -> None:
    """A run that stalls past its lease (the next run took over) must not write its stale Secret."""
    from shared.steps.guardian import guardian_lease

    cluster = env.cluster
    original_apply = cluster.apply_mutating_webhook_configuration
    taken: list[bool] = []

    def apply_then_stall(body: dict[str, Any]) -> None:
        original_apply(body)
        if not taken:
            env.clock.advance(env.deps.settings.function_timeout_s * 2 + 1)  # the lease expired
            assert env.deps.store.acquire_lease(
                guardian_lease(env.deps.settings), "another-run", ttl_s=600, now=env.clock.now()
            )
            taken.append(True)

    cluster.apply_mutating_webhook_configuration = apply_then_stall  # type: ignore[method-assign]
    result = env.invoke("guardian", "guardian_timer")
    assert ("kube-system", "clb-direct-webhook-tls") not in cluster.secrets, result
