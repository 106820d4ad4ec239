"""`clb-direct invoke` runs a handler with an event file against the configured (env) endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main
from shared.adapters.store_factory import open_store
from shared.domain.models import SelectorEntry
from shared.keys import warm_key
from tests.conftest import EVENTS_DIR
from tests.functional.steps.conftest import handler


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/state.db"
    for name in ("CLB_DIRECT_STORE_URL", "CLB_DIRECT_INVOKER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLB_DIRECT_STORE_URL", url)
    monkeypatch.setenv("CLB_DIRECT_INVOKER", "inline")
    handler("admission").shell.use(None)
    yield url
    handler("admission").shell.use(None)


def test_invoke_admission_prints_the_response(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(store_url)
    store.put_selector(SelectorEntry(namespace="default", service="web", selector={"app": "web"}))
    store.kv_set(warm_key("default"), "1", ttl_s=None, now=0.0)
    store.close()
    code = main(["invoke", "admission", "--event", str(EVENTS_DIR / "admission_pod_create.json")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["statusCode"] == 200
    assert json.loads(out["body"])["response"]["patchType"] == "JSONPatch"


def test_invoke_reports_bad_input_with_exit_code(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["invoke", "admission", "--event", str(EVENTS_DIR / "admission_malformed.json")])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["statusCode"] == 400


def test_invoke_rejects_unknown_function_and_missing_file(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "nope", "--event", "x.json"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert main(["invoke", "bind", "--event", "/nonexistent/event.json"]) == 2
