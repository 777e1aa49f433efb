"""Alert rules: the expression language, its evaluation against a ``SeriesSource``, rule files.

An expression is a condition over window aggregations of series, parsed once at load time by a
small tokenizer and recursive-descent parser (nothing is ever ``eval``-ed)::

    increase(hearth_workflow_runs_total{outcome="failed"}[10m]) by (workflow)
      / increase(hearth_workflow_runs_total[10m]) by (workflow) > 0.2

* functions of one selector and window: ``rate increase avg max min last absent`` and
  ``quantile(q, sel[w])``; ``by (l1, l2)`` after a function groups its result by those labels;
* ``+ - * /`` between terms and numbers, with the usual precedence and parentheses. Two grouped
  terms must have the same ``by`` labels and are matched group by group; a term without ``by``
  is one group and applies to every group of the other side. A group whose division is by zero
  drops out;
* exactly one comparison ``> < >= <= == !=`` against a number, at the top; or ``absent(sel[w])``
  alone, which holds when the window has no sample of the selector.

Rule files (``infra/alerts/*.yaml``) hold ``rules: [...]``; ``load_rules`` reads a directory of
them and reports every mistake with its file, rule and reason.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from services.telemetry.selectors import (
    GaugeAgg,
    Matcher,
    MatchOp,
    Selector,
    SeriesSource,
    format_duration,
    parse_duration,
)

__all__ = [
    "FUNCTIONS",
    "MAX_WINDOW_S",
    "RESERVED_LABELS",
    "BinOp",
    "Call",
    "CompareOp",
    "Expr",
    "ExprError",
    "Group",
    "Node",
    "Number",
    "Rule",
    "RuleError",
    "Severity",
    "load_rules",
    "parse_expr",
    "render_template",
]

FUNCTIONS: Final = ("rate", "increase", "quantile", "avg", "max", "min", "last", "absent")
MAX_WINDOW_S: Final = 7 * 86400.0
RESERVED_LABELS: Final = frozenset({"alertname", "severity"})
_MAX_SOURCE: Final = 4000
_MAX_DEPTH: Final = 32

CompareOp = Literal[">", "<", ">=", "<=", "==", "!="]
ArithOp = Literal["+", "-", "*", "/"]
Severity = Literal["info", "warning", "critical"]
Group = tuple[tuple[str, str], ...]
"""The labels of one result group as ``(label, value)`` pairs in ``by`` order; ``()`` without ``by``."""

_COMPARE_OPS: Final = (">=", "<=", "==", "!=", ">", "<")
_MATCH_OPS: Final = ("=~", "!~", "!=", "=")
_LABEL_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExprError(ValueError):
    """An expression that does not parse or breaks a limit; ``column`` is 1-based."""

    def __init__(self, reason: str, column: int, hint: str = "") -> None:
        self.reason = reason
        self.column = column
        self.hint = hint
        super().__init__(f"{reason} at column {column}" + (f"; {hint}" if hint else ""))


class RuleError(ValueError):
    """Rule files that cannot be used; ``problems`` has one line per mistake, each naming its file."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# ---- the syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Call:
    """``func(selector[window]) by (...)``; ``q`` only for ``quantile``."""

    func: str
    selector: Selector
    window_s: float
    by: tuple[str, ...] = ()
    q: float | None = None
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class BinOp:
    """``left op right``; ``by`` is the grouping of the result (``None`` when both sides are numbers)."""

    op: ArithOp
    left: Node
    right: Node
    by: tuple[str, ...] | None


Node = Number | Call | BinOp


def _by_of(node: Node) -> tuple[str, ...] | None:
    if isinstance(node, Number):
        return None
    return node.by


def _calls(node: Node) -> list[Call]:
    if isinstance(node, Call):
        return [node]
    if isinstance(node, BinOp):
        return _calls(node.left) + _calls(node.right)
    return []


@dataclass(frozen=True)
class Expr:
    """A parsed rule expression: ``left op threshold``, or ``absent(...)`` alone (``op`` is ``None``)."""

    source: str
    left: Node
    op: CompareOp | None = None
    threshold: float | None = None

    @property
    def by(self) -> tuple[str, ...]:
        """The labels of the groups ``evaluate`` returns."""
        return _by_of(self.left) or ()

    @property
    def calls(self) -> list[Call]:
        return _calls(self.left)

    async def evaluate(self, source: SeriesSource, at: float) -> dict[Group, float]:
        """The groups for which the condition holds at ``at``, each with its left-hand value.

        ``absent(...)`` gives ``{(): 1.0}`` when the window holds no sample, else ``{}``.
        """
        if self.op is None:
            call = cast(Call, self.left)
            counts = await source.count_samples(call.selector, call.window_s, at, ())
            return {(): 1.0} if sum(counts.values()) == 0 else {}
        op, threshold = self.op, self.threshold
        assert threshold is not None  # noqa: S101 - the parser sets op and threshold together
        result = await _evaluate(self.left, source, at)
        by = result.by or ()
        return {
            tuple(zip(by, key, strict=True)): value
            for key, value in result.values.items()
            if _compare(op, value, threshold)
        }

    def __str__(self) -> str:
        return self.source


# ---- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Vector:
    by: tuple[str, ...] | None  # None: a plain number
    values: dict[tuple[str, ...], float]


def _compare(op: CompareOp, a: float, b: float) -> bool:
    match op:
        case ">":
            return a > b
        case "<":
            return a < b
        case ">=":
            return a >= b
        case "<=":
            return a <= b
        case "==":
            return a == b
        case "!=":
            return a != b


def _arith(op: ArithOp, a: float, b: float) -> float | None:
    if op == "/":
        if b == 0:
            return None
        value = a / b
    elif op == "*":
        value = a * b
    elif op == "+":
        value = a + b
    else:
        value = a - b
    return value if math.isfinite(value) else None


async def _fetch(call: Call, source: SeriesSource, at: float) -> dict[tuple[str, ...], float]:
    if call.func in ("rate", "increase"):
        raw = await source.increase(call.selector, call.window_s, at, call.by)
        if call.func == "rate":
            raw = {key: value / call.window_s for key, value in raw.items()}
    elif call.func == "quantile":
        assert call.q is not None  # noqa: S101 - the parser sets q for quantile
        raw = await source.quantile(call.q, call.selector, call.window_s, at, call.by)
    else:
        raw = await source.gauge(call.selector, call.window_s, at, call.by, cast(GaugeAgg, call.func))
    return {key: float(value) for key, value in raw.items() if math.isfinite(value)}


def _lookup(side: _Vector, key: tuple[str, ...], by: tuple[str, ...]) -> float | None:
    if not side.by:  # a number or an ungrouped term applies to every group
        return side.values.get(())
    if side.by == by:
        return side.values.get(key)
    # the same labels in another order: pick this side's key out of the result's
    return side.values.get(tuple(key[by.index(label)] for label in side.by))


async def _evaluate(node: Node, source: SeriesSource, at: float) -> _Vector:
    if isinstance(node, Number):
        return _Vector(None, {(): node.value})
    if isinstance(node, Call):
        return _Vector(node.by, await _fetch(node, source, at))
    left, right = await asyncio.gather(_evaluate(node.left, source, at), _evaluate(node.right, source, at))
    by = node.by or ()
    keys = left.values.keys() if left.by else right.values.keys() if right.by else [()]
    out: dict[tuple[str, ...], float] = {}
    for key in keys:
        a, b = _lookup(left, key, by), _lookup(right, key, by)
        if a is None or b is None:
            continue
        value = _arith(node.op, a, b)
        if value is not None:
            out[key] = value
    return _Vector(node.by, out)


# ---- tokens ------------------------------------------------------------------------------------

_TOKEN_RE: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?P<unit>[A-Za-z]+)?
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>=~|!~|!=|==|>=|<=|[=><+\-*/])
  | (?P<punct>[(){}\[\],])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


_TokenKind = Literal["number", "duration", "ident", "string", "op", "punct", "end"]


@dataclass(frozen=True)
class _Token:
    kind: _TokenKind
    text: str
    column: int

    def describe(self) -> str:
        return "the end of the expression" if self.kind == "end" else repr(self.text)


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    # \\ \" \' \n \t are escapes; any other backslash stays, so a regex like "a\.b" reads as written
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body, flags=re.DOTALL)


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN_RE.match(source, pos)
        if match is None:
            char = source[pos]
            if char in "\"'":
                raise ExprError("unterminated string", pos + 1)
            raise ExprError(f"unexpected character {char!r}", pos + 1)
        kind = match.lastgroup  # "unit" when a number is followed by letters: a duration such as 5m
        if kind == "unit":
            tokens.append(_Token("duration", match.group(0), pos + 1))
        elif kind != "space":
            tokens.append(_Token(cast(_TokenKind, kind), match.group(0), pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", len(source) + 1))
    return tokens


# ---- the parser --------------------------------------------------------------------------------

_FUNCTION_HINT: Final = "functions are " + ", ".join(FUNCTIONS)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.pos = 0
        self.depth = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def next(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def fail(self, token: _Token, reason: str, hint: str = "") -> ExprError:
        return ExprError(reason, token.column, hint)

    def refuse(self, token: _Token, exc: ValueError) -> ExprError:
        """A ``ValueError`` from the selectors as an ``ExprError``: "reason: detail" → reason at column; detail."""
        reason, _, detail = str(exc).partition(": ")
        return ExprError(reason, token.column, detail)

    def expect(self, text: str, after: str, *, in_group: bool = False) -> _Token:
        token = self.peek
        if token.text == text and token.kind in ("punct", "op"):
            return self.next()
        if in_group and token.kind == "op" and token.text in _COMPARE_OPS:
            hint = "a comparison is only allowed once, at the top, against a number"
            raise self.fail(token, f"expected {text!r} {after}, found {token.describe()}", hint)
        raise self.fail(token, f"expected {text!r} {after}, found {token.describe()}")

    # rule := absent-call END | sum COMPARE number END
    def rule(self) -> Expr:
        left = self.sum()
        token = self.peek
        if isinstance(left, Call) and left.func == "absent":
            if token.kind == "op" and token.text in _COMPARE_OPS:
                raise self.fail(token, "absent(...) is a condition by itself and takes no comparison")
            if token.kind != "end":
                raise self.fail(token, f"unexpected {token.describe()} after absent(...)")
            return Expr(self.source, left)
        if token.kind == "end":
            raise self.fail(
                token,
                "missing comparison",
                "an alert expression ends with a comparison against a number, e.g. '... > 2', or is absent(...)",
            )
        if not (token.kind == "op" and token.text in _COMPARE_OPS):
            raise self.fail(
                token, f"expected an operator (+ - * /) or a comparison (> < >= <= == !=), found {token.describe()}"
            )
        op = cast(CompareOp, self.next().text)
        if not _calls(left):
            raise ExprError(
                "the left side of the comparison has no function of a series", 1, "e.g. rate(metric[5m]) > 1"
            )
        threshold = self.signed_number("the comparison must be against a number")
        token = self.peek
        if token.kind == "op" and token.text in _COMPARE_OPS:
            raise self.fail(token, "only one comparison is allowed")
        if token.kind != "end":
            raise self.fail(token, f"unexpected {token.describe()} after the comparison")
        return Expr(self.source, left, op, threshold)

    def signed_number(self, reason: str) -> float:
        token = self.peek
        sign = 1.0
        if token.kind == "op" and token.text == "-":
            self.next()
            sign = -1.0
        number = self.next()
        if number.kind != "number":
            raise self.fail(number, f"{reason}, found {number.describe()}")
        return sign * float(number.text)

    # sum := product (("+" | "-") product)*
    def sum(self) -> Node:
        node = self.product()
        while self.peek.kind == "op" and self.peek.text in ("+", "-"):
            op = self.next()
            node = self.binary(op, node, self.product())
        return node

    # product := primary (("*" | "/") primary)*
    def product(self) -> Node:
        node = self.primary()
        while self.peek.kind == "op" and self.peek.text in ("*", "/"):
            op = self.next()
            node = self.binary(op, node, self.primary())
        return node

    def binary(self, op: _Token, left: Node, right: Node) -> BinOp:
        for side in (left, right):
            if isinstance(side, Call) and side.func == "absent":
                raise ExprError(
                    "absent(...) is a condition by itself and cannot be combined with operators", side.column
                )
        lby, rby = _by_of(left), _by_of(right)
        if lby and rby and set(lby) != set(rby):
            raise self.fail(
                op,
                f"cannot combine groups by ({', '.join(lby)}) with groups by ({', '.join(rby)})",
                "both sides need the same `by` labels, or one side none",
            )
        by = None if lby is None and rby is None else (lby or rby or ())
        return BinOp(cast(ArithOp, op.text), left, right, by)

    # primary := number | "-" number | "(" sum ")" | call
    def primary(self) -> Node:
        token = self.peek
        if token.kind == "number":
            self.next()
            return Number(float(token.text))
        if token.kind == "op" and token.text == "-":
            return Number(self.signed_number("a '-' sign must stand before a number"))
        if token.kind == "punct" and token.text == "(":
            self.next()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.fail(token, f"parentheses nested deeper than {_MAX_DEPTH}")
            node = self.sum()
            self.expect(")", f"to close the '(' at column {token.column}", in_group=True)
            self.depth -= 1
            return node
        if token.kind == "ident":
            return self.call()
        if token.kind == "duration":
            raise self.fail(token, f"unexpected duration {token.text!r}", "durations go in brackets: metric[5m]")
        if token.kind == "end":
            raise self.fail(token, "unexpected end of the expression")
        raise self.fail(token, f"unexpected {token.describe()}")

    # call := FUNC "(" [number ","] selector "[" duration "]" ")" ["by" "(" label ("," label)* ")"]
    def call(self) -> Call:
        name = self.next()
        if self.peek.text != "(":
            raise self.fail(
                name,
                f"{name.text!r} needs a function around it",
                f"e.g. last({name.text}[5m]) or rate({name.text}[5m]); {_FUNCTION_HINT}",
            )
        if name.text not in FUNCTIONS:
            raise self.fail(name, f"unknown function {name.text!r}", _FUNCTION_HINT)
        self.next()
        q: float | None = None
        if name.text == "quantile":
            q_token = self.peek
            if q_token.kind != "number":
                raise self.fail(q_token, "quantile takes the quantile first", "e.g. quantile(0.99, metric[5m])")
            self.next()
            q = float(q_token.text)
            if not 0 < q < 1:
                raise self.fail(q_token, f"quantile {q_token.text} is not between 0 and 1 (both excluded)")
            self.expect(",", "after the quantile")
        selector = self.selector()
        self.expect("[", "after the selector: a window like [5m]")
        window = self.window()
        self.expect("]", "after the window")
        self.expect(")", f"to close {name.text}(")
        by = self.by()
        if name.text == "absent" and by:
            raise self.fail(name, "absent(...) takes no `by`: a group without samples has no labels to report")
        return Call(name.text, selector, window, by, q, name.column)

    def selector(self) -> Selector:
        token = self.next()
        if token.kind != "ident":
            raise self.fail(token, f"expected a metric name, found {token.describe()}")
        if token.text in FUNCTIONS and self.peek.text == "(":
            raise self.fail(token, 'functions cannot be nested; a function takes a selector like metric{label="v"}[5m]')
        matchers: list[Matcher] = []
        if self.peek.text == "{":
            self.next()
            while self.peek.text != "}":
                matchers.append(self.matcher())
                if self.peek.text == ",":
                    self.next()
                elif self.peek.text != "}":
                    raise self.fail(self.peek, f"expected ',' or '}}' in the selector, found {self.peek.describe()}")
            self.next()
        try:
            return Selector(token.text, tuple(matchers))
        except ValueError as exc:
            raise self.refuse(token, exc) from None

    def matcher(self) -> Matcher:
        label = self.next()
        if label.kind != "ident" or not _LABEL_RE.fullmatch(label.text):
            raise self.fail(label, f"expected a label name, found {label.describe()}")
        op = self.next()
        if op.kind != "op" or op.text not in _MATCH_OPS:
            raise self.fail(op, f"expected =, !=, =~ or !~ after {label.text!r}, found {op.describe()}")
        value = self.next()
        if value.kind != "string":
            raise self.fail(value, f"expected a quoted string after {label.text}{op.text}, found {value.describe()}")
        try:
            return Matcher(label.text, cast(MatchOp, op.text), _unquote(value.text))
        except ValueError as exc:
            raise self.refuse(value, exc) from None

    def window(self) -> float:
        token = self.next()
        if token.kind not in ("duration", "number"):
            raise self.fail(token, f"expected a window like 5m, found {token.describe()}")
        try:
            seconds = parse_duration(token.text)
        except ValueError as exc:
            raise self.refuse(token, exc) from None
        if seconds <= 0:
            raise self.fail(token, "the window must be longer than 0s")
        if seconds > MAX_WINDOW_S:
            raise self.fail(token, f"window {token.text} is longer than the limit of {format_duration(MAX_WINDOW_S)}")
        return seconds

    def by(self) -> tuple[str, ...]:
        if not (self.peek.kind == "ident" and self.peek.text == "by"):
            return ()
        self.next()
        self.expect("(", "after by")
        labels: list[str] = []
        while True:
            token = self.next()
            if token.kind != "ident" or not _LABEL_RE.fullmatch(token.text):
                raise self.fail(token, f"expected a label name in by (...), found {token.describe()}")
            if token.text in labels:
                raise self.fail(token, f"label {token.text!r} appears twice in by (...)")
            labels.append(token.text)
            if self.peek.text == ",":
                self.next()
                if self.peek.text == ")":
                    break
                continue
            break
        self.expect(")", "to close by (...)")
        return tuple(labels)


def parse_expr(source: str) -> Expr:
    """Parse an alert expression; a mistake raises ``ExprError`` with its column and reason."""
    if not isinstance(source, str):
        raise ExprError(f"the expression must be a string, not {type(source).__name__}", 1)
    if not source.strip():
        raise ExprError("the expression is empty", 1)
    if len(source) > _MAX_SOURCE:
        raise ExprError(f"the expression is longer than {_MAX_SOURCE} characters", _MAX_SOURCE + 1)
    return _Parser(source).rule()


# ---- summary templates -------------------------------------------------------------------------

_PLACEHOLDER_RE: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _format_value(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def render_template(template: str, labels: Mapping[str, str], value: float) -> str:
    """``{{ label }}`` → the label's value (empty when missing), ``{{ value }}`` → the value, rounded.

    Plain substitution: no expressions, filters or attribute access, so a label value cannot
    inject anything.
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return _format_value(value) if name == "value" else labels.get(name, "")

    return _PLACEHOLDER_RE.sub(one, template)


def _check_template(template: str, known: set[str]) -> None:
    for match in re.finditer(r"\{\{(.*?)\}\}|\{\{", template, flags=re.DOTALL):
        inner = _PLACEHOLDER_RE.fullmatch(match.group(0))
        if inner is None:
            raise ValueError(
                f"summary: {match.group(0)!r} is not a placeholder; write {{{{ label }}}} or {{{{ value }}}}"
            )
        if inner.group(1) not in known:
            raise ValueError(
                f"summary: unknown placeholder {{{{ {inner.group(1)} }}}}; available: {', '.join(sorted(known))}"
            )


# ---- rules -------------------------------------------------------------------------------------


def _validate_expr(value: Any) -> Expr:
    if isinstance(value, Expr):
        return value
    return parse_expr(value)


def _validate_duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration: write a number and one of the units s, m, h, d (e.g. 30s, 5m)")
    return parse_duration(value)


ExprField = Annotated[Expr, PlainValidator(_validate_expr), PlainSerializer(str, return_type=str)]
DurationField = Annotated[float, PlainValidator(_validate_duration), PlainSerializer(format_duration, return_type=str)]
_NAME_RE: Final = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class Rule(BaseModel):
    """One alert rule of ``infra/alerts/*.yaml``; ``expr`` is parsed, durations are seconds.

    Dumps back to the file's shape (``model_dump(by_alias=True)``: ``expr`` as text, ``for`` as ``"1m"``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)

    name: str
    expr: ExprField
    for_: DurationField = Field(default=0.0, alias="for")
    severity: Severity
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    evaluate_every: DurationField | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value) or len(value) > 64:
            raise ValueError(
                f"{value!r} is not a slug: lower-case letters and digits in words joined by single hyphens, "
                "at most 64 characters (e.g. model-latency-high)"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LABEL_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a label name (letters, digits and _, not starting with a digit)")
            if name in RESERVED_LABELS:
                raise ValueError(f"{name!r} is set by the engine and cannot be a rule label")
        return value

    @field_validator("evaluate_every")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        clash = sorted(set(self.labels) & set(self.expr.by))
        if clash:
            raise ValueError(f"labels: {', '.join(map(repr, clash))} is also a `by` label of the expression")
        known = {*self.expr.by, *self.labels, *RESERVED_LABELS, "value"}
        _check_template(self.summary, known)
        return self

    def render_summary(self, labels: Mapping[str, str], value: float) -> str:
        return render_template(self.summary, labels, value)


# ---- loading -----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (the second would silently win)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.MarkedYAMLError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)

_FIELDS: Final = ", ".join((info.alias or name) for name, info in Rule.model_fields.items())


def _describe(error: ErrorDetails) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown field {loc!r}; fields are {_FIELDS}"
    if kind == "missing":
        return f"{loc}: required"
    if kind == "literal_error" and loc == "severity":
        return f"severity: must be info, warning or critical, not {error['input']!r}"
    if kind == "value_error":
        reason = str(error.get("ctx", {}).get("error", error["msg"]))
        return f"{loc}: {reason}" if loc else reason
    return f"{loc}: {error['msg']}" if loc else error["msg"]


def _load_file(path: Path, problems: list[str]) -> list[Rule]:
    file = str(path)
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        problems.append(f"{file}: cannot read: {exc.strerror or exc}")
        return []
    except yaml.MarkedYAMLError as exc:
        where = f"{file}:{exc.problem_mark.line + 1}" if exc.problem_mark else file
        problems.append(f"{where}: YAML: {exc.problem or exc.context}")
        return []
    except yaml.YAMLError as exc:
        problems.append(f"{file}: YAML: {exc}")
        return []
    if doc is None:
        return []  # an empty file holds no rules
    if not isinstance(doc, dict) or set(doc) != {"rules"} or not isinstance(doc["rules"], list):
        problems.append(f"{file}: the file must be a mapping with the single key 'rules' holding a list of rules")
        return []
    rules: list[Rule] = []
    for index, raw in enumerate(doc["rules"], 1):
        name = raw.get("name") if isinstance(raw, dict) else None
        which = f"rule {name!r}" if isinstance(name, str) else f"rule #{index}"
        if not isinstance(raw, dict):
            problems.append(f"{file}: {which}: a rule must be a mapping")
            continue
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError as exc:
            problems.extend(f"{file}: {which}: {_describe(error)}" for error in exc.errors())
    return rules


def load_rules(directory: Path | Sequence[Path]) -> list[Rule]:
    """The rules of every ``*.yaml`` file in ``directory`` (or in each of several), in order.

    Names are unique across all the files read. All problems found (a missing directory, an
    unreadable file, bad YAML, a bad rule, a name used twice) are raised together as one ``RuleError``.
    """
    directories = [directory] if isinstance(directory, Path) else list(directory)
    problems: list[str] = []
    rules: list[Rule] = []
    where: dict[str, str] = {}
    for folder in directories:
        if not folder.is_dir():
            problems.append(f"{folder}: not a directory")
            continue
        for path in sorted(folder.glob("*.yaml")):
            for rule in _load_file(path, problems):
                if rule.name in where:
                    problems.append(f"{path}: rule {rule.name!r}: name already used in {where[rule.name]}")
                    continue
                where[rule.name] = str(path)
                rules.append(rule)
    if problems:
        raise RuleError(problems)
    return rules
