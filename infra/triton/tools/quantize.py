"""Build the quantised variants the model repository declares (run with the Triton venv's python).

Every model whose config.pbtxt lists a variant other than fp32 in ``hearth.variants`` gets that
variant of each of its ``hearth.onnx.<role>`` files, made with the ``hearth.quantize.<variant>``
recipe by ONNX Runtime's dynamic quantisation, into the variants directory
(``$HEARTH_HOME/data/triton/variants`` by default). Existing files are kept (their names carry
the source's hash and the recipe). Models build a missing variant at load time too; running this
at setup keeps the first load from doing it (about a second for the OCR models).

    .venv-triton/bin/python infra/triton/tools/quantize.py [--model NAME ...] [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TRITON_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TRITON_DIR))

from hearth_triton.params import ConfigError, ModelParams  # noqa: E402
from hearth_triton.repository import read_config  # noqa: E402
from hearth_triton.variants import FULL_PRECISION, VariantSpec, build_variant, variant_path, variants_dir  # noqa: E402


def build_all(repository: Path, models: list[str], out: Path, *, force: bool) -> int:
    built = 0
    for model_dir in sorted(p for p in repository.iterdir() if (p / "config.pbtxt").is_file()):
        if models and model_dir.name not in models:
            continue
        spec = VariantSpec.from_params(ModelParams(read_config(model_dir)))
        for variant, recipe in spec.recipes.items():
            for role in sorted(spec.sources):
                source = spec.source(role)
                target = variant_path(source, variant, recipe, out)
                if target.exists() and not force:
                    print(f"{spec.model}/{role} {variant}: up to date ({target.name})")
                    continue
                started = time.perf_counter()
                build_variant(source, target, recipe)
                size = target.stat().st_size / 1e6
                print(
                    f"{spec.model}/{role} {variant}: {source.stat().st_size / 1e6:.1f} MB -> {size:.1f} MB "
                    f"in {time.perf_counter() - started:.1f}s ({target})"
                )
                built += 1
        if not spec.recipes:
            print(f"{spec.model}: only {FULL_PRECISION}, nothing to build")
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=TRITON_DIR / "model_repository", help="model repository")
    parser.add_argument("--model", action="append", default=[], help="only this model (repeatable)")
    parser.add_argument(
        "--out", type=Path, default=None, help="variants directory (default: see hearth_triton.variants)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild files that exist")
    args = parser.parse_args()
    out = args.out or variants_dir()
    try:
        build_all(args.repository, args.model, out, force=args.force)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
