"""Events of the alerting (``hearth.alert.*``): an alert fired, an alert resolved."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shared.events.catalog import register_event


class AlertEvent(BaseModel):
    """One alert instance; ``fired`` and ``resolved`` of the same instance share its ``id``."""

    id: str = Field(description="The alert instance (a new one each time the same group fires again).")
    fingerprint: str = Field(description="Rule and labels: the same for every instance of one group.")
    alertname: str
    severity: str
    labels: dict[str, str]
    summary: str
    value: float = Field(description="The rule's value at the transition.")
    started_at: float = Field(description="Unix seconds the condition first held.")
    fired_at: float | None = None
    resolved_at: float | None = None


class AlertFired(AlertEvent):
    """``hearth.alert.fired.v1``: the rule's condition held for its ``for`` duration."""


class AlertResolved(AlertEvent):
    """``hearth.alert.resolved.v1``: a firing alert's condition no longer holds."""


register_event("hearth.alert.fired.v1", AlertFired, "An alert rule's condition held for its `for` duration.")
register_event("hearth.alert.resolved.v1", AlertResolved, "A firing alert's condition no longer holds.")
