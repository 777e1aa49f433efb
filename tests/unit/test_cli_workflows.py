"""``hearth workflows validate``: offline checks of definition files, problems with file and line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.settings import REPO_ROOT

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

TEST_MODELS = REPO_ROOT / "tests" / "data" / "triton_models"

GOOD = """\
workflows:
  cli_good:
    steps:
      - double:
          type: infer
          model: double
          inputs:
            X: {datatype: FP32, shape: [1, 4], data: "${input.x}"}
      - keep:
          type: store
          collection: cli_good
          data: {y: "${steps.double.output.outputs.Y}"}
"""

BAD = """\
workflows:
  cli_bad:
    steps:
      - first:
          type: store
          collection: cli_bad
          data: {a: 1}
      - guess:
          type: infer
          model: no_such_model
          inputs: {X: {datatype: FP32, shape: [1], data: [1]}}
      - later:
          type: store
          collection: cli_bad
          data: {b: "${steps.nowhere.output}"}
"""


@pytest.fixture
def definitions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A definitions directory with one good and one bad file, configured as the only one."""
    for var in [v for v in os.environ if v.startswith("HEARTH_")]:
        monkeypatch.delenv(var)
    directory = tmp_path / "defs"
    directory.mkdir()
    (directory / "good.yaml").write_text(GOOD)
    (directory / "bad.yaml").write_text(BAD)
    monkeypatch.setenv("HEARTH_WORKFLOW_DEFINITIONS", str(directory))
    # The good file's model is one of the tests' models: it passes only if those are checked against.
    monkeypatch.setenv("HEARTH_TRITON_EXTRA_MODEL_REPOSITORIES", str(TEST_MODELS))
    return directory


def test_a_good_file_is_ok_with_its_workflows(definitions: Path) -> None:
    result = CliRunner().invoke(app, ["workflows", "validate", str(definitions / "good.yaml")])
    assert result.exit_code == 0, result.output
    assert f"ok {definitions / 'good.yaml'}: cli_good" in result.stdout


def test_a_bad_file_fails_naming_each_problem_with_its_line(definitions: Path) -> None:
    bad = definitions / "bad.yaml"
    result = CliRunner().invoke(app, ["workflows", "validate", str(definitions / "good.yaml"), str(bad)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"ok {definitions / 'good.yaml'}: cli_good" in lines
    model = next(line for line in lines if "no_such_model" in line)
    assert model.startswith(f"{bad}:10: ")
    assert "not in the model repository" in model
    reference = next(line for line in lines if "nowhere" in line)
    assert reference.startswith(f"{bad}:15: ")


def test_without_files_every_configured_directory_is_checked(definitions: Path) -> None:
    result = CliRunner().invoke(app, ["workflows", "validate"])
    assert result.exit_code == 1
    assert "ok " in result.stdout
    assert ": cli_good" in result.stdout
    assert "bad.yaml:10: " in result.stdout
    (definitions / "bad.yaml").unlink()
    assert CliRunner().invoke(app, ["workflows", "validate"]).exit_code == 0


def test_a_missing_file_is_a_problem(tmp_path: Path, definitions: Path) -> None:
    result = CliRunner().invoke(app, ["workflows", "validate", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert "absent.yaml: cannot read" in result.stdout


def test_the_cli_loads_without_importing_the_workflow_engine() -> None:
    probe = "import sys, shared.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'workflows'))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
