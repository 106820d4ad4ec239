"""A hardened stdlib HTTP(S) server shared by the product's relay and the local stand-ins (see `server`).

A package of its own, below `shared` in the import layers, because both sides need the same
limits and the emulators may import nothing of the product: it depends on the stdlib only, as a
third-party server library would.
"""

from __future__ import annotations

from limited_http.server import HttpLimits, LimitedHTTPServer, LimitedRequestHandler

__all__ = ["HttpLimits", "LimitedHTTPServer", "LimitedRequestHandler"]
