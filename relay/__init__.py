"""The in-cluster relay: Kubernetes watches and audit webhook deliveries -> signed batches to the router.

Run by `clb-direct relay` (cli/cmd_relay.py) as a small Deployment (infra/k8s/base/relay.yaml). Modules:
`filters` (what cannot matter is dropped, with a selector cache of direct-access Services),
`batcher` (bounded buffer, size/time batches, HMAC signing, POST with retries), `server` (audit
webhook endpoint and /healthz), `watcher` (list+watch with resume, 410 relist, bookmarks), `app`
(wires them together).
"""

from __future__ import annotations
