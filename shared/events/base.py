"""Base classes for wire models: `ForeignModel` for producers we do not control, `OwnModel` for ours.

Every module in `shared.events` derives from one of these two so the unknown-field policy is decided
in one place (CONVENTIONS habit 7).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ForeignModel(BaseModel):
    """Input from another system: field names as on the wire (aliases), unknown fields kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class OwnModel(BaseModel):
    """A format clb-direct defines: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
