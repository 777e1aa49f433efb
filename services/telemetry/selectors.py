"""Series selectors and the query protocol the alert evaluator reads through.

A ``Selector`` names a metric and filters its series by label matchers, as PromQL does:
``hearth_http_requests_total{status=~"5..", route!="/health"}``. A label a series does not carry
matches as the empty string, so ``{gpu=""}`` selects the series without a ``gpu`` label.

``SeriesSource`` is what the store offers the evaluator: window aggregations per group, a group
being keyed by the values of the ``by`` labels in their order (``()`` when there is no ``by``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, Protocol, get_args

from shared.durations import format_duration, parse_duration

__all__ = [
    "MAX_REGEX_LENGTH",
    "GaugeAgg",
    "Labels",
    "MatchOp",
    "Matcher",
    "Selector",
    "SeriesSource",
    "format_duration",
    "parse_duration",
]

Labels = dict[str, str]
MatchOp = Literal["=", "!=", "=~", "!~"]
GaugeAgg = Literal["avg", "max", "min", "last"]

MAX_REGEX_LENGTH: Final = 256
_OPS: Final = frozenset(get_args(MatchOp))
_LABEL_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_METRIC_RE: Final = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class Matcher:
    """One label condition: ``=``/``!=`` compare exactly, ``=~``/``!~`` full-match a regex.

    Construction checks the label name, the operator and (for regexes) the length, at most
    ``MAX_REGEX_LENGTH`` characters, and that it compiles; a bad one raises ``ValueError``.
    """

    label: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if not _LABEL_RE.fullmatch(self.label):
            raise ValueError(f"{self.label!r} is not a label name (letters, digits and _, not starting with a digit)")
        if self.op not in _OPS:
            raise ValueError(f"unknown matcher operator {self.op!r}; operators are =, !=, =~, !~")
        if self.op in ("=~", "!~"):
            if len(self.value) > MAX_REGEX_LENGTH:
                raise ValueError(f"regex of {len(self.value)} characters is longer than {MAX_REGEX_LENGTH}")
            try:
                _compiled(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.value!r}: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = _compiled(self.value).fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.label}{self.op}{_quote(self.value)}"


@dataclass(frozen=True)
class Selector:
    """A metric name and the matchers its series' labels must all satisfy."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    def __post_init__(self) -> None:
        if not _METRIC_RE.fullmatch(self.metric):
            raise ValueError(f"{self.metric!r} is not a metric name")

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return name == self.metric and all(m.matches(labels) for m in self.matchers)

    def __str__(self) -> str:
        if not self.matchers:
            return self.metric
        return self.metric + "{" + ", ".join(str(m) for m in self.matchers) + "}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SeriesSource(Protocol):
    """Window aggregations over the stored series, per group of the ``by`` label values.

    ``at`` is a unix timestamp in seconds; the window is ``(at - window_s, at]``. Groups without
    data are omitted, never reported as NaN.
    """

    async def increase(
        self, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> dict[tuple[str, ...], float]:
        """Counter increase over the window per group, across counter resets."""
        ...

    async def quantile(
        self, q: float, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> dict[tuple[str, ...], float]:
        """Histogram quantile of the observations made in the window, per group."""
        ...

    async def gauge(
        self, sel: Selector, window_s: float, at: float, by: tuple[str, ...], agg: GaugeAgg
    ) -> dict[tuple[str, ...], float]:
        """The gauge samples of the window aggregated per group: average, maximum, minimum or latest."""
        ...

    async def count_samples(
        self, sel: Selector, window_s: float, at: float, by: tuple[str, ...]
    ) -> dict[tuple[str, ...], int]:
        """How many samples each group has in the window (what ``absent()`` asks)."""
        ...
