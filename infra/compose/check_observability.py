"""Parse the observability configs of the compose stack; run by infra/compose/validate.sh.

    python infra/compose/check_observability.py [PROJECT_DIR]

Neither promtool nor otelcol can run here, so this loads every file (infra/prometheus,
infra/otel, infra/grafana) and parses each PromQL expression with promql-parser, a port of
Prometheus' own parser: recording rules, every dashboard target, the templating variables'
`label_values(...)` selectors and the data sources' query templates. Grafana's variables are
replaced by values of the right kind first. Exits 1 naming each file and expression that fails.
What the files mean together (targets per service, metric names, datasources, published ports)
is checked by tests/unit/test_compose.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

# A Grafana variable: `$name` or `${name}` (`${name:format}`); `$$` is provisioning's escaped `$`.
_VARIABLE = re.compile(r"\$?\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<bare>\w+))")
_DURATIONS = {"__rate_interval", "__interval", "__range"}
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.DOTALL)


def promql(expr: str) -> str:
    """``expr`` with Grafana's variables replaced, ready for a PromQL parser."""

    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name in _DURATIONS:
            return "5m"
        if name == "__tags":  # trace to metrics: the span's tags as matchers
            return 'service="x"'
        return "x"  # inside a label value, as in =~"$model"

    return _VARIABLE.sub(value, expr)


def dashboard_exprs(path: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query of a dashboard JSON."""
    board = json.loads(path.read_text())
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r} target {target.get('refId')}", target["expr"]
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = _LABEL_VALUES.match(text)
        if match:
            yield f"variable {variable.get('name')!r}", match.group(1)


def datasource_exprs(path: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of the query templates a provisioned data source holds."""
    for source in yaml.safe_load(path.read_text()).get("datasources", []):
        links = (source.get("jsonData") or {}).get("tracesToMetrics") or {}
        for query in links.get("queries", []):
            yield f"datasource {source.get('name')!r} query {query.get('name')!r}", query["query"]


def rule_exprs(path: Path) -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(path.read_text()).get("groups", []):
        for rule in group.get("rules", []):
            yield f"group {group.get('name')!r} rule {rule.get('record') or rule.get('alert')!r}", rule["expr"]


def check(project: Path) -> list[str]:
    errors: list[str] = []
    exprs: list[tuple[Path, str, str]] = []

    def load(path: Path) -> Any:
        """The file's content, or None after recording why it cannot be used."""
        name = path.relative_to(project)
        try:
            data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError) as exc:
            errors.append(f"{name}: cannot be read: {exc}")
            return None
        if not isinstance(data, dict):
            errors.append(f"{name}: not a mapping")
            return None
        return data

    infra = project / "infra"
    files = [
        infra / "prometheus" / "prometheus.yml",
        infra / "otel" / "collector.yaml",
        *sorted((infra / "prometheus" / "rules").glob("*.yml")),
        *sorted((infra / "grafana" / "provisioning").rglob("*.yaml")),
        *sorted((infra / "grafana" / "dashboards").glob("*.json")),
    ]
    for path in files:
        if load(path) is None:
            continue
        if path.suffix == ".json":
            exprs += [(path, where, expr) for where, expr in dashboard_exprs(path)]
        elif "rules" in path.parts:
            exprs += [(path, where, expr) for where, expr in rule_exprs(path)]
        elif "datasources" in path.parts:
            exprs += [(path, where, expr) for where, expr in datasource_exprs(path)]

    for path, where, expr in exprs:
        try:
            promql_parser.parse(promql(expr))
        except ValueError as exc:
            errors.append(f"{path.relative_to(project)}: {where}: {exc}: {expr}")
    if not exprs:
        errors.append("no PromQL expression found: the dashboards and rules were not read")
    return errors


def main() -> int:
    project = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
    errors = check(project)
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
