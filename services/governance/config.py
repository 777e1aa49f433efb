"""The lifecycle policy file (``infra/governance/retention.yaml``): retention, tiering, rotation, schedules.

Loaded and validated with pydantic; every problem of a file is reported at once, naming the file
and the field (``LifecycleConfigError``). Durations are those of ``shared.durations`` plus ``y``
(calendar years: a contract kept 7 years from 29 February ends on 28 February) and ``forever``.
Extra files (``HEARTH_GOVERNANCE_RETENTION_EXTRA``, the tests' due-now tenants) may add tenant
overrides only.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.durations import ACCEPTED, parse_duration

DEFAULT_CLASS: Final = "default"
_YEARS: Final = re.compile(r"^\s*(\d+)\s*y\s*$")
_CLASS: Final = r"^[a-z][a-z0-9_-]{0,62}$"


class LifecycleConfigError(ValueError):
    """The policy file cannot be used; the message names the file and every problem."""


class Retention(BaseModel):
    """How long something is kept: whole calendar years, seconds, or forever (``None`` of both)."""

    model_config = ConfigDict(frozen=True)

    years: int = 0
    seconds: float = 0.0
    forever: bool = False

    def until(self, start: datetime) -> datetime | None:
        """When something made at ``start`` is due for purging; ``None`` when kept forever."""
        if self.forever:
            return None
        end = start
        if self.years:
            try:
                end = end.replace(year=end.year + self.years)
            except ValueError:  # 29 February in a year that has none
                end = end.replace(year=end.year + self.years, day=28)
        return end + timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        if self.forever:
            return "forever"
        return f"{self.years}y" if self.years else f"{self.seconds:g}s"


def _retention(value: Any) -> Any:
    if isinstance(value, Retention | dict):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a retention: write e.g. 7y, 90d, 12h or forever")
    if value.strip() == "forever":
        return Retention(forever=True)
    years = _YEARS.match(value)
    if years:
        return Retention(years=int(years.group(1)))
    seconds = parse_duration(value)
    if seconds < 0:
        raise ValueError("a retention cannot be negative")
    return Retention(seconds=seconds)


def _seconds(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value!r} has no unit: {ACCEPTED}")
    return parse_duration(value)


RetentionValue = Annotated[Retention, BeforeValidator(_retention)]
Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]
Interval = Annotated[float, BeforeValidator(_seconds), Field(ge=60, description="At least a minute.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionRules(_Strict):
    default: RetentionValue = Field(default_factory=lambda: Retention(forever=True))
    classes: dict[Annotated[str, Field(pattern=_CLASS)], RetentionValue] = Field(default_factory=dict)


class Tiering(_Strict):
    idle: Seconds = Field(30 * 86400.0, description="Files unread this long move to the cold tier.")


class Rotation(_Strict):
    max_age: Seconds = Field(90 * 86400.0, description="Rotate a tenant key whose newest version is older.")


class Schedules(_Strict):
    tiering: Interval = 86400.0
    retention: Interval = 86400.0
    key_rotation: Interval = 86400.0


class RetentionOverride(_Strict):
    default: RetentionValue | None = None
    classes: dict[Annotated[str, Field(pattern=_CLASS)], RetentionValue] = Field(default_factory=dict)


class TenantOverride(_Strict):
    retention: RetentionOverride = Field(default_factory=RetentionOverride)
    tiering: Tiering | None = None
    rotation: Rotation | None = None


class TenantPolicy(BaseModel):
    """What holds for one tenant: the file's rules with the tenant's override applied."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    retention: RetentionRules
    idle_s: float
    rotation_max_age_s: float

    def retention_for(self, doc_class: str | None) -> tuple[str, Retention]:
        """(the class whose rule applies, the rule) for a document of ``doc_class``."""
        if doc_class and doc_class in self.retention.classes:
            return doc_class, self.retention.classes[doc_class]
        return DEFAULT_CLASS, self.retention.default

    def retain_until(self, doc_class: str | None, created_at: datetime) -> tuple[str, datetime | None]:
        """(the class applied, when the document is due) for a document submitted at ``created_at``."""
        cls, rule = self.retention_for(doc_class)
        return cls, rule.until(created_at)

    def idle_since(self, now: datetime | None = None) -> datetime:
        """Files last read before this moment are idle."""
        return (now or datetime.now(UTC)) - timedelta(seconds=self.idle_s)


class LifecycleConfig(_Strict):
    """The whole file."""

    retention: RetentionRules = Field(default_factory=RetentionRules)
    tiering: Tiering = Field(default_factory=Tiering)
    rotation: Rotation = Field(default_factory=Rotation)
    schedules: Schedules = Field(default_factory=Schedules)
    tenants: dict[str, TenantOverride] = Field(default_factory=dict)

    def policy(self, tenant: str) -> TenantPolicy:
        """The rules of ``tenant``: the first override whose pattern matches it, merged over the file's."""
        override = next((o for p, o in self.tenants.items() if fnmatch.fnmatchcase(tenant, p)), None)
        rules, idle, max_age = self.retention, self.tiering.idle, self.rotation.max_age
        if override is not None:
            rules = RetentionRules(
                default=override.retention.default or rules.default,
                classes={**rules.classes, **override.retention.classes},
            )
            idle = override.tiering.idle if override.tiering else idle
            max_age = override.rotation.max_age if override.rotation else max_age
        return TenantPolicy(tenant=tenant, retention=rules, idle_s=idle, rotation_max_age_s=max_age)


def _reasons(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        out.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LifecycleConfigError(f"{path}: no such file (HEARTH_GOVERNANCE_RETENTION_FILE)") from None
    except yaml.YAMLError as exc:
        raise LifecycleConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise LifecycleConfigError(f"{path}: the top level must be a mapping")
    return raw


def parse_config(raw: dict[str, Any], *, source: str = "<config>") -> LifecycleConfig:
    """Validate one mapping; ``LifecycleConfigError`` with every problem, prefixed by ``source``."""
    try:
        return LifecycleConfig.model_validate(raw)
    except ValidationError as exc:
        raise LifecycleConfigError(f"{source}: " + "; ".join(_reasons(exc))) from None


def load_config(path: Path, extra: list[Path] | None = None) -> LifecycleConfig:
    """The policy file and the tenant overrides of ``extra`` files (which may hold nothing else)."""
    config = parse_config(_read(path), source=str(path))
    tenants = dict(config.tenants)
    for more in extra or []:
        raw = _read(more)
        unknown = sorted(set(raw) - {"tenants"})
        if unknown:
            raise LifecycleConfigError(
                f"{more}: an extra policy file holds only `tenants` (found {', '.join(unknown)})"
            )
        added = parse_config(raw, source=str(more)).tenants
        twice = sorted(set(added) & set(tenants))
        if twice:
            raise LifecycleConfigError(f"{more}: tenant patterns defined twice: {', '.join(twice)}")
        tenants.update(added)
    return config.model_copy(update={"tenants": tenants})
