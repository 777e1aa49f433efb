"""The alert state machine: rule results in, ``fired`` / ``resolved`` transitions out.

Per rule and result group an alert goes inactive → pending (the condition holds, ``for`` has not
yet elapsed) → firing → resolved (the condition no longer holds, or the group vanished). A pending
alert whose condition stops holding just disappears. A resolved alert is finished: if the same
group fires again that is a new alert, with a new ``id`` but the same ``fingerprint``.

Silences do not change states; they only mark a transition ``silenced`` so that no event or
webhook is sent for it. An alert that fired while silenced is announced (a ``fired`` transition)
at the first evaluation after its silences end, and its resolution is announced only if its
firing was.

Persistence is the caller's: after each ``evaluate`` store ``active()`` and the alerts of the
``resolved`` transitions, and drop stored pending alerts that are no longer in ``active()``; on
start, ``restore()`` the stored pending and firing alerts so a restart fires nothing again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.telemetry.rules import Group, Rule
from services.telemetry.selectors import Matcher, SeriesSource
from shared.logging import get_logger

__all__ = ["Alert", "AlertEngine", "AlertState", "Silence", "Transition", "alert_id", "fingerprint"]

log = get_logger(__name__)

AlertState = Literal["pending", "firing", "resolved"]


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """sha256 (hex) of the rule name and the sorted labels: the same for every alert of one group."""
    payload = json.dumps([rule, sorted(labels.items())], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def alert_id(fingerprint: str, started_at: float) -> str:
    """One alert instance: a group that resolves and fires again gets a new id."""
    return hashlib.sha256(f"{fingerprint}@{started_at!r}".encode()).hexdigest()[:32]


class Alert(BaseModel):
    """One alert of one rule and group, as listed by the API and stored as JSON.

    ``labels`` are the rule's labels, the group's labels, ``alertname`` (the rule name) and
    ``severity``. Times are unix seconds: ``started_at`` when the condition began to hold,
    ``fired_at`` when it became firing, ``resolved_at`` when it stopped. ``notified`` tells whether
    its ``fired`` transition went out unsilenced.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    fingerprint: str
    rule: str
    state: AlertState
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    value: float
    started_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    evaluated_at: float
    notified: bool = False

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


@dataclass(frozen=True)
class Transition:
    """An alert became ``fired`` or ``resolved``; when ``silenced`` no event or webhook is sent."""

    kind: Literal["fired", "resolved"]
    alert: Alert
    silenced: bool = False


class Silence(BaseModel):
    """Mutes the alerts whose labels satisfy every matcher, from ``starts_at`` until ``ends_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    matchers: tuple[Matcher, ...] = Field(min_length=1)
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def active(self, at: float) -> bool:
        return self.starts_at <= at < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


class AlertEngine:
    """Evaluates rules against a ``SeriesSource`` and keeps the state of their alerts."""

    def __init__(self, rules: Sequence[Rule], clock: Callable[[], float] = time.time) -> None:
        self._rules = tuple(rules)
        self._clock = clock
        self._active: dict[str, Alert] = {}
        self._last: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        """The last evaluation error of each rule that is failing now (rule name → message)."""

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def active(self) -> list[Alert]:
        """The pending and firing alerts, oldest first."""
        return sorted(self._active.values(), key=lambda a: (a.started_at, a.fingerprint))

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Take over stored alerts; resolved ones are history and ignored."""
        for alert in alerts:
            if alert.state == "resolved":
                continue
            known = self._active.get(alert.fingerprint)
            if known is None or alert.started_at > known.started_at:
                self._active[alert.fingerprint] = alert

    @staticmethod
    def silenced(alert: Alert, silences: Iterable[Silence], at: float) -> bool:
        """Whether a silence active at ``at`` matches the alert's labels."""
        return any(s.active(at) and s.matches(alert.labels) for s in silences)

    def _due(self, rule: Rule, at: float) -> bool:
        last = self._last.get(rule.name)
        return rule.evaluate_every is None or last is None or at - last >= rule.evaluate_every

    async def evaluate(
        self, source: SeriesSource, at: float | None = None, silences: Sequence[Silence] = ()
    ) -> list[Transition]:
        """Evaluate the rules that are due at ``at`` (default: the clock) and advance their alerts.

        A rule whose query fails keeps its alerts as they are (a store outage must not resolve
        everything) and has its error in ``errors``. Alerts of rules that no longer exist end.
        """
        now = self._clock() if at is None else at
        transitions: list[Transition] = []
        for rule in self._rules:
            if not self._due(rule, now):
                continue
            try:
                groups = await rule.expr.evaluate(source, now)
            except Exception as exc:  # one broken query must not stop the other rules
                self.errors[rule.name] = f"{type(exc).__name__}: {exc}"
                log.warning("alert rule evaluation failed", rule=rule.name, error=self.errors[rule.name])
                continue
            self.errors.pop(rule.name, None)
            self._last[rule.name] = now
            transitions += self._advance(rule, groups, now, silences)
        names = {rule.name for rule in self._rules}
        for alert in [a for a in self.active() if a.rule not in names]:
            transitions += self._end(alert, now, silences)
        return transitions

    def _advance(
        self, rule: Rule, groups: dict[Group, float], at: float, silences: Sequence[Silence]
    ) -> list[Transition]:
        transitions: list[Transition] = []
        seen: set[str] = set()
        for group, value in groups.items():
            labels = {**rule.labels, **{k: v for k, v in group if v}, "alertname": rule.name, "severity": rule.severity}
            fp = fingerprint(rule.name, labels)
            seen.add(fp)
            annotations = {"summary": rule.render_summary(labels, value)} if rule.summary else {}
            alert = self._active.get(fp)
            if alert is None:
                alert = Alert(
                    id=alert_id(fp, at),
                    fingerprint=fp,
                    rule=rule.name,
                    state="pending",
                    labels=labels,
                    annotations=annotations,
                    value=value,
                    started_at=at,
                    evaluated_at=at,
                )
            else:
                alert = alert.model_copy(update={"value": value, "annotations": annotations, "evaluated_at": at})
            if alert.state == "pending" and at - alert.started_at >= rule.for_:
                alert = alert.model_copy(update={"state": "firing", "fired_at": at})
                muted = self.silenced(alert, silences, at)
                alert = alert.model_copy(update={"notified": not muted})
                transitions.append(Transition("fired", alert, silenced=muted))
            elif alert.state == "firing" and not alert.notified and not self.silenced(alert, silences, at):
                # fired while silenced and the silence is over: announce it now
                alert = alert.model_copy(update={"notified": True})
                transitions.append(Transition("fired", alert))
            self._active[fp] = alert
        for alert in [a for a in self.active() if a.rule == rule.name and a.fingerprint not in seen]:
            transitions += self._end(alert, at, silences)
        return transitions

    def _end(self, alert: Alert, at: float, silences: Sequence[Silence]) -> list[Transition]:
        del self._active[alert.fingerprint]
        if alert.state != "firing":
            return []  # pending that never fired: it simply goes away
        resolved = alert.model_copy(update={"state": "resolved", "resolved_at": at, "evaluated_at": at})
        muted = not alert.notified or self.silenced(resolved, silences, at)
        return [Transition("resolved", resolved, silenced=muted)]
