"""Moved to `tests.support.polling`; re-exported while branches in flight move their imports."""

from __future__ import annotations

from tests.support.polling import eventually

__all__ = ["eventually"]
