"""SCF timer trigger event, received by health and reconcile."""

from __future__ import annotations

from pydantic import Field

from shared.events.base import ForeignModel


class TimerEvent(ForeignModel):
    type: str = Field(alias="Type")
    trigger_name: str = Field(default="", alias="TriggerName")
    time: str = Field(default="", alias="Time")
    message: str = Field(default="", alias="Message")

    @classmethod
    def looks_like(cls, event: object) -> bool:
        return isinstance(event, dict) and event.get("Type") == "Timer"
