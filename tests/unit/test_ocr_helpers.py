"""Pure helpers of the OCR models and their test data: CER, generator, planning, params, variants."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from shared.settings import REPO_ROOT
from tests.data import generate
from tests.data.textmetrics import cer, edit_distance, normalize

TRITON_DIR = REPO_ROOT / "infra" / "triton"
if str(TRITON_DIR) not in sys.path:
    sys.path.insert(0, str(TRITON_DIR))  # hearth_triton runs in Triton's venv; its pure parts load here too

from hearth_triton.ocr_layout import (  # noqa: E402
    InvalidRequest,
    OcrOptions,
    bucket_for,
    parse_options,
    plan_batches,
    reading_order,
    rec_width,
    validate_buckets,
)
from hearth_triton.params import ConfigError, ModelParams  # noqa: E402
from hearth_triton.repository import override_config, read_config  # noqa: E402
from hearth_triton.runtime import PlacementError, choose_providers  # noqa: E402
from hearth_triton.variants import QuantRecipe, VariantSpec, variant_path, variants_dir  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]
MODELS = TRITON_DIR / "model_repository"


# ---- CER ----------------------------------------------------------------------------------------


def test_edit_distance_counts_insertions_deletions_substitutions() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("合同编号", "合同编号") == 0
    assert edit_distance("合同编号", "合间编") == 2


def test_cer_normalizes_width_forms_and_whitespace() -> None:
    assert normalize("编号\uff1a\uff28\uff34-1 2") == "编号:HT-12"  # full-width colon, H, T
    assert cer("Payment is due", "Paymentis  due") == 0.0
    assert cer(["甲方", "乙方"], "甲方乙方") == 0.0
    assert cer("甲方乙方", "甲方") == 0.5
    assert cer(["甲方", "乙方"], ["乙方", "甲方"]) == 0.5  # lines out of order cost characters
    assert cer("", "") == 0.0
    assert cer("", "x") == 1.0


# ---- generator ----------------------------------------------------------------------------------


def _digests(samples: list[generate.Sample]) -> list[str]:
    return [hashlib.sha256(s.data).hexdigest() for s in samples]


def test_generator_is_deterministic_per_seed() -> None:
    first, second = generate.default_samples(7), generate.default_samples(7)
    assert _digests(first) == _digests(second)
    assert [s.lines for s in first] == [s.lines for s in second]
    other = generate.default_samples(8)
    assert [s.lines for s in other] != [s.lines for s in first]


def test_generator_covers_formats_rotation_and_noise() -> None:
    samples = {s.name: s for s in generate.default_samples()}
    formats = {s.format for s in samples.values()}
    assert formats == {"png", "jpeg", "tiff"}
    assert {s.condition for s in samples.values()} == {"clean", "rotated", "noisy"}
    assert {s.language for s in samples.values()} >= {"zh", "en", "mixed"}
    for sample in samples.values():
        image = Image.open(io.BytesIO(sample.data))
        assert image.format == {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF"}[sample.format]
        assert sample.lines
        assert all(sample.lines)


def test_upside_down_render_is_the_upright_render_turned() -> None:
    upright = generate.render_lines(["甲方应于收到发票后付款"])
    turned = generate.render_lines(["甲方应于收到发票后付款"], upside_down=[0])
    assert turned.tobytes() == upright.rotate(180).tobytes()


def test_cli_writes_images_and_manifest(tmp_path: Path) -> None:
    generate.main(["--out", str(tmp_path), "--seed", "3", "--lines", "2"])
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest) == len(generate.default_samples()) + 2
    for entry in manifest:
        assert (tmp_path / entry["file"]).is_file()
        assert entry["lines"]


# ---- OCR planning ------------------------------------------------------------------------------


def test_rec_width_keeps_aspect_and_caps() -> None:
    assert rec_width(48, 320, 3200) == 320
    assert rec_width(24, 100, 3200) == 200
    assert rec_width(10, 10_000, 3200) == 3200
    assert rec_width(0, 10, 3200) == 1


def test_buckets_and_batches() -> None:
    buckets = (320, 480, 640)
    assert bucket_for(1, buckets) == 320
    assert bucket_for(321, buckets) == 480
    assert bucket_for(5000, buckets) == 640
    plan = plan_batches([100, 500, 330, 600, 20, 20, 20], buckets, max_batch=2)
    assert plan == [(320, [0, 4]), (320, [5, 6]), (480, [2]), (640, [1, 3])]
    assert sorted(i for _, members in plan for i in members) == list(range(7))
    with pytest.raises(ValueError, match="increasing"):
        validate_buckets((480, 320))


def test_reading_order_is_top_down_then_left_to_right() -> None:
    # Two boxes on one line (tops 5 px apart, given right first), one below.
    assert reading_order([(300, 12), (10, 100), (20, 8)]) == [2, 0, 1]
    assert reading_order([]) == []


def test_options_parse_and_reject_clearly() -> None:
    assert parse_options(None) == OcrOptions()
    assert parse_options(b"  ") == OcrOptions()
    assert parse_options(b'{"rotate": false, "text_score": 0.7}') == OcrOptions(rotate=False, text_score=0.7)
    for raw, message in [
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"x": 1}', "unknown key(s) x"),
        (b'{"rotate": 1}', "rotate must be true or false"),
        (b'{"box_thresh": "a"}', "box_thresh must be a number"),
        (b'{"unclip_ratio": 9}', "unclip_ratio must be between 1 and 4"),
    ]:
        with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_options(raw)


# ---- config parameters, variants, placement --------------------------------------------------------


def test_params_types_and_errors() -> None:
    params = ModelParams({"name": "m", "parameters": {"n": {"string_value": "3"}, "b": {"string_value": "off"}}})
    assert params.get_int("n", 0) == 3
    assert params.get_bool("b", True) is False
    assert params.get_ints("missing", (1, 2)) == (1, 2)
    with pytest.raises(ConfigError, match="'n' must be >= 5"):
        params.get_int("n", 0, minimum=5)
    with pytest.raises(ConfigError, match="'b' must be a number"):
        params.get_float("b", 0.0)
    with pytest.raises(ConfigError, match="'x' is required"):
        params.get("x")


def test_variant_selection_follows_the_load_override() -> None:
    base = {"hearth.variants": "fp32,int8", "hearth.default_variant": "fp32"}
    as_params = lambda extra: ModelParams(  # noqa: E731
        {"name": "m", "parameters": {k: {"string_value": v} for k, v in {**base, **extra}.items()}}
    )
    assert as_params({}).variant() == "fp32"
    assert as_params({"variant": "int8"}).variant() == "int8"
    with pytest.raises(ConfigError, match="unknown variant 'fp16'"):
        as_params({"variant": "fp16"}).variant()


def test_recipes_parse_and_name_files(tmp_path: Path) -> None:
    recipe = QuantRecipe.parse("ops=MatMul,Gemm;weights=QInt8")
    assert recipe == QuantRecipe(("MatMul", "Gemm"), "QInt8", False)
    assert QuantRecipe.parse("weights=QUInt8;per_channel=true") == QuantRecipe((), "QUInt8", True)
    assert recipe.tag() != QuantRecipe.parse("weights=QInt8").tag()
    for bad in ("weights=int4", "ops", "colour=red"):
        with pytest.raises(ConfigError):
            QuantRecipe.parse(bad)
    source = tmp_path / "model.onnx"
    source.write_bytes(b"one")
    first = variant_path(source, "int8", recipe, tmp_path / "v")
    source.write_bytes(b"two")
    assert variant_path(source, "int8", recipe, tmp_path / "v") != first  # a new upstream file is rebuilt


def test_variants_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HEARTH_TRITON_VARIANTS_DIR", raising=False)
    monkeypatch.setenv("HEARTH_HOME", str(tmp_path))
    assert variants_dir() == tmp_path / "data" / "triton" / "variants"
    monkeypatch.setenv("HEARTH_TRITON_VARIANTS_DIR", "/v")
    assert variants_dir() == Path("/v")
    assert variants_dir("/explicit") == Path("/explicit")


def test_gpu_instances_need_the_cuda_provider() -> None:
    assert choose_providers("CPU", 0, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    gpu = choose_providers("GPU", 1, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert gpu == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    with pytest.raises(PlacementError, match="onnxruntime-gpu"):
        choose_providers("GPU", 0, ["CPUExecutionProvider"])


# ---- the repository's configs ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ocr_rec", "chinese_ocr_v3"])
def test_model_configs_declare_what_the_lifecycle_manager_reads(model: str) -> None:
    config = read_config(MODELS / model)
    params = ModelParams(config)
    variants = params.get_list("hearth.variants")
    assert variants == ("fp32", "int8")
    assert params.get("hearth.default_variant") in variants
    for variant in variants:
        assert params.get_int(f"hearth.memory_mb.{variant}", 0) > 0
    assert params.get_bool("hearth.evictable", False) is True
    assert config["model_warmup"]
    spec = VariantSpec.from_params(params)
    assert set(spec.recipes) == {"int8"}
    assert spec.sources


def test_chinese_ocr_warmup_file_matches_its_declared_size() -> None:
    config = read_config(MODELS / "chinese_ocr_v3")
    image = config["model_warmup"][0]["inputs"]["IMAGE"]
    warmup = MODELS / "chinese_ocr_v3" / "warmup" / image["input_data_file"]
    assert [int(d) for d in image["dims"]] == [warmup.stat().st_size]
    Image.open(warmup).verify()


def test_recogniser_batch_fits_the_chinese_ocr_requests() -> None:
    rec = read_config(MODELS / "ocr_rec")
    ocr = ModelParams(read_config(MODELS / "chinese_ocr_v3"))
    assert ocr.get_int("rec_batch", 0) <= int(rec["max_batch_size"])
    assert ocr.get("rec_model") == "ocr_rec"
    assert ocr.get("hearth.depends_on") == "ocr_rec"


def test_override_replaces_only_the_named_fields() -> None:
    config = read_config(MODELS / "ocr_rec")
    out = override_config(config, variant="int8", instance_kind="KIND_GPU", instance_count=2, dynamic_batching=False)
    assert out["parameters"]["variant"] == {"string_value": "int8"}
    assert out["instance_group"] == [{"kind": "KIND_GPU", "count": 2}]
    assert "dynamic_batching" not in out
    assert out["input"] == config["input"]
    assert out["output"] == config["output"]
    assert config["parameters"]["variant"] == {"string_value": "fp32"}  # the original is untouched
