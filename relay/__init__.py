"""The in-cluster relay: Kubernetes watches and audit webhook deliveries -> signed batches to the router.

Run by `clb-direct relay` (cli/cmd_relay.py) as a small Deployment (infra/k8s/base/relay.yaml). Modules:
`filters` (what cannot matter is dropped, with a selector cache of direct-access Services),
`pending` (per-object newest-event buffer: lossless, bounded by distinct objects), `batcher`
(size/time batches, HMAC signing, POST retried until delivered, refused batches halved), `server`
(audit webhook endpoint answering after delivery, /healthz), `watcher` (list+watch with resume, 410
relist, bookmarks, delivered-version tracking), `checkpoint` (the watch resume point across restarts),
`app` (wires them together; poison events are reported by index and skipped).
"""

from __future__ import annotations
