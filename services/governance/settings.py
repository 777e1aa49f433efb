"""Settings of the governance service (``HEARTH_GOVERNANCE_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import REPO_ROOT


class GovernanceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEARTH_GOVERNANCE_", env_file=".env", extra="ignore")

    retention_file: Path = Field(
        REPO_ROOT / "infra" / "governance" / "retention.yaml",
        description="The lifecycle policy file: retention per class, tiering, rotation, schedules.",
    )
    retention_extra: str = Field(
        "", description="More policy files holding tenant overrides only, `:`-separated (the tests' due-now tenants)."
    )
    batch: int = Field(200, ge=1, le=10_000, description="Documents (or blobs) one activity call handles.")

    def extra_files(self) -> list[Path]:
        return [Path(p) for p in self.retention_extra.split(":") if p.strip()]
