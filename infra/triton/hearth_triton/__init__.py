"""Shared code of Hearth's python-backend models (runs inside Triton, from ``.venv-triton``).

A model's ``model.py`` puts ``infra/triton`` on ``sys.path`` and imports from here, so adding a
model stays a ``config.pbtxt`` + ``model.py`` job: parameters (:mod:`.params`), variants and their
on-demand quantisation (:mod:`.variants`), ONNX Runtime sessions placed by instance kind
(:mod:`.runtime`), and the OCR pre/post-processing (:mod:`.ocr_layout`, :mod:`.ocr_imaging`).

Only :mod:`.ocr_imaging` imports OpenCV at module level, and only :mod:`.runtime` and
:func:`.variants.build_variant` import ONNX packages (lazily), so the pure helpers are unit-tested
from the services' environment.
"""
