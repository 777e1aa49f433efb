"""Text generation from user-supplied GGUF weights with llama.cpp (``llama-cpp-python``).

Hearth ships no generator weights: ``hearth models add-generator --weights FILE.gguf`` writes a
``text_generator`` model into the user model repository that loads them from that path. This
module is what the model runs (``generator_model.py`` is its Triton adapter) and what the command
asks about a file before writing the config (``python -m hearth_triton.generation inspect FILE``).

A model whose GGUF carries a chat template (every instruction-tuned model converted by
llama.cpp's tools does) is prompted through it with a system and a user message; one without
gets the plain text, the system text first.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1024 * 1024
GGUF_MAGIC = b"GGUF"


class GenerationRequestError(ValueError):
    """A request the generator cannot serve as sent (the caller's fault); the message says why."""


def inspect(path: Path) -> dict[str, Any]:
    """What a GGUF file declares: architecture, sizes, context, whether it has a chat template.

    Raises ``ValueError`` naming the problem for a missing file or one that is not GGUF.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file (llama.cpp's format; convert the model with its tools)")
    import gguf  # the Triton venv's; imported here so the magic check needs nothing

    reader = gguf.GGUFReader(str(path))

    def field(key: str) -> Any:
        found = reader.fields.get(key)
        return found.contents() if found is not None else None

    arch = str(field("general.architecture") or "")
    head_count = field(f"{arch}.attention.head_count") or 0
    return {
        "path": str(path),
        "size_mb": round(path.stat().st_size / MB, 1),
        "architecture": arch,
        "name": field("general.name"),
        "context_length": field(f"{arch}.context_length"),
        "block_count": field(f"{arch}.block_count"),
        "embedding_length": field(f"{arch}.embedding_length"),
        "head_count": head_count,
        "head_count_kv": field(f"{arch}.attention.head_count_kv") or head_count,
        "chat_template": field("tokenizer.chat_template") is not None,
        "tensors": len(reader.tensors),
    }


@dataclass(frozen=True)
class GeneratorConfig:
    weights: Path
    n_ctx: int = 4096
    n_threads: int = 0  # 0: llama.cpp's default
    n_gpu_layers: int = 0
    seed: int = 0
    default_max_tokens: int = 256
    max_tokens_limit: int = 1024
    max_seconds: float = 120.0


class Generator:
    """One llama.cpp model in memory; ``generate`` serves one request at a time (not thread-safe)."""

    def __init__(self, config: GeneratorConfig) -> None:
        from llama_cpp import Llama

        if not config.weights.is_file():
            raise FileNotFoundError(
                # Worded without "not found": the gateway would take that for an unknown model.
                f"the generator's weights {config.weights} are missing: the file named by `hearth models "
                "add-generator` was moved or deleted; run the command again with its new path (and --force)"
            )
        self.config = config
        self.llm = Llama(
            model_path=str(config.weights),
            n_ctx=config.n_ctx,
            n_threads=config.n_threads or None,
            n_gpu_layers=config.n_gpu_layers,
            seed=config.seed,
            verbose=False,
        )
        template = self.llm.metadata.get("tokenizer.chat_template")
        self.chat = template is not None
        self._formatter = None
        if template is not None:
            # As llama-cpp-python's own chat handler builds it, but applied here so the prompt's
            # tokens are counted before generating and the time limit applies to chat too.
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos, bos = self.llm.token_eos(), self.llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=self.llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=self.llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )

    def generate(
        self, prompt: str, *, system: str | None = None, max_tokens: int | None = None, temperature: float = 0.0
    ) -> dict[str, Any]:
        """The continuation of ``prompt`` (greedy at temperature 0), its token counts and why it stopped."""
        if not prompt.strip():
            raise GenerationRequestError("PROMPT is empty")
        limit = self.config.max_tokens_limit
        wanted = self.config.default_max_tokens if max_tokens is None or max_tokens <= 0 else max_tokens
        if wanted > limit:
            raise GenerationRequestError(f"MAX_TOKENS {wanted} is over this model's limit of {limit}")
        if not 0.0 <= temperature <= 2.0 or not math.isfinite(temperature):
            raise GenerationRequestError(f"TEMPERATURE must be between 0 and 2, not {temperature}")
        stop: list[str] = []
        criteria: list[Any] = []
        if self._formatter is not None:
            messages = [{"role": "system", "content": system}] if system else []
            messages.append({"role": "user", "content": prompt})
            try:
                formatted = self._formatter(messages=messages)  # type: ignore[arg-type]
            except Exception as exc:  # a template that refuses these messages (e.g. no system role)
                raise GenerationRequestError(f"the model's chat template refused the prompt: {exc}") from None
            tokens = self.llm.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
            )
            stop = [s for s in ([formatted.stop] if isinstance(formatted.stop, str) else formatted.stop or []) if s]
            criteria = list(formatted.stopping_criteria or [])
        else:
            text = f"{system}\n\n{prompt}" if system else prompt
            tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        if len(tokens) + wanted > self.config.n_ctx:
            raise GenerationRequestError(
                f"the prompt has {len(tokens)} tokens; with {wanted} to generate it exceeds the context of "
                f"{self.config.n_ctx} tokens"
            )
        deadline = time.monotonic() + self.config.max_seconds
        timed_out = False

        def past_deadline(_tokens: Any, _logits: Any) -> bool:
            nonlocal timed_out
            timed_out = time.monotonic() > deadline
            return timed_out

        from llama_cpp import StoppingCriteriaList

        started = time.perf_counter()
        try:
            reply: Any = self.llm.create_completion(
                tokens,
                max_tokens=wanted,
                temperature=temperature,
                stop=stop or None,
                stopping_criteria=StoppingCriteriaList([*criteria, past_deadline]),
            )
        except ValueError as exc:  # llama-cpp-python's "Requested tokens (N) exceed context window of M"
            raise GenerationRequestError(str(exc)) from None
        choice = reply["choices"][0]
        output = str(choice["text"] or "")
        usage = reply.get("usage") or {}
        return {
            "text": output.strip(),
            "prompt_tokens": int(usage.get("prompt_tokens", len(tokens))),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "finish_reason": "time" if timed_out else (choice.get("finish_reason") or "stop"),
            "chat_template": self.chat,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m hearth_triton.generation")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("inspect", help="Print what a GGUF file declares, as JSON.")
    check.add_argument("path", type=Path)
    args = parser.parse_args()
    try:
        info = inspect(args.path)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(info))


if __name__ == "__main__":
    main()
