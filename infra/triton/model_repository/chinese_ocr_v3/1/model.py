"""chinese_ocr_v3: image bytes in, text lines out (PP-OCRv4: DBNet detection, direction classifier,
recognition through the batched ``ocr_rec`` model over BLS). See ../README.md for the contract."""

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

if str(Path(__file__).resolve().parents[3]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # infra/triton: hearth_triton

from hearth_triton.ocr_imaging import (
    Detector,
    DirectionClassifier,
    crop,
    decode_image,
    prepare_page,
    rec_tensor,
    to_original,
)
from hearth_triton.ocr_layout import (
    DEFAULT_WIDTH_BUCKETS,
    InvalidRequest,
    OcrOptions,
    parse_options,
    plan_batches,
    rec_width,
    validate_buckets,
)
from hearth_triton.params import ModelParams
from hearth_triton.runtime import create_session
from hearth_triton.variants import VariantSpec, model_file, variants_dir


class RecognizerUnavailable(RuntimeError):
    """The recogniser model is not loaded (the lifecycle manager unloaded or never loaded it)."""


class TritonPythonModel:
    def initialize(self, args):
        params = ModelParams(args["model_config"])
        self.variant = params.variant()
        spec = VariantSpec.from_params(params)
        directory = variants_dir(params.get("hearth.variants_dir", "") or None)
        self.detector = Detector(create_session(model_file(spec, "det", self.variant, directory), args, params))
        self.classifier = DirectionClassifier(
            create_session(model_file(spec, "cls", self.variant, directory), args, params)
        )
        self.rec_model = params.get("rec_model", "ocr_rec")
        self.rec_batch = params.get_int("rec_batch", 16, minimum=1)
        self.buckets = validate_buckets(params.get_ints("rec_width_buckets", DEFAULT_WIDTH_BUCKETS))
        self.max_pixels = params.get_int("max_pixels", 50_000_000, minimum=1)
        self.defaults = OcrOptions(
            text_score=params.get_float("text_score", 0.5),
            box_thresh=params.get_float("box_thresh", 0.5),
            unclip_ratio=params.get_float("unclip_ratio", 1.6),
        )
        if not pb_utils.is_model_ready(self.rec_model):
            raise RuntimeError(
                f"the recogniser model {self.rec_model!r} is not loaded; load it before {args['model_name']!r} "
                "(config parameter hearth.depends_on)"
            )
        pb_utils.Logger.log_info(f"{args['model_instance_name']}: variant {self.variant}, recogniser {self.rec_model}")

    async def execute(self, requests):
        # Concurrently, so one request's detection runs while another's crops are being recognised.
        return list(await asyncio.gather(*(self._answer(request) for request in requests)))

    async def _answer(self, request):
        try:
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            params = pb_utils.get_input_tensor_by_name(request, "PARAMS")
            raw_params = params.as_numpy().reshape(-1)[0] if params is not None and params.as_numpy().size else None
            result = await self._ocr(image, parse_options(raw_params, self.defaults))
        except InvalidRequest as exc:
            return _error(str(exc), pb_utils.TritonError.INVALID_ARG)
        except RecognizerUnavailable as exc:
            return _error(str(exc), pb_utils.TritonError.UNAVAILABLE)
        except Exception as exc:
            pb_utils.Logger.log_error(f"chinese_ocr_v3: {type(exc).__name__}: {exc}")
            return _error(f"OCR failed: {type(exc).__name__}: {exc}", pb_utils.TritonError.INTERNAL)
        payload = json.dumps(result, ensure_ascii=False).encode("utf-8")
        return pb_utils.InferenceResponse([pb_utils.Tensor("RESULT", np.array([payload], dtype=np.object_))])

    async def _ocr(self, raw, options):
        clock = time.perf_counter()
        started = clock
        timings = {}

        def lap(name):
            nonlocal clock
            now = time.perf_counter()
            timings[name] = round((now - clock) * 1000, 2)
            clock = now

        image = decode_image(raw, self.max_pixels)
        height, width = image.shape[:2]
        lap("decode")
        page = prepare_page(image)
        quads = self.detector(page.image, options)
        lap("detect")
        crops = [crop(page.image, quad) for quad in quads]
        angles = self.classifier(crops) if options.rotate and crops else [0] * len(crops)
        lap("classify")
        texts = await self._recognize(crops)
        lap("recognize")
        polygons = to_original(np.array(quads), page, width, height) if quads else []
        lines = [
            {
                "polygon": np.rint(polygon).astype(int).tolist(),
                "text": text,
                "confidence": round(confidence, 4),
                "angle": angle,
            }
            for polygon, (text, confidence), angle in zip(polygons, texts, angles, strict=True)
            if text and confidence >= options.text_score
        ]
        timings["total"] = round((time.perf_counter() - started) * 1000, 2)
        return {"width": width, "height": height, "variant": self.variant, "lines": lines, "timings_ms": timings}

    async def _recognize(self, crops):
        """All crops of the image in bucket-width requests to the recogniser, sent together."""
        if not crops:
            return []
        widths = [rec_width(c.shape[0], c.shape[1], self.buckets[-1]) for c in crops]
        plan = plan_batches(widths, self.buckets, self.rec_batch)
        results = await asyncio.gather(
            *(
                self._recognize_batch(rec_tensor([crops[i] for i in members], [widths[i] for i in members], bucket))
                for bucket, members in plan
            )
        )
        texts = [("", 0.0)] * len(crops)
        for (_, members), decoded in zip(plan, results, strict=True):
            for index, value in zip(members, decoded, strict=True):
                texts[index] = value
        return texts

    async def _recognize_batch(self, tensor):
        request = pb_utils.InferenceRequest(
            model_name=self.rec_model,
            requested_output_names=["TEXT", "CONFIDENCE"],
            inputs=[pb_utils.Tensor("LINES", np.ascontiguousarray(tensor, dtype=np.float32))],
        )
        response = await request.async_exec()
        if response.has_error():
            message = response.error().message()
            if not pb_utils.is_model_ready(self.rec_model):
                raise RecognizerUnavailable(f"the recogniser model {self.rec_model!r} is not loaded: {message}")
            raise RuntimeError(f"recogniser {self.rec_model!r}: {message}")
        text = pb_utils.get_output_tensor_by_name(response, "TEXT").as_numpy().reshape(-1)
        confidence = pb_utils.get_output_tensor_by_name(response, "CONFIDENCE").as_numpy().reshape(-1)
        return [(t.decode("utf-8"), float(c)) for t, c in zip(text, confidence, strict=True)]


def _error(message, code):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
