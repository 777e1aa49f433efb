"""Events of access control (``hearth.authz.*``): a policy, assignment or role changed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from shared.events.catalog import register_event

PolicyChange = Literal[
    "policy.added", "policy.removed", "assignment.added", "assignment.removed", "role.added", "role.removed"
]


class PolicyChanged(BaseModel):
    """``hearth.authz.policy_changed.v1``: the stored policy changed; every enforcer reloads it.

    The event says what changed for the record; an enforcer does not apply it but reloads the
    whole policy from the database, so a lost or reordered event cannot leave it inconsistent.
    """

    change: PolicyChange
    domain: str = Field(description="The tenant the change is about, or * for every tenant.")
    rules: list[list[str]] = Field(description="The Casbin rules added or removed, as [ptype, v0, v1, ...].")
    by: str | None = Field(default=None, description="Prefix of the key that made the change.")


register_event(
    "hearth.authz.policy_changed.v1",
    PolicyChanged,
    "A Casbin policy, role assignment or role changed; every gateway and service enforcer reloads within a second.",
)
