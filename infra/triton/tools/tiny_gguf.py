"""Write a tiny llama-architecture GGUF whose greedy output is known: a test model, no download.

Every layer's attention output and feed-forward down projections are zero, so the residual stream
at the last position is that token's embedding. Each token of a fixed answer has its own embedding
axis, every other token shares axis 0, and the output matrix maps each axis to the next token of
the answer: whatever the prompt (as long as it does not end inside the answer), greedy decoding
writes ``ANSWER`` and then the end-of-sequence token. The tokenizer is SentencePiece-style
(``llama``) with byte fallback, so any UTF-8 prompt tokenizes. About 100 KB.

Run in the Triton venv: ``.venv-triton/bin/python infra/triton/tools/tiny_gguf.py OUT.gguf``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gguf
import numpy as np

# The answer, as SentencePiece pieces ("▁" is a space); "[1]" cites the first passage of a prompt.
ANSWER_PIECES = ("▁The", "▁answer", "▁is", "▁in", "▁[1]", ".")
ANSWER = "The answer is in [1]."
# A minimal chat template (Jinja, as in Hugging Face tokenizer configs), so the chat path is exercised.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

N_EMBD = 32
N_HEAD = 4
N_FF = 64
N_CTX = 2048


def vocabulary() -> tuple[list[bytes], list[float], list[int]]:
    """Tokens, scores and token types: <unk>, <s>, </s>, the 256 byte tokens, the answer's pieces."""
    tokens = [b"<unk>", b"<s>", b"</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for byte in range(256):
        tokens.append(f"<0x{byte:02X}>".encode())
        types.append(gguf.TokenType.BYTE)
    for piece in ANSWER_PIECES:
        tokens.append(piece.encode())
        types.append(gguf.TokenType.NORMAL)
    scores = [0.0] * 259 + [-float(i) for i in range(len(ANSWER_PIECES))]
    return tokens, scores, [int(t) for t in types]


def write(path: Path, *, chat_template: bool = True) -> Path:
    tokens, scores, types = vocabulary()
    vocab = len(tokens)
    answer_ids = list(range(259, 259 + len(ANSWER_PIECES)))
    eos = 2

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("hearth-tiny-test")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(1)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(eos)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template:
        writer.add_chat_template(CHAT_TEMPLATE)

    # Axis 0: any token outside the answer; axis k + 1: the answer's k-th piece.
    embeddings = np.zeros((vocab, N_EMBD), dtype=np.float32)
    embeddings[:, 0] = 1.0
    output = np.zeros((vocab, N_EMBD), dtype=np.float32)
    output[answer_ids[0], 0] = 1.0
    for k, token in enumerate(answer_ids):
        embeddings[token] = 0.0
        embeddings[token, k + 1] = 1.0
        following = answer_ids[k + 1] if k + 1 < len(answer_ids) else eos
        output[following, k + 1] = 1.0
    rng = np.random.default_rng(0)
    square = (N_EMBD, N_EMBD)
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v"):
        writer.add_tensor(f"blk.0.{name}.weight", rng.normal(0, 0.1, square).astype(np.float32))
    writer.add_tensor("blk.0.attn_output.weight", np.zeros(square, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_gate.weight", rng.normal(0, 0.1, (N_FF, N_EMBD)).astype(np.float32))
    writer.add_tensor("blk.0.ffn_up.weight", rng.normal(0, 0.1, (N_FF, N_EMBD)).astype(np.float32))
    writer.add_tensor("blk.0.ffn_down.weight", np.zeros((N_EMBD, N_FF), dtype=np.float32))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--no-chat-template", action="store_true", help="Leave the chat template out.")
    args = parser.parse_args()
    print(write(args.out, chat_template=not args.no_chat_template))


if __name__ == "__main__":
    main()
