"""Routes and the NATS endpoint of the inference plane: parse, call ModelService, map."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.enums import RequestEncodingType
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.params import Body
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry import trace

from services.gateway.inference.canary import CanaryRequest
from services.gateway.inference.devices import inventory
from services.gateway.inference.kserve import (
    HEADER_LENGTH,
    binary_response,
    parse_binary_request,
    parse_request,
    wants_binary,
)
from services.gateway.inference.ocr import OcrResult, recognise
from services.gateway.inference.service import LoadRequest, ModelService, ModelState
from shared.errors import BadRequest, HearthError
from shared.tracing import extract_context, get_tracer

_tracer = get_tracer(__name__)
log = structlog.get_logger("gateway.inference")

INFER_SUBJECT = "hearth.infer"
INFER_QUEUE = "hearth.infer"


def _tensor_schema(data: bool) -> Schema:
    properties: dict[str, Schema | Reference] = {
        "name": Schema(type=OpenAPIType.STRING),
        "shape": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.INTEGER)),
        "datatype": Schema(type=OpenAPIType.STRING, examples=["FP32", "INT64", "UINT8", "BYTES"]),
        "parameters": Schema(
            type=OpenAPIType.OBJECT, description="`binary_data_size` when the values follow in binary"
        ),
    }
    if data:
        properties["data"] = Schema(type=OpenAPIType.ARRAY, description="Values, row-major (nested or flat)")
    return Schema(type=OpenAPIType.OBJECT, required=["name", "shape", "datatype"], properties=properties)


_INFER_HEADER = Schema(
    type=OpenAPIType.OBJECT,
    required=["inputs"],
    properties={
        "id": Schema(type=OpenAPIType.STRING),
        "inputs": Schema(type=OpenAPIType.ARRAY, items=_tensor_schema(data=True)),
        "outputs": Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(
                type=OpenAPIType.OBJECT,
                properties={
                    "name": Schema(type=OpenAPIType.STRING),
                    "parameters": Schema(type=OpenAPIType.OBJECT, description="`binary_data: true` for binary"),
                },
            ),
        ),
        "parameters": Schema(type=OpenAPIType.OBJECT),
    },
)


@dataclass
class _InferOperation(Operation):
    """The infer route reads its body raw (for the binary extension); this documents what it takes."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="KServe v2 inference request. JSON, or the binary tensor extension: the JSON header "
            "(its length in `Inference-Header-Content-Length`) followed by the tensors' raw bytes.",
            content={
                "application/json": OpenAPIMediaType(schema=_INFER_HEADER),
                "application/octet-stream": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                ),
            },
        )


class ModelsController(Controller):
    path = "/v1/models"
    tags = ["models"]

    @get("/", summary="Every model with its state, versions, request counts and cold start")
    async def list_models(self, model_service: ModelService) -> list[ModelState]:
        return await model_service.list_models()

    @get("/{name:str}", summary="One model")
    async def get_model(self, model_service: ModelService, name: str) -> ModelState:
        return await model_service.get_model(name)

    @post(
        "/{name:str}/load",
        status_code=200,
        summary="Load a model, or hot-switch its version, variant or device (admin)",
    )
    async def load(self, model_service: ModelService, name: str, data: LoadRequest | None = None) -> ModelState:
        return await model_service.load(name, data)

    @post(
        "/{name:str}/canary",
        status_code=200,
        summary="Canary release: a share of traffic to a new version, promoted or rolled back automatically (admin)",
    )
    async def canary(self, model_service: ModelService, name: str, data: CanaryRequest) -> ModelState:
        return await model_service.start_canary(name, data)

    @post("/{name:str}/rollback", status_code=200, summary="Serve the version that served before (admin)")
    async def rollback(self, model_service: ModelService, name: str) -> ModelState:
        return await model_service.rollback(name)

    @post("/{name:str}/unload", status_code=200, summary="Unload a model (admin)")
    async def unload(self, model_service: ModelService, name: str) -> ModelState:
        return await model_service.unload(name)

    @post(
        "/{name:str}/infer",
        status_code=200,
        summary="KServe v2 inference (JSON)",
        description="Loads the model on its first request. JSON, or the binary tensor extension "
        "(`Inference-Header-Content-Length`; outputs in binary with `binary_data: true`). Errors: 404 unknown "
        "model, 400 wrong tensor name/shape/dtype, 503 with Retry-After when Triton is down.",
        operation_class=_InferOperation,
    )
    async def infer(self, model_service: ModelService, name: str, request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.body()
        header = request.headers.get(HEADER_LENGTH)
        if header is None:
            response, _ = await model_service.infer(name, parse_request(body))
            return Response(response)
        if not header.isdigit():
            raise BadRequest(f"Inference-Header-Content-Length must be a number, not {header!r}")
        infer_request, raw = parse_binary_request(body, int(header))
        response, arrays = await model_service.infer(name, infer_request, raw_inputs=raw)
        binary = {o.name for o in response.outputs if wants_binary(infer_request, o.name)}
        if not binary:
            return Response(response)
        content, length = binary_response(response, arrays, binary)
        return Response(
            content,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(length)},
        )


@get("/v1/devices", tags=["models"], summary="Devices models can be placed on: the CPU, NVIDIA GPUs via NVML")
async def devices() -> list[dict[str, Any]]:
    return [d.to_dict() for d in await asyncio.to_thread(inventory)]


@post(
    "/v1/ocr",
    tags=["ocr"],
    status_code=200,
    summary="OCR of an uploaded image (PNG, JPEG, TIFF): lines with polygon, text and confidence",
    description="Runs chinese_ocr_v3 (PP-OCRv4 detection, direction classifier, recogniser) in Triton. "
    "400 for an empty or undecodable upload, 413 over 32 MiB.",
)
async def ocr(
    model_service: ModelService,
    data: Annotated[UploadFile, Body(media_type=RequestEncodingType.MULTI_PART)],
) -> OcrResult:
    return await recognise(model_service, await data.read())


def dependencies(model_service: ModelService) -> dict[str, Provide]:
    return {"model_service": Provide(lambda: model_service, use_cache=True, sync_to_thread=False)}


async def serve_nats(nc: NatsClient, model_service: ModelService) -> Subscription:
    """``hearth.infer.<model>``: KServe v2 in, ``{"ok": true, "result": <response>}`` (JSON) out.

    The request is KServe v2 JSON, or the binary tensor extension when the message carries an
    ``Inference-Header-Content-Length`` header (the JSON header's length; binary inputs follow it),
    so images travel as bytes rather than as JSON lists of numbers. Services call models here,
    never Triton directly; the queue group spreads requests over gateways.
    """

    async def handle(msg: Msg) -> None:
        model = msg.subject.removeprefix(f"{INFER_SUBJECT}.")
        context = extract_context(msg.headers)
        with _tracer.start_as_current_span(f"infer {model}", context=context, kind=trace.SpanKind.SERVER):
            body = await answer(model, msg)
        if msg.reply:
            await msg.respond(body)

    async def answer(model: str, msg: Msg) -> bytes:
        try:
            header_length = _header_length(msg.headers)
            if header_length is None:
                request, raw = parse_request(msg.data), None
            else:
                request, raw = parse_binary_request(msg.data, header_length)
            response, _ = await model_service.infer(model, request, raw_inputs=raw)
            body = b'{"ok":true,"result":' + response.model_dump_json().encode() + b"}"
        except HearthError as err:
            body = json.dumps({"ok": False, "error": err.to_dict()}).encode()
        except Exception:
            log.exception("inference over NATS failed", model=model)
            error: dict[str, Any] = HearthError("inference failed unexpectedly; see the gateway log").to_dict()
            body = json.dumps({"ok": False, "error": error}).encode()
        return body

    return await nc.subscribe(f"{INFER_SUBJECT}.*", queue=INFER_QUEUE, cb=handle)


def _header_length(headers: dict[str, str] | None) -> int | None:
    for name, value in (headers or {}).items():
        if name.lower() == HEADER_LENGTH:
            try:
                return int(value)
            except ValueError:
                raise BadRequest(f"Inference-Header-Content-Length {value!r} is not a number") from None
    return None
