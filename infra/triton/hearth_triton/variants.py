"""Model variants: the shipped fp32 ONNX files, and quantised ones the project builds from them.

A model declares its ONNX files and recipes in its config ``parameters``::

    hearth.onnx.<role>         package-relative (``rapidocr_onnxruntime/models/x.onnx``) or absolute
    hearth.variants            e.g. ``fp32,int8``; ``fp32`` is always the shipped file
    hearth.quantize.<variant>  e.g. ``ops=MatMul,Gemm;weights=QInt8`` (ONNX Runtime dynamic quantisation)

A quantised file is named after its source's SHA-256 and the recipe, so a new upstream model or a
changed recipe never reuses a stale file. Files live in the variants directory (see
:func:`variants_dir`); ``infra/triton/tools/quantize.py`` builds them at setup time, and a model
that finds its file missing at load builds it then (a few seconds for the OCR models).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .params import ConfigError, ModelParams

FULL_PRECISION = "fp32"
_WEIGHT_TYPES = ("QInt8", "QUInt8")


@dataclass(frozen=True)
class QuantRecipe:
    """How to build a variant with ``onnxruntime.quantization.quantize_dynamic``."""

    op_types: tuple[str, ...]  # empty: every operator type ONNX Runtime can quantise
    weight_type: str = "QInt8"
    per_channel: bool = False

    @classmethod
    def parse(cls, spec: str) -> QuantRecipe:
        """Parse ``ops=MatMul,Gemm;weights=QInt8;per_channel=false`` (every field optional)."""
        fields: dict[str, str] = {}
        for part in spec.split(";"):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(f"quantisation recipe {spec!r}: expected key=value, got {part!r}")
            fields[key.strip()] = value.strip()
        unknown = set(fields) - {"ops", "weights", "per_channel"}
        if unknown:
            raise ConfigError(f"quantisation recipe {spec!r}: unknown field(s) {', '.join(sorted(unknown))}")
        weight_type = fields.get("weights", "QInt8")
        if weight_type not in _WEIGHT_TYPES:
            raise ConfigError(f"quantisation recipe {spec!r}: weights must be one of {', '.join(_WEIGHT_TYPES)}")
        ops = tuple(op.strip() for op in fields.get("ops", "").split(",") if op.strip())
        per_channel = fields.get("per_channel", "false").lower() in {"true", "1", "yes"}
        return cls(ops, weight_type, per_channel)

    def tag(self) -> str:
        """Short stable digest of the recipe, part of the variant's file name."""
        text = f"{','.join(self.op_types)}|{self.weight_type}|{self.per_channel}"
        return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class VariantSpec:
    """A model's declared ONNX files (by role) and quantisation recipes (by variant)."""

    model: str
    sources: dict[str, str]
    recipes: dict[str, QuantRecipe]
    variants: tuple[str, ...]

    @classmethod
    def from_params(cls, params: ModelParams) -> VariantSpec:
        variants = params.get_list("hearth.variants", (FULL_PRECISION,))
        if FULL_PRECISION not in variants:
            raise ConfigError(f"model {params.model_name!r}: hearth.variants must include {FULL_PRECISION!r}")
        prefix = "hearth.onnx."
        sources = {key[len(prefix) :]: params.get(key) for key in params if key.startswith(prefix)}
        recipes = {}
        for variant in variants:
            if variant == FULL_PRECISION:
                continue
            key = f"hearth.quantize.{variant}"
            if key not in params:
                raise ConfigError(f"model {params.model_name!r}: variant {variant!r} needs parameter {key!r}")
            recipes[variant] = QuantRecipe.parse(params.get(key))
        return cls(params.model_name, sources, recipes, variants)

    def source(self, role: str) -> Path:
        if role not in self.sources:
            raise ConfigError(f"model {self.model!r}: config parameter 'hearth.onnx.{role}' is required")
        return resolve_source(self.sources[role])


def resolve_source(spec: str) -> Path:
    """An absolute path, or ``<package>/<path inside it>`` resolved without importing the package."""
    path = Path(spec)
    if path.is_absolute():
        resolved = path
    else:
        package, _, inner = spec.partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(f"ONNX source {spec!r}: package {package!r} is not installed in the Triton environment")
        resolved = Path(next(iter(found.submodule_search_locations))) / inner
    if not resolved.is_file():
        raise ConfigError(f"ONNX source {spec!r}: {resolved} does not exist")
    return resolved


def variants_dir(explicit: str | None = None) -> Path:
    """Where built variants are cached.

    ``explicit`` (the ``hearth.variants_dir`` parameter), else ``$HEARTH_TRITON_VARIANTS_DIR``,
    else ``$HEARTH_HOME/data/triton/variants`` (the launcher passes ``HEARTH_HOME`` to Triton),
    else ``~/.cache/hearth/triton-variants``.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get("HEARTH_TRITON_VARIANTS_DIR"):
        return Path(os.environ["HEARTH_TRITON_VARIANTS_DIR"])
    if os.environ.get("HEARTH_HOME"):
        return Path(os.environ["HEARTH_HOME"]) / "data" / "triton" / "variants"
    return Path.home() / ".cache" / "hearth" / "triton-variants"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def variant_path(source: Path, variant: str, recipe: QuantRecipe, directory: Path) -> Path:
    return directory / f"{source.stem}.{file_digest(source)[:12]}.{variant}-{recipe.tag()}.onnx"


def model_file(spec: VariantSpec, role: str, variant: str, directory: Path, *, build: bool = True) -> Path:
    """The ONNX file of ``role`` for ``variant``: the shipped file for fp32, else the built one."""
    source = spec.source(role)
    if variant == FULL_PRECISION:
        return source
    if variant not in spec.recipes:
        raise ConfigError(
            f"model {spec.model!r}: unknown variant {variant!r} (hearth.variants: {', '.join(spec.variants)})"
        )
    target = variant_path(source, variant, spec.recipes[variant], directory)
    if not target.exists():
        if not build:
            raise FileNotFoundError(f"variant {variant!r} of {source.name} is not built: {target}")
        build_variant(source, target, spec.recipes[variant])
    return target


def build_variant(source: Path, target: Path, recipe: QuantRecipe) -> Path:
    """Quantise ``source`` into ``target`` (atomically; concurrent builders each write a temp file)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantised = Path(tmp) / "quantised.onnx"
        model = onnx.load(str(source))
        _constants_to_initializers(model)
        onnx.save(model, str(prepared))
        quantize_dynamic(
            str(prepared),
            str(quantised),
            op_types_to_quantize=list(recipe.op_types) or None,
            weight_type=QuantType[recipe.weight_type],
            per_channel=recipe.per_channel,
        )
        result = onnx.load(str(quantised))
        # Keep the source's metadata (the recogniser's character dictionary lives there).
        present = {prop.key for prop in result.metadata_props}
        for prop in model.metadata_props:
            if prop.key not in present:
                result.metadata_props.add(key=prop.key, value=prop.value)
        onnx.save(result, str(quantised))
        os.replace(quantised, target)
    target.with_suffix(".json").write_text(
        json.dumps(
            {
                "source": str(source),
                "source_sha256": file_digest(source),
                "op_types": list(recipe.op_types),
                "weight_type": recipe.weight_type,
                "per_channel": recipe.per_channel,
                "bytes": target.stat().st_size,
            },
            indent=2,
        )
        + "\n"
    )
    return target


def _constants_to_initializers(model: object) -> None:
    """Turn ``Constant`` nodes into graph initializers.

    Paddle2ONNX exports (the PP-OCR models) hold their weights in ``Constant`` nodes, which
    ``quantize_dynamic`` skips ("Expected ... to be an initializer"), leaving the model unquantised.
    """
    graph = model.graph  # type: ignore[attr-defined]
    kept = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = graph.initializer.add()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
