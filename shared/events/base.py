"""Base classes for wire models: `ForeignModel` for producers we do not control, `OwnModel` for ours.

Every module in `shared.events` derives from one of these two so the unknown-field policy is decided
in one place (wire models mirror the wire). `validate_wire` turns a pydantic `ValidationError` into `InvalidInput`
naming the field, for handlers that validate a trigger event.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.domain.errors import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)


class ForeignModel(BaseModel):
    """Input from another system: field names as on the wire (aliases), unknown fields kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class OwnModel(BaseModel):
    """A format clb-direct defines: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def validate_wire(model: type[ModelT], data: object, *, what: str) -> ModelT:
    """Validate `data` into `model`; `InvalidInput` names `what` and the first wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise InvalidInput(f"{what} field {where!r}: {first['msg']}") from exc
