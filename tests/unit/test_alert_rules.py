"""Alert rule expressions, selectors and rule files (``services/telemetry/{selectors,rules}.py``)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from services.telemetry.rules import (
    BinOp,
    Call,
    Expr,
    ExprError,
    Number,
    Rule,
    RuleError,
    load_rules,
    parse_expr,
    render_template,
)
from services.telemetry.selectors import Matcher, Selector, format_duration, parse_duration
from tests.unit.fake_series import FakeSource

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

REPO = Path(__file__).resolve().parents[2]
AT = 10_000.0


# ---- selectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        (Matcher("a", "=", "x"), {"a": "x"}, True),
        (Matcher("a", "=", "x"), {"a": "y"}, False),
        (Matcher("a", "=", ""), {}, True),  # a missing label reads as ""
        (Matcher("a", "!=", "x"), {"a": "y"}, True),
        (Matcher("a", "!=", "x"), {}, True),
        (Matcher("a", "!=", "x"), {"a": "x"}, False),
        (Matcher("a", "=~", "x|y"), {"a": "y"}, True),
        (Matcher("a", "=~", "x|y"), {"a": "xy"}, False),  # full match, not search
        (Matcher("status", "=~", "5.."), {"status": "503"}, True),
        (Matcher("status", "=~", "5.."), {"status": "5030"}, False),
        (Matcher("a", "!~", "x.*"), {"a": "xyz"}, False),
        (Matcher("a", "!~", "x.*"), {"a": "yx"}, True),
        (Matcher("a", "!~", ".+"), {}, True),
    ],
)
def test_matcher(matcher: Matcher, labels: dict[str, str], expected: bool) -> None:
    assert matcher.matches(labels) is expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("1a", "=", "x"), "'1a' is not a label name"),
        (("a", "==", "x"), "unknown matcher operator '=='; operators are =, !=, =~, !~"),
        (("a", "=~", "("), "invalid regex '(': missing ), unterminated subpattern at position 0"),
        (("a", "!~", "a" * 257), "regex of 257 characters is longer than 256"),
    ],
)
def test_matcher_refuses(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        Matcher(*args)  # type: ignore[arg-type]


def test_matcher_regex_of_256_characters_is_allowed() -> None:
    assert Matcher("a", "=~", "a" * 256).matches({"a": "a" * 256})


def test_selector() -> None:
    sel = Selector("hearth_x", (Matcher("a", "=", "1"), Matcher("b", "!~", "z.*")))
    assert sel.matches("hearth_x", {"a": "1", "b": "y"})
    assert not sel.matches("hearth_x", {"a": "1", "b": "zz"})
    assert not sel.matches("hearth_y", {"a": "1", "b": "y"})
    assert Selector("hearth_x").matches("hearth_x", {"any": "thing"})
    assert str(sel) == 'hearth_x{a="1", b!~"z.*"}'
    with pytest.raises(ValueError, match="is not a metric name"):
        Selector("9x")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0.0), ("30s", 30.0), ("5m", 300.0), ("1.5h", 5400.0), ("1d", 86400.0), (" 2m ", 120.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", "duration '5' has no unit: write a number and one of the units s, m, h, d (e.g. 30s, 5m, 1h, 1d)"),
        ("5ms", "duration '5ms' has unknown unit 'ms': write a number"),
        ("1w", "duration '1w' has unknown unit 'w': write a number"),
        ("-5m", "'-5m' is not a duration: write a number"),
        ("m", "'m' is not a duration: write a number"),
        ("", "'' is not a duration: write a number"),
        (5, "duration 5 is not a string: write a number"),
    ],
)
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (30.0, "30s"), (90.0, "90s"), (300.0, "5m"), (7200.0, "2h"), (86400.0, "1d"), (1.5, "1.5s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


# ---- parsing ------------------------------------------------------------------------------------


def call(
    func: str, metric: str, window: float, by: tuple[str, ...] = (), *matchers: Matcher, q: float | None = None
) -> Call:
    return Call(func, Selector(metric, matchers), window, by, q)


def test_parse_quantile_by() -> None:
    expr = parse_expr("quantile(0.99, hearth_model_request_duration_seconds[5m]) by (model) > 2")
    assert expr == Expr(
        "quantile(0.99, hearth_model_request_duration_seconds[5m]) by (model) > 2",
        call("quantile", "hearth_model_request_duration_seconds", 300, ("model",), q=0.99),
        ">",
        2.0,
    )
    assert expr.by == ("model",)


def test_parse_ratio_with_matchers() -> None:
    expr = parse_expr(
        'increase(hearth_workflow_runs_total{outcome="failed"}[10m]) by (workflow)'
        " / increase(hearth_workflow_runs_total[10m]) by (workflow) > 0.2"
    )
    failed = call("increase", "hearth_workflow_runs_total", 600, ("workflow",), Matcher("outcome", "=", "failed"))
    total = call("increase", "hearth_workflow_runs_total", 600, ("workflow",))
    assert expr.left == BinOp("/", failed, total, ("workflow",))
    assert (expr.op, expr.threshold, expr.by) == (">", 0.2, ("workflow",))


def test_parse_absent_alone() -> None:
    expr = parse_expr("absent(hearth_host_cpu_percent[2m])")
    assert expr.left == call("absent", "hearth_host_cpu_percent", 120)
    assert (expr.op, expr.threshold, expr.by) == (None, None, ())


def test_precedence_and_parentheses() -> None:
    a, b, c = (call("last", name, 60) for name in "abc")
    assert parse_expr("last(a[1m]) + last(b[1m]) * last(c[1m]) > 0").left == BinOp("+", a, BinOp("*", b, c, ()), ())
    assert parse_expr("(last(a[1m]) + last(b[1m])) * last(c[1m]) > 0").left == BinOp("*", BinOp("+", a, b, ()), c, ())
    # left-associative: a - b - c is (a - b) - c, a / b * 100 is (a / b) * 100
    assert parse_expr("last(a[1m]) - last(b[1m]) - last(c[1m]) > 0").left == BinOp("-", BinOp("-", a, b, ()), c, ())
    assert parse_expr("last(a[1m]) / last(b[1m]) * 100 > 0").left == BinOp("*", BinOp("/", a, b, ()), Number(100.0), ())


@pytest.mark.parametrize(
    ("source", "matchers"),
    [
        (
            'rate(m{a="1", b!="2", c=~"x|y", d!~"z"}[1m]) > 0',
            (Matcher("a", "=", "1"), Matcher("b", "!=", "2"), Matcher("c", "=~", "x|y"), Matcher("d", "!~", "z")),
        ),
        ("rate(m{a='single'}[1m]) > 0", (Matcher("a", "=", "single"),)),
        ('rate(m{a="1",}[1m]) > 0', (Matcher("a", "=", "1"),)),  # a trailing comma is fine
        ("rate(m{}[1m]) > 0", ()),
        (r'rate(m{a="q\"uo\\te"}[1m]) > 0', (Matcher("a", "=", 'q"uo\\te'),)),
        (r'rate(m{a=~"v1\.2"}[1m]) > 0', (Matcher("a", "=~", r"v1\.2"),)),  # regex escapes stay as written
        ('rate(m{route="/v1/models/{name}/infer"}[1m]) > 0', (Matcher("route", "=", "/v1/models/{name}/infer"),)),
    ],
)
def test_parse_selectors(source: str, matchers: tuple[Matcher, ...]) -> None:
    left = parse_expr(source).left
    assert isinstance(left, Call)
    assert left.selector == Selector("m", matchers)


@pytest.mark.parametrize(
    ("source", "op", "threshold"),
    [
        ("rate(x[5m]) > 1", ">", 1.0),
        ("rate(x[5m]) < 1.5", "<", 1.5),
        ("rate(x[5m]) >= 1e3", ">=", 1000.0),
        ("rate(x[5m]) <= .5", "<=", 0.5),
        ("rate(x[5m]) == 0", "==", 0.0),
        ("rate(x[5m]) != -2", "!=", -2.0),
    ],
)
def test_parse_comparisons(source: str, op: str, threshold: float) -> None:
    expr = parse_expr(source)
    assert (expr.op, expr.threshold) == (op, threshold)


def test_parse_windows_functions_and_by() -> None:
    for func in ("rate", "increase", "avg", "max", "min", "last"):
        left = parse_expr(f"{func}(x[90s]) by (a, b,) > 0").left
        assert left == call(func, "x", 90, ("a", "b"))
    assert parse_expr("rate(x[7d]) > 0").left == call("rate", "x", 7 * 86400)
    assert parse_expr("rate(ns:metric_name[1h]) > 0").left == call("rate", "ns:metric_name", 3600)


def test_by_groups_of_the_same_labels_in_another_order_combine() -> None:
    expr = parse_expr("last(a[1m]) by (x, y) / last(b[1m]) by (y, x) > 0")
    assert expr.by == ("x", "y")


def test_ungrouped_term_and_numbers_broadcast() -> None:
    assert parse_expr("last(a[1m]) / last(b[1m]) by (x) > 0").by == ("x",)
    assert parse_expr("2 * last(b[1m]) by (x) - 1 > 0").by == ("x",)
    assert parse_expr("last(a[1m]) + 1 > 0").by == ()


# Every way an expression can be refused, with its exact message.
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("rate(x[5m]) $ 1", "unexpected character '$' at column 13"),
        ('rate(x{a="b}[5m]) > 1', "unterminated string at column 10"),
        (
            "(rate(x[5m]) > 1)",
            "expected ')' to close the '(' at column 1, found '>' at column 14; a comparison is only allowed "
            "once, at the top, against a number",
        ),
        (
            "(rate(x[5m]) + 1 > 1",
            "expected ')' to close the '(' at column 1, found '>' at column 18; a comparison is only allowed "
            "once, at the top, against a number",
        ),
        ("absent(x[5m]) > 0", "absent(...) is a condition by itself and takes no comparison at column 15"),
        ("absent(x[5m]) rate", "unexpected 'rate' after absent(...) at column 15"),
        (
            "rate(x[5m])",
            "missing comparison at column 12; an alert expression ends with a comparison against a number, "
            "e.g. '... > 2', or is absent(...)",
        ),
        (
            "rate(x[5m]) rate(y[5m])",
            "expected an operator (+ - * /) or a comparison (> < >= <= == !=), found 'rate' at column 13",
        ),
        (
            "1 + 2 > 0",
            "the left side of the comparison has no function of a series at column 1; e.g. rate(metric[5m]) > 1",
        ),
        ("rate(x[5m]) > y", "the comparison must be against a number, found 'y' at column 15"),
        ("rate(x[5m]) > 1 > 2", "only one comparison is allowed at column 17"),
        ("rate(x[5m]) > 1 + 1", "unexpected '+' after the comparison at column 17"),
        (
            "absent(x[5m]) + 1 > 0",
            "absent(...) is a condition by itself and cannot be combined with operators at column 1",
        ),
        (
            "2 * absent(x[5m]) > 0",
            "absent(...) is a condition by itself and cannot be combined with operators at column 5",
        ),
        (
            "rate(x[5m]) by (a) / rate(y[5m]) by (b) > 1",
            "cannot combine groups by (a) with groups by (b) at column 20; both sides need the same `by` "
            "labels, or one side none",
        ),
        ("-rate(x[5m]) > 1", "a '-' sign must stand before a number, found 'rate' at column 2"),
        (
            "(((((((((((((((((((((((((((((((((rate(x[5m])))))))))))))))))))))))))))))))))) > 1",
            "parentheses nested deeper than 32 at column 33",
        ),
        ("rate(x[5m]) + 5m > 1", "unexpected duration '5m' at column 15; durations go in brackets: metric[5m]"),
        ("rate(x[5m]) +", "unexpected end of the expression at column 14"),
        ("rate(x[5m]) + , > 1", "unexpected ',' at column 15"),
        (
            "hearth_host_cpu_percent > 90",
            "'hearth_host_cpu_percent' needs a function around it at column 1; e.g. "
            "last(hearth_host_cpu_percent[5m]) or rate(hearth_host_cpu_percent[5m]); functions are rate, "
            "increase, quantile, avg, max, min, last, absent",
        ),
        (
            "p99(x[5m]) > 1",
            "unknown function 'p99' at column 1; functions are rate, increase, quantile, avg, max, min, last, absent",
        ),
        ("quantile(x[5m]) > 1", "quantile takes the quantile first at column 10; e.g. quantile(0.99, metric[5m])"),
        ("quantile(0, x[5m]) > 1", "quantile 0 is not between 0 and 1 (both excluded) at column 10"),
        ("quantile(1, x[5m]) > 1", "quantile 1 is not between 0 and 1 (both excluded) at column 10"),
        ("quantile(0.5 x[5m]) > 1", "expected ',' after the quantile, found 'x' at column 14"),
        ("rate(x) > 1", "expected '[' after the selector: a window like [5m], found ')' at column 7"),
        ("rate(x[5m) > 1", "expected ']' after the window, found ')' at column 10"),
        ("rate(x[5m] > 1", "expected ')' to close rate(, found '>' at column 12"),
        (
            "absent(x[5m]) by (a)",
            "absent(...) takes no `by`: a group without samples has no labels to report at column 1",
        ),
        ('rate("x"[5m]) > 1', "expected a metric name, found '\"x\"' at column 6"),
        (
            "rate(rate(x[5m])[5m]) > 1",
            'functions cannot be nested; a function takes a selector like metric{label="v"}[5m] at column 6',
        ),
        ('rate(x{a="1" b="2"}[5m]) > 1', "expected ',' or '}' in the selector, found 'b' at column 14"),
        ('rate(x{"a"="1"}[5m]) > 1', "expected a label name, found '\"a\"' at column 8"),
        ('rate(x{a=="1"}[5m]) > 1', "expected =, !=, =~ or !~ after 'a', found '==' at column 9"),
        ("rate(x{a=1}[5m]) > 1", "expected a quoted string after a=, found '1' at column 10"),
        ('rate(x{a=~"("}[5m]) > 1', "invalid regex '(' at column 11; missing ), unterminated subpattern at position 0"),
        ("rate(x[]) > 1", "expected a window like 5m, found ']' at column 8"),
        ("rate(x[0s]) > 1", "the window must be longer than 0s at column 8"),
        ("rate(x[8d]) > 1", "window 8d is longer than the limit of 7d at column 8"),
        (
            "rate(x[5x]) > 1",
            "duration '5x' has unknown unit 'x' at column 8; write a number and one of the units s, m, h, d "
            "(e.g. 30s, 5m, 1h, 1d)",
        ),
        (
            "rate(x[5]) > 1",
            "duration '5' has no unit at column 8; write a number and one of the units s, m, h, d (e.g. 30s, "
            "5m, 1h, 1d)",
        ),
        ("rate(x[5m]) by a > 1", "expected '(' after by, found 'a' at column 16"),
        ("rate(x[5m]) by (1) > 1", "expected a label name in by (...), found '1' at column 17"),
        ("rate(x[5m]) by (a, a) > 1", "label 'a' appears twice in by (...) at column 20"),
        ("rate(x[5m]) by (a b) > 1", "expected ')' to close by (...), found 'b' at column 19"),
        ("rate(x[5m]) by () > 1", "expected a label name in by (...), found ')' at column 17"),
        ("", "the expression is empty at column 1"),
        ("   ", "the expression is empty at column 1"),
    ],
)
def test_parse_errors(source: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        parse_expr(source)
    assert str(info.value) == message


def test_parse_error_limits() -> None:
    with pytest.raises(ExprError, match=r"^the expression is longer than 4000 characters at column 4001$"):
        parse_expr("rate(x[5m]) > 1" + " " * 4000)
    with pytest.raises(ExprError, match=r"^parentheses nested deeper than 32 at column 33$"):
        parse_expr("(" * 33 + "rate(x[5m])" + ")" * 33 + " > 1")
    assert parse_expr("(" * 32 + "rate(x[5m])" + ")" * 32 + " > 1").by == ()
    with pytest.raises(ExprError, match=r"^the expression must be a string, not int at column 1$"):
        parse_expr(5)  # type: ignore[arg-type]


def test_expr_error_carries_its_parts() -> None:
    with pytest.raises(ExprError) as info:
        parse_expr("rate(x[5m]) > p99")
    assert (info.value.reason, info.value.column) == ("the comparison must be against a number, found 'p99'", 15)


# ---- evaluation ---------------------------------------------------------------------------------


def runs(source: FakeSource, workflow: str, outcome: str, start: float, end: float) -> None:
    source.add("hearth_workflow_runs_total", {"workflow": workflow, "outcome": outcome}, (AT - 500, start), (AT, end))


async def test_ratio_by_group() -> None:
    source = FakeSource()
    runs(source, "invoice", "failed", 0, 3)
    runs(source, "invoice", "completed", 0, 7)
    runs(source, "contract", "failed", 0, 1)
    runs(source, "contract", "completed", 10, 19)
    runs(source, "quiet", "completed", 5, 5)  # no failures series: no group on the left side
    expr = parse_expr(
        'increase(hearth_workflow_runs_total{outcome="failed"}[10m]) by (workflow)'
        " / increase(hearth_workflow_runs_total[10m]) by (workflow) > 0.2"
    )
    assert await expr.evaluate(source, AT) == {(("workflow", "invoice"),): pytest.approx(0.3)}
    lower = parse_expr(expr.source.replace("> 0.2", ">= 0.1"))
    assert await lower.evaluate(source, AT) == {
        (("workflow", "invoice"),): pytest.approx(0.3),
        (("workflow", "contract"),): pytest.approx(0.1),
    }


async def test_division_by_zero_skips_the_group() -> None:
    source = FakeSource()
    runs(source, "idle", "failed", 2, 2)  # 0 failed of 0 runs: no ratio, no alert
    runs(source, "busy", "failed", 0, 5)
    source.add("hearth_workflow_runs_total", {"workflow": "busy", "outcome": "completed"}, (AT - 500, 0), (AT, 5))
    expr = parse_expr(
        'increase(hearth_workflow_runs_total{outcome="failed"}[10m]) by (workflow)'
        " / increase(hearth_workflow_runs_total[10m]) by (workflow) >= 0"
    )
    assert await expr.evaluate(source, AT) == {(("workflow", "busy"),): 0.5}
    zero = parse_expr("last(hearth_x[1m]) / 0 >= 0")
    source.add("hearth_x", {}, (AT, 1.0))
    assert await zero.evaluate(source, AT) == {}


async def test_ungrouped_term_broadcasts_to_every_group() -> None:
    source = FakeSource()
    source.add("hearth_model_memory_bytes", {"model": "a", "device": "gpu0"}, (AT, 30.0))
    source.add("hearth_model_memory_bytes", {"model": "b", "device": "gpu0"}, (AT, 60.0))
    source.add("hearth_gpu_memory_bytes", {"gpu": "0", "kind": "total"}, (AT, 100.0))
    expr = parse_expr(
        'last(hearth_model_memory_bytes[1m]) by (model) / last(hearth_gpu_memory_bytes{kind="total"}[1m]) * 100 > 50'
    )
    assert await expr.evaluate(source, AT) == {(("model", "b"),): 60.0}
    # the other way round too, and with a number on the left
    flipped = parse_expr(
        'last(hearth_gpu_memory_bytes{kind="total"}[1m]) - last(hearth_model_memory_bytes[1m]) by (model) > 50'
    )
    assert await flipped.evaluate(source, AT) == {(("model", "a"),): 70.0}
    numbers = parse_expr("100 - last(hearth_model_memory_bytes[1m]) by (model) < 50")
    assert await numbers.evaluate(source, AT) == {(("model", "b"),): 40.0}


async def test_an_ungrouped_term_without_data_gives_nothing() -> None:
    source = FakeSource()
    source.add("hearth_model_memory_bytes", {"model": "a"}, (AT, 30.0))
    expr = parse_expr("last(hearth_model_memory_bytes[1m]) by (model) / last(hearth_missing[1m]) > 0")
    assert await expr.evaluate(source, AT) == {}


async def test_groups_by_the_same_labels_in_another_order_match() -> None:
    source = FakeSource()
    source.add("a", {"x": "1", "y": "2"}, (AT, 10.0))
    source.add("b", {"x": "1", "y": "2"}, (AT, 4.0))
    source.add("b", {"x": "2", "y": "1"}, (AT, 100.0))
    expr = parse_expr("last(a[1m]) by (x, y) - last(b[1m]) by (y, x) > 0")
    assert await expr.evaluate(source, AT) == {(("x", "1"), ("y", "2")): 6.0}


async def test_absent() -> None:
    source = FakeSource()
    expr = parse_expr('absent(hearth_host_cpu_percent{job="host"}[2m])')
    assert await expr.evaluate(source, AT) == {(): 1.0}
    source.add("hearth_host_cpu_percent", {"job": "host"}, (AT - 200, 5.0))  # outside the window
    assert await expr.evaluate(source, AT) == {(): 1.0}
    source.add("hearth_host_cpu_percent", {"job": "host"}, (AT - 10, 5.0))
    assert await expr.evaluate(source, AT) == {}
    assert source.calls[-1] == ("count", 'hearth_host_cpu_percent{job="host"}', 120.0, AT, ())


async def test_functions_ask_the_source_for_their_window_and_groups() -> None:
    source = FakeSource()
    source.add("c", {"m": "a"}, (AT - 50, 10.0), (AT, 70.0))
    source.add("h", {"m": "a"}, *((AT - i, float(i)) for i in range(1, 101)))
    source.add("g", {"m": "a"}, (AT - 20, 1.0), (AT - 10, 5.0), (AT, 3.0))
    cases = {
        "rate(c[1m]) by (m)": 1.0,  # 60 over 60 s
        "increase(c[1m]) by (m)": 60.0,
        "quantile(0.9, h[10m]) by (m)": 90.0,
        "avg(g[1m]) by (m)": 3.0,
        "max(g[1m]) by (m)": 5.0,
        "min(g[1m]) by (m)": 1.0,
        "last(g[1m]) by (m)": 3.0,
    }
    for term, value in cases.items():
        assert await parse_expr(f"{term} > -1").evaluate(source, AT) == {(("m", "a"),): value}, term
    assert await parse_expr("last(g[1m]) by (m) > 3").evaluate(source, AT) == {}
    assert ("gauge:last", "g", 60.0, AT, ("m",)) in source.calls
    assert ("quantile", "h", 600.0, AT, ("m",)) in source.calls


async def test_non_finite_values_from_the_source_are_dropped() -> None:
    source = FakeSource()
    source.add("g", {"m": "a"}, (AT, math.inf))
    source.add("g", {"m": "b"}, (AT, math.nan))
    source.add("g", {"m": "c"}, (AT, 1.0))
    assert await parse_expr("last(g[1m]) by (m) > 0").evaluate(source, AT) == {(("m", "c"),): 1.0}


# ---- rules --------------------------------------------------------------------------------------


def rule(**fields: object) -> Rule:
    body: dict[str, object] = {"name": "r", "expr": "last(g[1m]) by (gpu) > 1", "severity": "warning"}
    body.update(fields)
    return Rule.model_validate(body)


def test_rule_fields_and_round_trip() -> None:
    r = rule(
        **{"for": "1m", "labels": {"team": "platform"}, "summary": "{{ gpu }} at {{value}}", "evaluate_every": "30s"}
    )
    assert (r.for_, r.evaluate_every, r.expr.by) == (60.0, 30.0, ("gpu",))
    dumped = r.model_dump(by_alias=True)
    assert dumped == {
        "name": "r",
        "expr": "last(g[1m]) by (gpu) > 1",
        "for": "1m",
        "severity": "warning",
        "labels": {"team": "platform"},
        "summary": "{{ gpu }} at {{value}}",
        "evaluate_every": "30s",
    }
    assert Rule.model_validate(dumped) == r
    assert rule().for_ == 0.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Bad_Name"}, "'Bad_Name' is not a slug"),
        ({"name": "a--b"}, "'a--b' is not a slug"),
        ({"name": "a" * 65}, "is not a slug"),
        ({"severity": "page"}, "Input should be 'info', 'warning' or 'critical'"),
        ({"for": 60}, "60 is not a duration: write a number and one of the units s, m, h, d"),
        ({"for": "1w"}, "duration '1w' has unknown unit 'w'"),
        ({"evaluate_every": "0s"}, "must be longer than 0s"),
        ({"labels": {"alertname": "x"}}, "'alertname' is set by the engine and cannot be a rule label"),
        ({"labels": {"severity": "x"}}, "'severity' is set by the engine"),
        ({"labels": {"bad-label": "x"}}, "'bad-label' is not a label name"),
        ({"labels": {"gpu": "0"}}, "labels: 'gpu' is also a `by` label of the expression"),
        (
            {"summary": "{{ model }}"},
            "summary: unknown placeholder {{ model }}; available: alertname, gpu, severity, value",
        ),
        (
            {"summary": "{{ gpu.name }}"},
            "summary: '{{ gpu.name }}' is not a placeholder; write {{ label }} or {{ value }}",
        ),
        ({"summary": "{{ gpu | upper }}"}, "is not a placeholder"),
        ({"summary": "open {{ gpu"}, "summary: '{{' is not a placeholder"),
        ({"expr": "p99(x[5m]) > 1"}, "unknown function 'p99' at column 1"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_rule_refuses(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="validation error") as info:
        rule(**fields)
    assert message in str(info.value)


def test_summary_placeholders_of_rule_labels_and_reserved_names() -> None:
    r = rule(labels={"team": "gpu-ops"}, summary="{{ alertname }}/{{ severity }}/{{ team }}/{{ gpu }}={{ value }}")
    labels = {"alertname": "r", "severity": "warning", "team": "gpu-ops", "gpu": "0"}
    assert r.render_summary(labels, 91.25) == "r/warning/gpu-ops/0=91.2"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.0, "2"),
        (0.0, "0"),
        (-3.0, "-3"),
        (2.3456, "2.35"),
        (0.012345, "0.0123"),
        (123.6, "124"),
        (1e20, "100000000000000000000"),
    ],
)
def test_render_template_values(value: float, text: str) -> None:
    assert render_template("{{ value }}", {}, value) == text


def test_render_template_is_plain_substitution() -> None:
    labels = {"model": "{{ value }} {{ secret }}"}
    # a label value is inserted as is, never rendered again
    assert (
        render_template("{{ model }} is {{ value }}; {{ missing }}", labels, 1.5) == "{{ value }} {{ secret }} is 1.5; "
    )


# ---- files --------------------------------------------------------------------------------------

GOOD = """\
rules:
  - name: gpu-hot
    expr: avg(hearth_gpu_temperature_celsius[5m]) by (gpu) > 85
    for: 5m
    severity: warning
    labels: {team: platform}
    summary: "GPU {{ gpu }} at {{ value }} °C"
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_rules(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", GOOD)
    write(tmp_path, "a.yaml", GOOD.replace("gpu-hot", "gpu-warm").replace("85", "80"))
    write(tmp_path, "empty.yaml", "")
    write(tmp_path, "notes.txt", "not a rule file")
    rules = load_rules(tmp_path)
    assert [r.name for r in rules] == ["gpu-warm", "gpu-hot"]  # file order, then rule order
    assert rules[1].expr.threshold == 85.0
    assert rules[1].labels == {"team": "platform"}


def test_load_rules_of_an_empty_directory(tmp_path: Path) -> None:
    assert load_rules(tmp_path) == []


def load_error(directory: Path | list[Path]) -> str:
    with pytest.raises(RuleError) as info:
        load_rules(directory)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("avg(", "p99("),
            "{file}: rule 'gpu-hot': expr: unknown function 'p99' at column 1; "
            "functions are rate, increase, quantile, avg, max, min, last, absent",
        ),
        (
            GOOD.replace("severity: warning", "severity: page"),
            "{file}: rule 'gpu-hot': severity: must be info, warning or critical, not 'page'",
        ),
        (GOOD.replace("    severity: warning\n", ""), "{file}: rule 'gpu-hot': severity: required"),
        (
            GOOD.replace("for: 5m", "for: 5"),
            "{file}: rule 'gpu-hot': for: 5 is not a duration: write a number and one of the units s, m, h, d "
            "(e.g. 30s, 5m)",
        ),
        (
            GOOD.replace("for: 5m", "sevrity: info"),
            "{file}: rule 'gpu-hot': unknown field 'sevrity'; fields are name, expr, for, severity, labels, "
            "summary, evaluate_every",
        ),
        (
            GOOD.replace("{{ gpu }}", "{{ model }}"),
            "{file}: rule 'gpu-hot': summary: unknown placeholder {{ model }}; available: alertname, gpu, "
            "severity, team, value",
        ),
        (GOOD.replace("  - name: gpu-hot\n    expr:", "  - expr:"), "{file}: rule #1: name: required"),
        ("rules:\n  - just a string\n", "{file}: rule #1: a rule must be a mapping"),
        ("rules: {a: 1}\n", "{file}: the file must be a mapping with the single key 'rules' holding a list of rules"),
        ("- name: x\n", "{file}: the file must be a mapping with the single key 'rules' holding a list of rules"),
        (GOOD + "other: 1\n", "{file}: the file must be a mapping with the single key 'rules' holding a list of rules"),
        (GOOD.replace("    for: 5m\n", "    for: 5m\n    for: 1m\n"), "{file}:5: YAML: duplicate key 'for'"),
        ("rules: [\n", "{file}:2: YAML: expected the node content, but found '<stream end>'"),
    ],
)
def test_load_rules_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "models.yaml", text)
    assert load_error(tmp_path) == message.replace("{file}", str(path))


def test_load_rules_reports_every_problem_and_names_used_twice(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", GOOD + GOOD.removeprefix("rules:\n").replace("gpu-hot", "bad name"))
    assert load_error(tmp_path).splitlines() == [
        f"{second}: rule 'bad name': name: 'bad name' is not a slug: lower-case letters and digits in words joined "
        "by single hyphens, at most 64 characters (e.g. model-latency-high)",
        f"{second}: rule 'gpu-hot': name already used in {first}",
    ]


def test_load_rules_of_a_missing_directory(tmp_path: Path) -> None:
    assert load_error(tmp_path / "nope") == f"{tmp_path / 'nope'}: not a directory"


def test_shipped_rules_load() -> None:
    rules = load_rules(REPO / "infra" / "alerts")
    names = {r.name for r in rules}
    assert len(names) == len(rules)
    assert {
        "model-latency-p99-high",
        "model-error-ratio-high",
        "workflow-failure-rate",
        "gateway-http-5xx-ratio-high",
        "nats-consumer-backlog-growing",
        "nats-consumer-pending-high",
        "nats-consumer-redeliveries",
        "host-cpu-high",
        "host-memory-high",
        "host-disk-nearly-full",
        "telemetry-host-metrics-absent",
        "gpu-temperature-high",
    } <= names
    assert all(r.summary for r in rules)


async def test_shipped_rules_are_quiet_on_a_healthy_box_and_the_gpu_rule_without_a_gpu() -> None:
    source = FakeSource()
    for t in (AT - 60, AT):
        source.add("hearth_host_cpu_percent", {"job": "host"}, (t, 20.0))
        source.add("hearth_host_memory_bytes", {"job": "host", "kind": "used"}, (t, 4e9))
        source.add("hearth_host_memory_bytes", {"job": "host", "kind": "total"}, (t, 64e9))
        source.add("hearth_host_disk_bytes", {"job": "host", "kind": "used"}, (t, 1e11))
        source.add("hearth_host_disk_bytes", {"job": "host", "kind": "total"}, (t, 1e12))
        source.add("hearth_nats_consumer_pending", {"stream": "S", "consumer": "c"}, (t, 3.0))
        source.add("hearth_nats_consumer_redelivered", {"stream": "S", "consumer": "c"}, (t, 0.0))
    source.add("hearth_model_requests_total", {"model": "m", "outcome": "ok"}, (AT - 200, 0), (AT, 100))
    source.add("hearth_model_requests_total", {"model": "m", "outcome": "error"}, (AT - 200, 0), (AT, 1))
    source.add("hearth_http_requests_total", {"job": "gateway", "status": "200"}, (AT - 200, 0), (AT, 100))
    source.add("hearth_http_requests_total", {"job": "gateway", "status": "503"}, (AT - 200, 0), (AT, 1))
    source.add("hearth_model_request_duration_seconds", {"model": "m"}, *((AT - i, 0.1) for i in range(50)))
    for r in load_rules(REPO / "infra" / "alerts"):
        assert await r.expr.evaluate(source, AT) == {}, r.name
    # and the ones that should speak up do
    source.add("hearth_http_requests_total", {"job": "gateway", "status": "500"}, (AT - 200, 0), (AT, 50))
    gateway = next(r for r in load_rules(REPO / "infra" / "alerts") if r.name == "gateway-http-5xx-ratio-high")
    assert await gateway.expr.evaluate(source, AT) == {(): pytest.approx(51 / 151 * 100)}


def test_a_name_used_twice_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", GOOD + GOOD.removeprefix("rules:\n"))
    assert load_error(tmp_path) == f"{path}: rule 'gpu-hot': name already used in {path}"


def test_render_template_of_a_non_finite_value() -> None:
    assert render_template("{{ value }}", {}, math.inf) == "inf"


def test_load_rules_of_several_directories(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = write(tmp_path / "one", "a.yaml", GOOD)
    write(tmp_path / "two", "b.yaml", GOOD.replace("gpu-hot", "gpu-warm"))
    assert [r.name for r in load_rules([tmp_path / "one", tmp_path / "two"])] == ["gpu-hot", "gpu-warm"]
    second = write(tmp_path / "two", "c.yaml", GOOD)
    assert load_error([tmp_path / "one", tmp_path / "two", tmp_path / "three"]).splitlines() == [
        f"{second}: rule 'gpu-hot': name already used in {first}",
        f"{tmp_path / 'three'}: not a directory",
    ]
