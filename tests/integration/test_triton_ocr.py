"""The OCR models of the Triton model repository, on the real Triton of a launcher-started stack.

Talks KServe v2 HTTP to Triton directly (the gateway is tested on its own) and loads models with
the admin key, as the gateway's lifecycle manager does.

CER bounds: on clean renders PP-OCRv4 reads the generated pages exactly (CER 0.000 with bare
RapidOCR and through Triton), so 0.05 leaves room for a different OpenCV/ONNX Runtime build
without letting a broken pipeline (a lost line alone is > 0.15) pass. The noisy scan costs bare
RapidOCR about 0.03, hence 0.15. int8 must stay within 0.03 of fp32 on the mean over the set
(measured: equal on these pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from statistics import mean

import numpy as np
import pytest
from PIL import Image

from shared.settings import HearthSettings
from tests.data.generate import default_samples, encode, render_lines
from tests.data.textmetrics import cer
from tests.integration.kserve import Triton, TritonError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REC, OCR = "ocr_rec", "chinese_ocr_v3"
CLEAN_CER, NOISY_CER, INT8_MARGIN = 0.05, 0.15, 0.03
SAMPLES = {sample.name: sample for sample in default_samples()}


@pytest.fixture(scope="module")
async def triton(stack: HearthSettings) -> AsyncIterator[Triton]:
    """A client with ocr_rec and chinese_ocr_v3 loaded (fp32); both unloaded afterwards."""
    client = Triton.from_settings(stack)
    try:
        await client.load(REC)
        await client.load(OCR)
        yield client
    finally:
        for model in (OCR, REC):
            with contextlib.suppress(TritonError):
                await client.unload(model)
        await client.aclose()


def _text(result: dict[str, object]) -> list[str]:
    return [line["text"] for line in result["lines"]]  # type: ignore[index]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", [n for n, s in SAMPLES.items() if s.condition == "clean"])
async def test_clean_pages_read_back(triton: Triton, name: str) -> None:
    sample = SAMPLES[name]
    result = await triton.ocr(sample.data)

    assert cer(sample.lines, _text(result)) <= CLEAN_CER, (sample.lines, _text(result))
    assert len(result["lines"]) == len(sample.lines)
    width, height = Image.open(io.BytesIO(sample.data)).size
    assert (result["width"], result["height"]) == (width, height)
    assert result["variant"] == "fp32"
    for line in result["lines"]:
        assert len(line["polygon"]) == 4
        assert all(0 <= x <= width and 0 <= y <= height for x, y in line["polygon"])
        assert 0.5 <= line["confidence"] <= 1.0
    # Reading order: lines go down the page.
    tops = [min(y for _, y in line["polygon"]) for line in result["lines"]]
    assert tops == sorted(tops)
    assert set(result["timings_ms"]) == {"decode", "detect", "classify", "recognize", "total"}


@pytest.mark.timeout(120)
async def test_upside_down_line_is_turned_and_read(triton: Triton) -> None:
    sample = SAMPLES["zh_line_upside_down"]

    result = await triton.ocr(sample.data)
    assert cer(sample.lines, _text(result)) <= CLEAN_CER, _text(result)
    assert [line["angle"] for line in result["lines"]] == [180]

    # Without the direction classifier the same line reads as garbage: the classifier did the work.
    unturned = await triton.ocr(sample.data, {"rotate": False})
    assert cer(sample.lines, _text(unturned)) > 0.5


@pytest.mark.timeout(120)
async def test_noisy_scan_reads_within_bound(triton: Triton) -> None:
    sample = SAMPLES["mixed_scan_noisy"]
    result = await triton.ocr(sample.data)
    assert cer(sample.lines, _text(result)) <= NOISY_CER, _text(result)


@pytest.mark.timeout(120)
async def test_undecodable_image_is_a_client_error_and_the_model_stays_healthy(triton: Triton) -> None:
    with pytest.raises(TritonError) as bad:
        await triton.ocr(b"%PDF-1.7 definitely not an image")
    assert bad.value.status == 400
    assert "not a decodable image" in bad.value.message

    truncated = SAMPLES["zh_contract"].data[:200]
    with pytest.raises(TritonError) as cut:
        await triton.ocr(truncated)
    assert cut.value.status == 400

    assert await triton.ready(OCR)
    good = SAMPLES["zh_contract"]
    assert cer(good.lines, _text(await triton.ocr(good.data))) <= CLEAN_CER


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rotat": True}, "unknown key(s) rotat"),
        ({"rotate": "yes"}, "PARAMS.rotate must be true or false"),
        ({"text_score": 2}, "PARAMS.text_score must be between 0 and 1"),
    ],
)
async def test_bad_params_are_client_errors(triton: Triton, params: dict[str, object], message: str) -> None:
    with pytest.raises(TritonError) as error:
        await triton.ocr(SAMPLES["zh_contract"].data, params)
    assert error.value.status == 400
    assert message in error.value.message


@pytest.mark.timeout(60)
async def test_params_that_are_not_json_are_a_client_error(triton: Triton) -> None:
    inputs = {"IMAGE": np.frombuffer(SAMPLES["zh_contract"].data, dtype=np.uint8), "PARAMS": [b"{rotate"]}
    with pytest.raises(TritonError) as error:
        await triton.infer(OCR, inputs, ["RESULT"])
    assert error.value.status == 400
    assert "PARAMS is not valid JSON" in error.value.message


def _rec_input(text: str, width: int) -> np.ndarray:
    """One line rendered, resized to height 48, scaled to [-1, 1] and padded to ``width`` (ocr_rec's input)."""
    line = render_lines([text], margin=6).convert("RGB")
    resized = line.resize((min(width, round(48 * line.width / line.height)), 48), Image.Resampling.BILINEAR)
    out = np.zeros((3, 48, width), dtype=np.float32)
    out[:, :, : resized.width] = (np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


@pytest.mark.timeout(120)
async def test_recogniser_contract_and_dynamic_batching(triton: Triton) -> None:
    lines = ["合同自双方签字之日起生效", "Payment is due within thirty days"]
    batch = np.stack([_rec_input(text, 640) for text in lines])
    out = await triton.infer(REC, {"LINES": batch}, ["TEXT", "CONFIDENCE"])
    assert out["TEXT"].shape == (2, 1)
    assert out["CONFIDENCE"].shape == (2, 1)
    assert out["CONFIDENCE"].dtype == np.float32
    for expected, got in zip(lines, out["TEXT"].reshape(-1), strict=True):
        assert cer(expected, got.decode()) <= CLEAN_CER

    # 24 single-line requests at once: the batcher merges them into fewer executions.
    before = await triton.stats(REC)
    one = _rec_input(lines[0], 320)[None]
    await asyncio.gather(*(triton.infer(REC, {"LINES": one}, ["TEXT"]) for _ in range(24)))
    after = await triton.stats(REC)
    inferences = int(after["inference_count"]) - int(before["inference_count"])
    executions = int(after["execution_count"]) - int(before["execution_count"])
    # The stack is shared: a document still in flight may call the recogniser meanwhile, and the
    # batcher may merge its lines with these. Unbatched, the 24 alone would take 24 executions.
    assert inferences >= 24
    assert executions < 24, f"no request was batched ({executions} executions for {inferences} inferences)"

    with pytest.raises(TritonError) as narrow:
        await triton.infer(REC, {"LINES": np.zeros((1, 3, 48, 4), dtype=np.float32)}, ["TEXT"])
    assert narrow.value.status == 400
    assert "width must be between" in narrow.value.message


@pytest.mark.timeout(600)
async def test_int8_variants_load_by_config_override_and_stay_close_to_fp32(triton: Triton) -> None:
    samples = list(SAMPLES.values())
    fp32 = [cer(s.lines, _text(await triton.ocr(s.data))) for s in samples]
    try:
        await triton.load_variant(REC, "int8")
        await triton.load_variant(OCR, "int8")
        rec_config = await triton.config(REC)
        assert rec_config["parameters"]["variant"]["string_value"] == "int8"
        int8 = []
        for sample in samples:
            result = await triton.ocr(sample.data)
            assert result["variant"] == "int8"
            int8.append(cer(sample.lines, _text(result)))
    finally:
        await triton.load_from_repository(REC)
        await triton.load_from_repository(OCR)
    assert mean(int8) <= mean(fp32) + INT8_MARGIN, {"fp32": fp32, "int8": int8}
    assert max(int8) <= NOISY_CER, {"fp32": fp32, "int8": int8}
    assert (await triton.ocr(samples[0].data))["variant"] == "fp32"


@pytest.mark.timeout(120)
async def test_unknown_variant_is_refused_with_the_reason(triton: Triton) -> None:
    with pytest.raises(TritonError) as error:
        await triton.load_variant(REC, "fp16")
    assert "unknown variant 'fp16'" in error.value.message
    await triton.load_from_repository(REC)
    assert await triton.ready(REC)


@pytest.mark.timeout(300)
async def test_unload_and_missing_recogniser(triton: Triton) -> None:
    sample = SAMPLES["zh_contract"]
    try:
        # The pipeline without its recogniser answers "unavailable" with the reason, not a crash.
        await triton.unload(REC)
        await triton.wait_state(REC, "UNAVAILABLE")
        with pytest.raises(TritonError) as error:
            await triton.ocr(sample.data)
        assert error.value.status == 503
        assert "'ocr_rec' is not loaded" in error.value.message

        await triton.unload(OCR)
        await triton.wait_state(OCR, "UNAVAILABLE")
        assert not await triton.ready(OCR)

        # chinese_ocr_v3 refuses to load without its recogniser, naming it.
        with pytest.raises(TritonError) as refused:
            await triton.load(OCR)
        assert "ocr_rec" in refused.value.message
        assert "hearth.depends_on" in refused.value.message
    finally:
        await triton.load(REC)
        await triton.load(OCR)
    assert cer(sample.lines, _text(await triton.ocr(sample.data))) <= CLEAN_CER


@pytest.mark.timeout(120)
async def test_every_format_decodes(triton: Triton) -> None:
    page = render_lines(["本协议一式两份双方各执一份"])
    for fmt in ("png", "jpeg", "tiff"):
        result = await triton.ocr(encode(page, fmt))
        assert cer("本协议一式两份双方各执一份", _text(result)) <= CLEAN_CER, (fmt, result)
    # Transparent PNG: text on a transparent background reads as text on white.
    rgba = Image.new("RGBA", page.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(page, lambda px: 255 - px))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    assert cer("本协议一式两份双方各执一份", _text(await triton.ocr(buffer.getvalue()))) <= CLEAN_CER
