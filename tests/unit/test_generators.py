"""``hearth models add-generator`` (shared/generators.py): the model directory it writes.

The GGUF file is the tiny test model (infra/triton/tools/tiny_gguf.py), written and read by the
Triton venv as the command does; loading and generating with it is tests/integration/test_generation.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from services.gateway.inference.lifecycle import declared_parameters
from shared.generators import GeneratorSetupError, estimate_memory_mb, write_generator
from shared.settings import REPO_ROOT

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]

TRITON_PYTHON = REPO_ROOT / ".venv-triton" / "bin" / "python"
CODE_DIR = REPO_ROOT / "infra" / "triton"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TRITON_PYTHON.exists():
        pytest.skip("no .venv-triton: run `make setup`")
    path = tmp_path_factory.mktemp("weights") / "tiny.gguf"
    subprocess.run([str(TRITON_PYTHON), str(CODE_DIR / "tools" / "tiny_gguf.py"), str(path)], check=True, timeout=60)
    return path


def test_the_written_model_is_a_valid_triton_config_the_lifecycle_reads(tiny_gguf: Path, tmp_path: Path) -> None:
    written = write_generator(
        tmp_path, "text_generator", weights=tiny_gguf, code_dir=CODE_DIR, triton_python=TRITON_PYTHON
    )
    assert written["architecture"] == "llama"
    assert written["chat_template"] is True
    assert written["n_ctx"] == 2048  # the model was trained for fewer than the default 4096
    config = text_format.Parse(
        (tmp_path / "text_generator" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    assert config.name == "text_generator"
    assert config.backend == "python"
    assert [i.name for i in config.input] == ["PROMPT", "SYSTEM", "MAX_TOKENS", "TEMPERATURE"]
    assert [o.name for o in config.output] == ["TEXT", "USAGE"]
    params = declared_parameters([tmp_path], "text_generator")
    assert params["weights"] == str(tiny_gguf.resolve())
    assert params["weights_sha256"] == written["sha256"]
    assert params["hearth.task"] == "text-generation"
    assert params["hearth.evictable"] == "true"
    assert params["hearth.memory_mb.gguf"] == str(written["memory_mb"])
    model_py = (tmp_path / "text_generator" / "1" / "model.py").read_text()
    assert str(CODE_DIR) in model_py
    assert "from hearth_triton.generator_model import TritonPythonModel" in model_py


def test_bad_weights_names_and_existing_models_are_refused(tiny_gguf: Path, tmp_path: Path) -> None:
    def add(name: str = "text_generator", weights: Path = tiny_gguf, **kw: object) -> None:
        write_generator(tmp_path, name, weights=weights, code_dir=CODE_DIR, triton_python=TRITON_PYTHON, **kw)  # type: ignore[arg-type]

    with pytest.raises(GeneratorSetupError, match="no such file"):
        add(weights=tmp_path / "missing.gguf")
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(GeneratorSetupError, match="not a GGUF file"):
        add(weights=not_gguf)
    with pytest.raises(GeneratorSetupError, match="lower-case"):
        add(name="Text-Generator")
    with pytest.raises(GeneratorSetupError, match="trained for"):
        add(n_ctx=8192)
    add()
    with pytest.raises(GeneratorSetupError, match="--force"):
        add()
    add(force=True, n_ctx=1024)
    assert declared_parameters([tmp_path], "text_generator")["n_ctx"] == "1024"


def test_memory_estimate_is_weights_plus_kv_cache_plus_overhead() -> None:
    # A 7B-class model: 32 layers, 4096 wide, 8 KV heads of 32 (GQA), 4.1 GB Q4 file, 4096 tokens.
    info = {"size_mb": 4100.0, "block_count": 32, "embedding_length": 4096, "head_count": 32, "head_count_kv": 8}
    assert estimate_memory_mb(info, 4096) == 4100 + 512 + 80 + 8  # rounded up to 10 MB
    assert estimate_memory_mb({"size_mb": 0.1}, 2048) == 90
