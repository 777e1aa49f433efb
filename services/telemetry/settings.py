"""Telemetry settings (``HEARTH_TELEMETRY_*``): scrape cadence, retention, alert rules, webhooks."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import REPO_ROOT


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEARTH_TELEMETRY_", env_file=".env", extra="ignore")

    scrape_interval_s: float = Field(10.0, gt=0, description="How often every metrics endpoint is scraped.")
    scrape_timeout_s: float = Field(5.0, gt=0, description="Longest one scrape may take.")
    raw_retention_s: float = Field(6 * 3600.0, gt=0, description="Samples kept at full resolution this long.")
    rollup_step_s: float = Field(60.0, gt=0, description="Resolution of samples older than raw_retention_s.")
    retention_s: float = Field(14 * 86400.0, gt=0, description="Samples are deleted after this long.")
    span_retention_s: float = Field(24 * 3600.0, gt=0, description="Spans are deleted after this long.")
    maintenance_interval_s: float = Field(300.0, gt=0, description="How often downsampling and retention run.")
    alert_rules: Path = Field(REPO_ROOT / "infra" / "alerts", description="Directory of alert rule YAML files.")
    alert_extra_rules: str = Field(
        "", description="More directories of alert rules, separated by ':' (e.g. the tests' rules)."
    )
    alert_interval_s: float = Field(10.0, gt=0, description="How often alert rules are evaluated.")
    webhooks: str = Field("", description="Comma-separated URLs fired and resolved alerts are POSTed to.")
    webhook_timeout_s: float = Field(5.0, gt=0, description="Longest one webhook delivery may take.")

    @property
    def alert_directories(self) -> list[Path]:
        return [self.alert_rules, *(Path(p) for p in self.alert_extra_rules.split(":") if p)]

    @property
    def webhook_urls(self) -> list[str]:
        return [u.strip() for u in self.webhooks.split(",") if u.strip()]
