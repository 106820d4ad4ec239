"""In-process CLB fake: a `responses` callback that answers the real SDK's requests from a `ClbModel`.

The sync `ClbClient` sends through `requests`, so registering `POST https://<endpoint>/` on a
`responses.RequestsMock` intercepts it. Unit and functional tests use `clb_fake()`; the
answers come from the same dispatcher (`api.py`) the HTTP server uses. Other URLs pass through, so tests
can use the cluster simulator alongside. A drop-response fault surfaces as `requests.ConnectionError`. A hung
call (`hang_s`) only runs late here: `responses` ignores the client's request timeout, so tests of it use the
HTTP server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
import responses

from emulators.clb.api import ClbApi, RawRequest
from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.signing import CredentialsInput

DEFAULT_ENDPOINT = "clb.tencentcloudapi.com"


class ClbResponsesTransport:
    """`credentials=None` skips signature checks (any key works); give credentials to enforce TC3."""

    def __init__(self, model: ClbModel, credentials: CredentialsInput | None = None) -> None:
        self.model = model
        self.api = ClbApi(model, credentials, signature_check=credentials is not None)

    def install(self, rsps: responses.RequestsMock, endpoint: str = DEFAULT_ENDPOINT) -> None:
        rsps.add_callback(responses.POST, f"https://{endpoint}/", callback=self._callback, content_type=None)

    def _callback(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes] | Exception:
        url = urlsplit(request.url or "")
        body = request.body or b""
        raw = RawRequest(
            method=request.method or "POST",
            path=url.path or "/",
            query=url.query,
            headers=dict(request.headers),
            body=body.encode("utf-8") if isinstance(body, str) else body,
        )
        reply = self.api.handle(raw)
        if reply.drop:
            return requests.ConnectionError("CLB emulator dropped the response after applying the change (fault)")
        return reply.status, reply.headers, reply.body


@contextmanager
def clb_fake(
    model: ClbModel | None = None,
    *,
    credentials: CredentialsInput | None = None,
    endpoint: str = DEFAULT_ENDPOINT,
    config: ClbEmulatorConfig | None = None,
    **model_kwargs: Any,
) -> Iterator[tuple[ClbModel, str]]:
    """Intercept the CLB endpoint for the `with` block; yields `(model, endpoint)`.

    Pass a `model` to share one, or `config` / `clock=` / `wall_clock=` to build a fresh one.
    """
    model = model or ClbModel(config, **model_kwargs)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        ClbResponsesTransport(model, credentials).install(rsps, endpoint)
        rsps.add_passthru(re.compile(rf"^(?!https://{re.escape(endpoint)}/)"))
        yield model, endpoint
