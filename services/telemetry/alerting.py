"""Alerting around the rule engine: evaluation loop, persistence, events, webhooks, silences.

Every ``alert_interval_s`` the rules (``infra/alerts/*.yaml`` and any extra directories) are
evaluated against the stored series. Alerts are kept in ``telemetry_alerts`` so a restart fires
nothing twice and keeps pending alerts' ``for`` clocks; transitions not silenced are published
as ``hearth.alert.fired.v1`` / ``hearth.alert.resolved.v1`` and POSTed to the configured webhooks.

Rule files are re-read when they change. A file with a bad rule is refused with the reason (logged,
and listed in ``GET /v1/alerts`` as ``rule_errors``) and the rules already running stay in force:
a typo in a rule must not switch alerting off.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.telemetry.alerts import Alert, AlertEngine, Silence, Transition
from services.telemetry.rules import RuleError, load_rules
from services.telemetry.selectors import Matcher, SeriesSource
from services.telemetry.settings import TelemetrySettings
from shared.bus import Bus
from shared.errors import HearthError, InvalidInput, NotFound
from shared.events.alerts import AlertFired, AlertResolved
from shared.events.envelope import Envelope
from shared.telemetry import AlertList, AlertsRequest, AlertView, MatcherView, SilenceRequest, SilenceView

log = structlog.get_logger("telemetry.alerts")

SOURCE = "hearth/telemetry"
WEBHOOK_ATTEMPTS = 3
RESOLVED_LISTED_S = 24 * 3600.0
"""Resolved alerts stay in ``GET /v1/alerts`` this long."""


def alert_view(alert: Alert, silenced: bool = False) -> AlertView:
    return AlertView(
        id=alert.id,
        fingerprint=alert.fingerprint,
        alertname=alert.labels.get("alertname", alert.rule),
        severity=alert.severity,
        state=alert.state,
        labels=alert.labels,
        summary=alert.annotations.get("summary", ""),
        value=alert.value,
        started_at=alert.started_at,
        fired_at=alert.fired_at,
        resolved_at=alert.resolved_at,
        silenced=silenced,
    )


def _silence_view(silence: Silence, at: float) -> SilenceView:
    return SilenceView(
        id=silence.id,
        matchers=[MatcherView(label=m.label, op=m.op, value=m.value) for m in silence.matchers],
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        comment=silence.comment,
        created_by=silence.created_by,
        active=silence.active(at),
    )


class Alerting:
    def __init__(self, db: AsyncEngine, bus: Bus, source: SeriesSource, settings: TelemetrySettings) -> None:
        self.db = db
        self.bus = bus
        self.source = source
        self.settings = settings
        self.engine = AlertEngine([])
        self.rule_errors: list[str] = []
        self._mtimes: dict[Path, float] = {}
        self._silences: list[Silence] = []
        self._http = httpx.AsyncClient(timeout=settings.webhook_timeout_s)
        self._deliveries: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await self._http.aclose()

    # ---- rules --------------------------------------------------------------------------------

    def _rule_files(self) -> dict[Path, float]:
        files = {}
        for directory in self.settings.alert_directories:
            for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else ():
                files[path] = path.stat().st_mtime
        return files

    def reload_rules(self) -> bool:
        """Load the rules when the files changed; keeps the running rules when the new ones are bad."""
        files = self._rule_files()
        if files == self._mtimes:
            return False
        self._mtimes = files
        try:
            rules = load_rules(self.settings.alert_directories)
        except RuleError as exc:
            self.rule_errors = list(exc.problems)
            log.error("alert rules refused; the previous rules stay in force", problems=exc.problems)
            return False
        active = self.engine.active()
        self.engine = AlertEngine(rules)
        self.engine.restore(active)
        self.rule_errors = []
        log.info("alert rules loaded", rules=len(rules), files=len(files))
        return True

    # ---- state --------------------------------------------------------------------------------

    async def start(self) -> None:
        self.reload_rules()
        async with self.db.connect() as conn:
            rows = await conn.execute(text("SELECT data FROM telemetry_alerts WHERE state <> 'resolved'"))
            self.engine.restore(Alert.model_validate(row.data) for row in rows)
        await self._load_silences()

    async def _load_silences(self) -> None:
        async with self.db.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, matchers, starts_at, ends_at, comment, created_by FROM telemetry_silences")
            )
            self._silences = [
                Silence(
                    id=r.id,
                    matchers=tuple(Matcher(**m) for m in r.matchers),
                    starts_at=r.starts_at,
                    ends_at=r.ends_at,
                    comment=r.comment,
                    created_by=r.created_by,
                )
                for r in rows
            ]

    async def _persist(self, transitions: list[Transition], at: float) -> None:
        active = self.engine.active()
        keep = [a.id for a in active]
        rows = [*active, *(t.alert for t in transitions if t.kind == "resolved")]
        async with self.db.begin() as conn:
            if rows:
                await conn.execute(
                    text(
                        "INSERT INTO telemetry_alerts (id, fingerprint, rule, state, data, updated_at) "
                        "VALUES (:id, :fingerprint, :rule, :state, CAST(:data AS jsonb), :at) "
                        "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, data = EXCLUDED.data, "
                        "updated_at = EXCLUDED.updated_at"
                    ),
                    [
                        {
                            "id": a.id,
                            "fingerprint": a.fingerprint,
                            "rule": a.rule,
                            "state": a.state,
                            "data": a.model_dump_json(),
                            "at": at,
                        }
                        for a in rows
                    ],
                )
            # A pending alert whose condition cleared just disappears (it never fired).
            await conn.execute(
                text("DELETE FROM telemetry_alerts WHERE state = 'pending' AND NOT (id = ANY(:keep))"),
                {"keep": keep},
            )

    # ---- evaluation ---------------------------------------------------------------------------

    async def evaluate_once(self, at: float | None = None) -> list[Transition]:
        at = time.time() if at is None else at
        self.reload_rules()
        transitions = await self.engine.evaluate(self.source, at, self._silences)
        await self._persist(transitions, at)
        for transition in transitions:
            log.info(
                f"alert {transition.kind}",
                alert=transition.alert.labels.get("alertname"),
                labels=transition.alert.labels,
                value=transition.alert.value,
                silenced=transition.silenced,
            )
            if not transition.silenced:
                await self._announce(transition)
        return transitions

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.evaluate_once()
            except Exception:  # the store down: evaluate again next round, states unchanged
                log.exception("alert evaluation failed")
            await asyncio.sleep(max(0.0, self.settings.alert_interval_s - (time.monotonic() - started)))

    async def _announce(self, transition: Transition) -> None:
        alert = transition.alert
        view = alert_view(alert)
        event_type = f"hearth.alert.{transition.kind}.v1"
        event_class = AlertFired if transition.kind == "fired" else AlertResolved
        data = event_class(
            id=alert.id,
            fingerprint=alert.fingerprint,
            alertname=view.alertname,
            severity=view.severity,
            labels=alert.labels,
            summary=view.summary,
            value=alert.value,
            started_at=alert.started_at,
            fired_at=alert.fired_at,
            resolved_at=alert.resolved_at,
        )
        # One id per instance and transition: a repeated publish is dropped by the stream's dedupe.
        envelope = Envelope.new(event_type, data, source=SOURCE, subject=view.alertname)
        envelope = envelope.model_copy(update={"id": f"{alert.id}-{transition.kind}"})
        try:
            await self.bus.publish(envelope)
        except HearthError as exc:
            log.error("alert event not published", alert=view.alertname, error=exc.to_dict())
        for url in self.settings.webhook_urls:
            task = asyncio.create_task(self._deliver(url, envelope))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, url: str, envelope: Envelope) -> None:
        body = envelope.to_json()
        headers = {"content-type": "application/cloudevents+json"}
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                resp = await self._http.post(url, content=body, headers=headers)
                if resp.status_code < 300:
                    return
                reason = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            log.warning("webhook delivery failed", url=url, attempt=attempt, reason=reason, event=envelope.id)
            await asyncio.sleep(2**attempt)
        log.error("webhook gave up", url=url, event=envelope.id, attempts=WEBHOOK_ATTEMPTS)

    # ---- capabilities -------------------------------------------------------------------------

    async def list_alerts(self, request: AlertsRequest) -> AlertList:
        at = time.time()
        async with self.db.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT data FROM telemetry_alerts WHERE (state <> 'resolved' OR updated_at > :since) "
                    "AND (CAST(:state AS text) IS NULL OR state = :state) ORDER BY updated_at DESC LIMIT :limit"
                ),
                {"since": at - RESOLVED_LISTED_S, "state": request.state, "limit": request.limit},
            )
            alerts = [Alert.model_validate(r.data) for r in rows]
        return AlertList(
            alerts=[alert_view(a, self.engine.silenced(a, self._silences, at)) for a in alerts],
            silences=[_silence_view(s, at) for s in self._silences if s.ends_at > at],
            rules=len(self.engine.rules),
            rule_errors=self.rule_errors,
        )

    def active_views(self) -> list[AlertView]:
        at = time.time()
        return [alert_view(a, self.engine.silenced(a, self._silences, at)) for a in self.engine.active()]

    async def silence(self, request: SilenceRequest) -> SilenceView:
        at = time.time()
        try:
            silence = Silence(
                id=str(uuid.uuid4()),
                matchers=tuple(Matcher(m.label, m.op, m.value) for m in request.matchers),
                starts_at=at,
                ends_at=at + request.duration_s,
                comment=request.comment,
                created_by=request.created_by,
            )
        except ValueError as exc:
            raise InvalidInput(f"the silence is invalid: {exc}") from None
        matchers = silence.matchers
        async with self.db.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO telemetry_silences (id, matchers, starts_at, ends_at, comment, created_by) "
                    "VALUES (:id, CAST(:matchers AS jsonb), :starts_at, :ends_at, :comment, :created_by)"
                ),
                {
                    "id": silence.id,
                    "matchers": json.dumps([{"label": m.label, "op": m.op, "value": m.value} for m in matchers]),
                    "starts_at": silence.starts_at,
                    "ends_at": silence.ends_at,
                    "comment": silence.comment,
                    "created_by": silence.created_by,
                },
            )
        await self._load_silences()
        log.info("silence created", silence=silence.id, by=silence.created_by, until=silence.ends_at)
        return _silence_view(silence, at)

    async def unsilence(self, silence_id: str) -> SilenceView:
        at = time.time()
        known = next((s for s in self._silences if s.id == silence_id), None)
        if known is None or known.ends_at <= at:
            raise NotFound(f"no active silence {silence_id}")
        async with self.db.begin() as conn:
            await conn.execute(
                text("UPDATE telemetry_silences SET ends_at = :at WHERE id = :id"), {"at": at, "id": silence_id}
            )
        await self._load_silences()
        ended = known.model_copy(update={"ends_at": max(at, known.starts_at + 1e-3)})
        return _silence_view(ended, at)
