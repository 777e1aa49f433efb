"""The alert state machine (``services/telemetry/alerts.py``) on an in-memory series source."""

from __future__ import annotations

import pytest

from services.telemetry.alerts import Alert, AlertEngine, Silence, Transition, alert_id, fingerprint
from services.telemetry.rules import Rule
from services.telemetry.selectors import Matcher
from tests.unit.fake_series import FakeSource

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

T0 = 1_000_000.0
TEMP = "hearth_gpu_temperature_celsius"


def gpu_rule(**fields: object) -> Rule:
    body: dict[str, object] = {
        "name": "gpu-hot",
        "expr": f"last({TEMP}[1m]) by (gpu) > 85",
        "for": "1m",
        "severity": "warning",
        "labels": {"team": "platform"},
        "summary": "GPU {{ gpu }} at {{ value }} °C",
    }
    body.update(fields)
    return Rule.model_validate(body)


def temp(source: FakeSource, gpu: str, at: float, value: float) -> None:
    source.add(TEMP, {"gpu": gpu}, (at, value))


def kinds(transitions: list[Transition]) -> list[tuple[str, str, bool]]:
    return [(t.kind, t.alert.labels.get("gpu", ""), t.silenced) for t in transitions]


LABELS_0 = {"team": "platform", "gpu": "0", "alertname": "gpu-hot", "severity": "warning"}


async def test_pending_then_firing_after_for() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule()])
    temp(source, "0", T0, 90)
    temp(source, "1", T0, 40)
    assert await engine.evaluate(source, T0) == []
    [pending] = engine.active()
    assert pending.state == "pending"
    assert pending.labels == LABELS_0
    assert pending.fingerprint == fingerprint("gpu-hot", LABELS_0)
    assert (pending.started_at, pending.fired_at, pending.value) == (T0, None, 90)
    assert pending.annotations == {"summary": "GPU 0 at 90 °C"}

    temp(source, "0", T0 + 30, 91.5)
    assert await engine.evaluate(source, T0 + 30) == []  # `for` not yet elapsed
    assert engine.active()[0].value == 91.5

    temp(source, "0", T0 + 60, 92)
    [fired] = await engine.evaluate(source, T0 + 60)
    assert (fired.kind, fired.silenced) == ("fired", False)
    alert = fired.alert
    assert (alert.state, alert.started_at, alert.fired_at, alert.resolved_at) == ("firing", T0, T0 + 60, None)
    assert alert.id == pending.id == alert_id(alert.fingerprint, T0)
    assert alert.annotations == {"summary": "GPU 0 at 92 °C"}
    assert alert.severity == "warning"
    assert engine.active() == [alert]

    temp(source, "0", T0 + 90, 93)
    assert await engine.evaluate(source, T0 + 90) == []  # still firing: nothing new to say
    assert engine.active()[0].value == 93


async def test_for_zero_fires_at_once() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    temp(source, "0", T0, 90)
    assert kinds(await engine.evaluate(source, T0)) == [("fired", "0", False)]


async def test_a_pending_alert_that_clears_goes_away_silently() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule()])
    temp(source, "0", T0, 90)
    await engine.evaluate(source, T0)
    temp(source, "0", T0 + 30, 80)
    assert await engine.evaluate(source, T0 + 30) == []
    assert engine.active() == []
    # pending again restarts the `for` clock
    temp(source, "0", T0 + 45, 90)
    await engine.evaluate(source, T0 + 45)
    temp(source, "0", T0 + 90, 90)
    assert await engine.evaluate(source, T0 + 90) == []
    temp(source, "0", T0 + 105, 90)
    assert kinds(await engine.evaluate(source, T0 + 105)) == [("fired", "0", False)]


async def test_resolves_when_the_condition_stops_holding() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    temp(source, "0", T0, 90)
    temp(source, "1", T0, 95)
    assert kinds(await engine.evaluate(source, T0)) == [("fired", "0", False), ("fired", "1", False)]
    temp(source, "0", T0 + 15, 70)
    temp(source, "1", T0 + 15, 96)
    [resolved] = await engine.evaluate(source, T0 + 15)
    assert (resolved.kind, resolved.silenced) == ("resolved", False)
    assert resolved.alert.labels["gpu"] == "0"
    assert (resolved.alert.state, resolved.alert.resolved_at, resolved.alert.fired_at) == ("resolved", T0 + 15, T0)
    assert resolved.alert.value == 90  # the last value that held
    assert [a.labels["gpu"] for a in engine.active()] == ["1"]


async def test_resolves_when_the_group_vanishes() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    temp(source, "0", T0, 90)
    await engine.evaluate(source, T0)
    source.drop(TEMP, {"gpu": "0"})
    assert kinds(await engine.evaluate(source, T0 + 15)) == [("resolved", "0", False)]
    assert engine.active() == []


async def test_firing_again_after_resolving_is_a_new_alert() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    temp(source, "0", T0, 90)
    [first] = await engine.evaluate(source, T0)
    temp(source, "0", T0 + 15, 70)
    await engine.evaluate(source, T0 + 15)
    temp(source, "0", T0 + 30, 90)
    [again] = await engine.evaluate(source, T0 + 30)
    assert again.kind == "fired"
    assert again.alert.fingerprint == first.alert.fingerprint
    assert again.alert.id != first.alert.id
    assert (again.alert.started_at, again.alert.fired_at) == (T0 + 30, T0 + 30)


async def test_ungrouped_and_absent_rules() -> None:
    absent = Rule.model_validate(
        {
            "name": "telemetry-host-metrics-absent",
            "expr": "absent(hearth_host_cpu_percent[2m])",
            "severity": "critical",
            "summary": "no host metrics ({{ value }})",
        }
    )
    source, engine = FakeSource(), AlertEngine([absent])
    [fired] = await engine.evaluate(source, T0)
    assert fired.alert.labels == {"alertname": "telemetry-host-metrics-absent", "severity": "critical"}
    assert fired.alert.annotations == {"summary": "no host metrics (1)"}
    source.add("hearth_host_cpu_percent", {}, (T0 + 10, 5.0))
    assert [t.kind for t in await engine.evaluate(source, T0 + 15)] == ["resolved"]


async def test_empty_label_values_are_left_out() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    source.add(TEMP, {}, (T0, 90))  # a series without the `by` label groups under gpu=""
    [fired] = await engine.evaluate(source, T0)
    assert "gpu" not in fired.alert.labels
    assert fired.alert.annotations == {"summary": "GPU  at 90 °C"}


# ---- silences -----------------------------------------------------------------------------------


def silence(*matchers: Matcher, starts: float = T0 - 1, ends: float = T0 + 100) -> Silence:
    return Silence(id="s1", matchers=matchers, starts_at=starts, ends_at=ends, comment="maintenance", created_by="ops")


async def test_a_silenced_alert_changes_state_but_is_marked() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    mute = [silence(Matcher("alertname", "=", "gpu-hot"), Matcher("gpu", "=~", "0|2"))]
    temp(source, "0", T0, 90)
    temp(source, "1", T0, 90)
    assert kinds(await engine.evaluate(source, T0, mute)) == [("fired", "0", True), ("fired", "1", False)]
    assert {a.labels["gpu"]: (a.state, a.notified) for a in engine.active()} == {
        "0": ("firing", False),
        "1": ("firing", True),
    }
    # while the silence lasts nothing more is said about gpu 0
    temp(source, "0", T0 + 50, 90)
    temp(source, "1", T0 + 50, 90)
    assert await engine.evaluate(source, T0 + 50, mute) == []
    # once it has ended, the still-firing alert is announced
    temp(source, "0", T0 + 100, 90)
    temp(source, "1", T0 + 100, 90)
    [late] = await engine.evaluate(source, T0 + 100, mute)
    assert (late.kind, late.silenced, late.alert.labels["gpu"], late.alert.notified) == ("fired", False, "0", True)
    assert late.alert.fired_at == T0  # it has been firing since then
    assert await engine.evaluate(source, T0 + 115, mute) == []


async def test_resolving_while_silenced_or_never_announced_is_silenced() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    temp(source, "0", T0, 90)
    temp(source, "1", T0, 90)
    mute_0 = [silence(Matcher("gpu", "=", "0"))]
    assert kinds(await engine.evaluate(source, T0, mute_0)) == [("fired", "0", True), ("fired", "1", False)]
    # gpu 0 fired silenced and resolves (the silence may even be gone): never announced, so silent
    # gpu 1 was announced, and resolves while a silence covers it: silent too
    temp(source, "0", T0 + 15, 70)
    temp(source, "1", T0 + 15, 70)
    mute_1 = [silence(Matcher("gpu", "=", "1"))]
    assert sorted(kinds(await engine.evaluate(source, T0 + 15, mute_1))) == [
        ("resolved", "0", True),
        ("resolved", "1", True),
    ]


@pytest.mark.parametrize(
    ("starts", "ends", "at", "muted"),
    [
        (T0, T0 + 10, T0, True),
        (T0, T0 + 10, T0 + 9.9, True),
        (T0, T0 + 10, T0 + 10, False),
        (T0 + 1, T0 + 10, T0, False),
    ],
)
def test_silence_window(starts: float, ends: float, at: float, muted: bool) -> None:
    alert = Alert(
        id="a",
        fingerprint="f",
        rule="r",
        state="firing",
        labels={"alertname": "r"},
        value=1,
        started_at=0,
        evaluated_at=0,
    )
    s = silence(Matcher("alertname", "=", "r"), starts=starts, ends=ends)
    assert AlertEngine([]).silenced(alert, [s], at) is muted
    assert (
        AlertEngine.silenced(alert, [silence(Matcher("alertname", "=", "other"), starts=starts, ends=ends)], at)
        is False
    )


def test_silence_validation_and_json() -> None:
    s = silence(Matcher("alertname", "=~", "gpu-.*"))
    assert Silence.model_validate_json(s.model_dump_json()) == s
    with pytest.raises(ValueError, match="ends_at must be after starts_at"):
        silence(Matcher("a", "=", "b"), starts=T0, ends=T0)
    with pytest.raises(ValueError, match="at least 1 item"):
        silence()
    with pytest.raises(ValueError, match="invalid regex"):
        Silence.model_validate(
            {"id": "s", "matchers": [{"label": "a", "op": "=~", "value": "("}], "starts_at": 0, "ends_at": 1}
        )


# ---- restarts -----------------------------------------------------------------------------------


async def test_restore_does_not_fire_again() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule()])
    temp(source, "0", T0, 90)
    temp(source, "1", T0 + 30, 90)
    await engine.evaluate(source, T0)
    temp(source, "0", T0 + 30, 90)
    await engine.evaluate(source, T0 + 30)
    temp(source, "0", T0 + 60, 90)
    temp(source, "1", T0 + 60, 90)
    [fired] = await engine.evaluate(source, T0 + 60)  # gpu 0 fires, gpu 1 pending since T0+30
    stored = [a.model_dump_json() for a in engine.active()]

    restarted = AlertEngine([gpu_rule()])
    restarted.restore(Alert.model_validate_json(text) for text in stored)
    assert restarted.active() == engine.active()
    temp(source, "0", T0 + 75, 90)
    temp(source, "1", T0 + 75, 90)
    assert await restarted.evaluate(source, T0 + 75) == []  # gpu 0 is not fired again, gpu 1 still pending
    temp(source, "0", T0 + 90, 90)
    temp(source, "1", T0 + 90, 90)
    [late] = await restarted.evaluate(source, T0 + 90)  # gpu 1's `for` counts from before the restart
    assert (late.kind, late.alert.labels["gpu"], late.alert.started_at) == ("fired", "1", T0 + 30)
    temp(source, "0", T0 + 105, 50)
    temp(source, "1", T0 + 105, 90)
    [resolved] = await restarted.evaluate(source, T0 + 105)
    assert (resolved.kind, resolved.alert.id) == ("resolved", fired.alert.id)


async def test_restore_keeps_a_silenced_alert_unannounced() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    temp(source, "0", T0, 90)
    await engine.evaluate(source, T0, [silence(Matcher("gpu", "=", "0"))])
    restarted = AlertEngine([gpu_rule(**{"for": "0s"})])
    restarted.restore(engine.active())
    temp(source, "0", T0 + 200, 90)
    # the silence has ended by now: the alert is announced once, as it would have been without the restart
    assert kinds(await restarted.evaluate(source, T0 + 200)) == [("fired", "0", False)]


def test_restore_ignores_resolved_and_keeps_the_newest() -> None:
    base = {"fingerprint": "f", "rule": "r", "labels": {}, "value": 1.0, "evaluated_at": 0.0}
    old = Alert(id="1", state="firing", started_at=1.0, **base)
    new = Alert(id="2", state="pending", started_at=2.0, **base)
    done = Alert(id="3", fingerprint="g", rule="r", state="resolved", labels={}, value=1, started_at=0, evaluated_at=0)
    engine = AlertEngine([])
    engine.restore([new, old, done])
    assert engine.active() == [new]


async def test_alerts_of_a_removed_rule_end() -> None:
    source, engine = FakeSource(), AlertEngine([gpu_rule(**{"for": "0s"})])
    temp(source, "0", T0, 90)
    await engine.evaluate(source, T0)
    without = AlertEngine([])
    without.restore(engine.active())
    assert [t.kind for t in await without.evaluate(source, T0 + 15)] == ["resolved"]
    assert without.active() == []


# ---- failures and scheduling --------------------------------------------------------------------


async def test_a_failing_query_keeps_the_alerts_and_is_reported() -> None:
    source = FakeSource()
    other = gpu_rule(name="gpu-warm", expr=f"last({TEMP}[1m]) by (gpu) > 60", **{"for": "0s"})
    engine = AlertEngine([gpu_rule(**{"for": "0s"}), other])
    temp(source, "0", T0, 90)
    assert len(await engine.evaluate(source, T0)) == 2
    source.fail = ConnectionError("database is down")
    assert await engine.evaluate(source, T0 + 15) == []
    assert {a.state for a in engine.active()} == {"firing"}
    assert engine.errors == {
        "gpu-hot": "ConnectionError: database is down",
        "gpu-warm": "ConnectionError: database is down",
    }
    source.fail = None
    temp(source, "0", T0 + 30, 50)
    assert [t.kind for t in await engine.evaluate(source, T0 + 30)] == ["resolved", "resolved"]
    assert engine.errors == {}


async def test_evaluate_every_and_the_clock() -> None:
    now = [T0]
    source = FakeSource()
    engine = AlertEngine([gpu_rule(**{"for": "0s", "evaluate_every": "1m"})], clock=lambda: now[0])
    temp(source, "0", T0, 90)
    assert len(await engine.evaluate(source)) == 1  # `at` defaults to the clock
    assert source.calls[-1][3] == T0
    temp(source, "0", T0 + 30, 50)
    now[0] = T0 + 30
    assert await engine.evaluate(source) == []  # not due: the alert is left as it was
    assert engine.active()[0].state == "firing"
    now[0] = T0 + 60
    temp(source, "0", T0 + 60, 50)
    assert [t.kind for t in await engine.evaluate(source)] == ["resolved"]


def test_alert_json_round_trip() -> None:
    alert = Alert(
        id=alert_id("f", T0),
        fingerprint="f",
        rule="gpu-hot",
        state="firing",
        labels=LABELS_0,
        annotations={"summary": "GPU 0 at 90 °C"},
        value=90.0,
        started_at=T0,
        fired_at=T0 + 60,
        evaluated_at=T0 + 60,
        notified=True,
    )
    assert Alert.model_validate_json(alert.model_dump_json()) == alert
    assert fingerprint("gpu-hot", dict(reversed(LABELS_0.items()))) == fingerprint("gpu-hot", LABELS_0)
    assert fingerprint("gpu-hot", LABELS_0) != fingerprint("gpu-warm", LABELS_0)
    assert len(fingerprint("r", {})) == 64
