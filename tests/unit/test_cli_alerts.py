"""``hearth alerts check``: offline validation of alert rule files, every problem with its place."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.settings import REPO_ROOT

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


def test_the_shipped_rules_pass() -> None:
    result = CliRunner().invoke(app, ["alerts", "check", str(REPO_ROOT / "infra" / "alerts")])
    assert result.exit_code == 0, result.output
    assert "model-latency-p99-high" in result.output


def test_a_bad_rule_fails_with_file_rule_and_column(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - name: slow\n    expr: p99(hearth_model_request_duration_seconds[5m]) > 1\n    severity: warning\n"
    )
    result = CliRunner().invoke(app, ["alerts", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.yaml: rule 'slow': expr: unknown function 'p99' at column 1" in result.output.replace("\n", "")
