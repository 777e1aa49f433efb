"""A text-generation model from the user's own weights, as a Triton model directory.

Hearth ships no generator: ``hearth models add-generator --weights FILE.gguf`` checks the file
with the Triton venv (``hearth_triton.generation inspect``) and writes ``<name>/config.pbtxt`` and
``<name>/1/model.py`` into the user model repository (``$HEARTH_HOME/data/triton/models``), which
Triton serves beside the platform's. Until then no generator exists and ``/v1/ask`` answers
extractively. The weights stay where they are; the config names their path and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any, Final

DEFAULT_GENERATOR: Final = "text_generator"
DEFAULT_CONTEXT: Final = 4096  # tokens, unless the model was trained for fewer
MODEL_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class GeneratorSetupError(ValueError):
    """The generator cannot be added as asked; the message says why and what to do."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def inspect_weights(triton_python: Path, code_dir: Path, weights: Path) -> dict[str, Any]:
    """What the GGUF file declares, read by the Triton venv (where the ``gguf`` package lives)."""
    if not triton_python.exists():
        raise GeneratorSetupError(f"the Triton environment is missing ({triton_python}): run `make setup`")
    result = subprocess.run(
        [str(triton_python), "-m", "hearth_triton.generation", "inspect", str(weights)],
        cwd=code_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise GeneratorSetupError((result.stderr.strip() or result.stdout.strip()).removeprefix("error: "))
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def estimate_memory_mb(info: dict[str, Any], n_ctx: int) -> int:
    """Resident memory once loaded, rounded up to 10 MB: the weights (read through mmap, all touched
    by the first token), the f16 KV cache of ``n_ctx`` tokens, ~80 MB of stub, Python and buffers."""
    layers = int(info.get("block_count") or 0)
    embd = int(info.get("embedding_length") or 0)
    heads = int(info.get("head_count") or 1) or 1
    kv_heads = int(info.get("head_count_kv") or heads)
    kv_mb = 2 * layers * n_ctx * (embd * kv_heads // heads) * 2 / (1024 * 1024)
    return int(math.ceil((float(info.get("size_mb") or 0) + kv_mb + 80) / 10) * 10)


def _quote(value: str) -> str:
    return json.dumps(value)  # a protobuf text-format string literal for paths and names


def render_config(
    name: str,
    *,
    weights: Path,
    sha256: str,
    memory_mb: int,
    n_ctx: int,
    n_threads: int,
    info: dict[str, Any],
) -> str:
    """The model's ``config.pbtxt``: inputs, outputs, the weights and what the lifecycle manager reads."""
    params = {
        "weights": str(weights),
        "weights_sha256": sha256,
        "n_ctx": str(n_ctx),
        "n_threads": str(n_threads),
        "default_max_tokens": "256",
        "max_tokens_limit": "1024",
        "max_seconds": "120",
        "variant": "gguf",
        "hearth.variants": "gguf",
        "hearth.default_variant": "gguf",
        "hearth.memory_mb.gguf": str(memory_mb),
        "hearth.evictable": "true",
        "hearth.task": "text-generation",
    }
    lines = [
        f"# Written by `hearth models add-generator` from {weights.name} ({info.get('architecture')}, "
        f"{info.get('size_mb')} MB, chat template: {str(bool(info.get('chat_template'))).lower()}).",
        "# Run the command again (with --force) to change it; edit n_threads or n_ctx here and reload.",
        f"name: {_quote(name)}",
        'backend: "python"',
        "# One prompt per request: llama.cpp holds one context, so requests are generated in turn.",
        "max_batch_size: 0",
        "input [",
        '  { name: "PROMPT" data_type: TYPE_STRING dims: [ 1 ] },',
        '  { name: "SYSTEM" data_type: TYPE_STRING dims: [ 1 ] optional: true },',
        '  { name: "MAX_TOKENS" data_type: TYPE_INT32 dims: [ 1 ] optional: true },',
        '  { name: "TEMPERATURE" data_type: TYPE_FP32 dims: [ 1 ] optional: true }',
        "]",
        "output [",
        '  { name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] },',
        '  { name: "USAGE" data_type: TYPE_STRING dims: [ 1 ] }',
        "]",
        "instance_group [ { kind: KIND_CPU count: 1 } ]",
        "# memory_mb: the weights (mmap, all read by the first token) + the f16 KV cache of n_ctx tokens",
        "# + ~80 MB; an estimate until the gateway has measured the loaded model.",
    ]
    lines += [f"parameters {{ key: {_quote(k)} value: {{ string_value: {_quote(v)} }} }}" for k, v in params.items()]
    return "\n".join(lines) + "\n"


def render_model_py(code_dir: Path) -> str:
    """``1/model.py``: the shipped model code, found in this checkout's ``infra/triton``."""
    return (
        '"""Written by `hearth models add-generator`: the code is hearth_triton/generator_model.py."""\n\n'
        "import sys\n\n"
        f"if {str(code_dir)!r} not in sys.path:\n"
        f"    sys.path.insert(0, {str(code_dir)!r})\n\n"
        "from hearth_triton.generator_model import TritonPythonModel  # noqa: E402, F401\n"
    )


def write_generator(
    repository: Path,
    name: str,
    *,
    weights: Path,
    code_dir: Path,
    triton_python: Path,
    n_ctx: int | None = None,
    n_threads: int = 0,
    force: bool = False,
) -> dict[str, Any]:
    """Check ``weights`` and write the model directory; returns what was written (for the CLI to show)."""
    if not MODEL_NAME.match(name):
        raise GeneratorSetupError(f"model name {name!r}: lower-case letters, digits and _, starting with a letter")
    weights = weights.expanduser().resolve()
    info = inspect_weights(triton_python, code_dir, weights)
    trained = info.get("context_length") if isinstance(info.get("context_length"), int) else None
    if n_ctx is None:
        n_ctx = min(DEFAULT_CONTEXT, trained or DEFAULT_CONTEXT)
    elif trained is not None and n_ctx > trained:
        raise GeneratorSetupError(f"--n-ctx {n_ctx} is more than the model was trained for ({trained} tokens)")
    model_dir = repository / name
    if (model_dir / "config.pbtxt").exists() and not force:
        raise GeneratorSetupError(f"{model_dir} exists: pass --force to replace it")
    sha256 = sha256_of(weights)
    config = render_config(
        name,
        weights=weights,
        sha256=sha256,
        memory_mb=estimate_memory_mb(info, n_ctx),
        n_ctx=n_ctx,
        n_threads=n_threads,
        info=info,
    )
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    (model_dir / "1" / "model.py").write_text(render_model_py(code_dir))
    (model_dir / "config.pbtxt").write_text(config)
    return {
        **info,
        "weights": info["path"],
        "name": name,
        "path": str(model_dir),
        "sha256": sha256,
        "n_ctx": n_ctx,
        "memory_mb": estimate_memory_mb(info, n_ctx),
    }
