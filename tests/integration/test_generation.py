"""Generative answers on the real stack: a GGUF the test writes, llama.cpp in Triton, /v1/ask.

The model is infra/triton/tools/tiny_gguf.py's (100 KB, built here, nothing downloaded): its greedy
output is always "The answer is in [1].", so the test knows what Triton must generate and which
passage the answer cites. ``hearth models add-generator`` writes it into the stack's user model
repository under a name of this test's own, so other tests' questions (mode auto, default
generator) stay extractive; the directory is removed at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.clients import postgres_engine
from shared.identity.apikeys import ApiKeyStore
from shared.settings import REPO_ROOT, HearthSettings
from tests.integration.conftest import hearth_cli
from tests.integration.test_search import INVOICE, LEASE, NDA, add

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

ANSWER = "The answer is in [1]."
TINY_GGUF = REPO_ROOT / "infra" / "triton" / "tools" / "tiny_gguf.py"


def _add_generator(stack: HearthSettings, env: dict[str, str], weights: Path, name: str) -> Path:
    result = hearth_cli(env, "models", "add-generator", "--weights", str(weights), "--name", name)
    assert "chat template: yes" in " ".join(result.stdout.split()), result.stdout
    return stack.triton_user_model_repository / name


def _remove(stack: HearthSettings, admin: dict[str, str], model_dir: Path) -> None:
    httpx.post(f"{stack.gateway_url}/v1/models/{model_dir.name}/unload", headers=admin, timeout=60)
    shutil.rmtree(model_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def admin(stack: HearthSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.read_secret('admin-api-key')}"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, stack: HearthSettings) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.gguf"
    python = stack.triton_venv / "bin" / "python"
    subprocess.run([str(python), str(TINY_GGUF), str(path)], check=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def generator(
    stack: HearthSettings, stack_environment: dict[str, str], weights: Path, admin: dict[str, str]
) -> Iterator[str]:
    model_dir = _add_generator(stack, stack_environment, weights, f"gen_{uuid.uuid4().hex[:8]}")
    yield model_dir.name
    _remove(stack, admin, model_dir)


@pytest.fixture(scope="module")
async def engine(stack: HearthSettings) -> AsyncIterator[AsyncEngine]:
    db = postgres_engine(stack, pool_size=2)
    yield db
    await db.dispose()


async def _tenant_client(stack: HearthSettings, engine: AsyncEngine) -> httpx.AsyncClient:
    created = await ApiKeyStore(engine).create(
        f"test-gen-{uuid.uuid4().hex[:6]}", "user", tenant=f"t-{uuid.uuid4().hex[:8]}"
    )
    return httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {created.key}"}, timeout=120
    )


def test_triton_loads_the_users_weights_and_generates_through_the_gateway(
    stack: HearthSettings, generator: str, weights: Path, admin: dict[str, str]
) -> None:
    body = {
        "inputs": [
            {"name": "PROMPT", "datatype": "BYTES", "shape": [1], "data": ["合同金额是多少？"]},
            {"name": "MAX_TOKENS", "datatype": "INT32", "shape": [1], "data": [16]},
        ]
    }
    resp = httpx.post(f"{stack.gateway_url}/v1/models/{generator}/infer", json=body, headers=admin, timeout=120)
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o["data"][0] for o in resp.json()["outputs"]}
    assert outputs["TEXT"] == ANSWER
    assert '"finish_reason": "stop"' in outputs["USAGE"]
    assert weights.name in outputs["USAGE"]
    model = httpx.get(f"{stack.gateway_url}/v1/models/{generator}", headers=admin, timeout=30).json()
    assert model["state"] == "READY"
    assert model["cold_start_ms"] is not None
    # Bad input is the caller's: problem details naming the limit, not a 500.
    too_long = {"inputs": [*body["inputs"][:1], {**body["inputs"][1], "data": [5000]}]}
    bad = httpx.post(f"{stack.gateway_url}/v1/models/{generator}/infer", json=too_long, headers=admin, timeout=60)
    assert bad.status_code == 400, bad.text
    assert "limit of 1024" in bad.json()["detail"]


async def test_ask_generates_from_the_callers_passages_and_cites_only_them(
    stack: HearthSettings, engine: AsyncEngine, generator: str
) -> None:
    mine, theirs = await _tenant_client(stack, engine), await _tenant_client(stack, engine)
    try:
        own = {await add(mine, LEASE, "lease.txt"), await add(mine, INVOICE, "invoice.txt")}
        other = await add(theirs, NDA.replace("Acme Robotics", "Acme Leasing"), "their-nda.txt")
        question = {"question": "租金是多少？", "generator": generator, "top_k": 5}
        resp = await mine.post("/v1/ask", json=question)
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert (answer["mode"], answer["source"], answer["answer"]) == ("generative", "generated", ANSWER)
        assert answer["note"] is None
        assert [c["ref"] for c in answer["citations"]] == [1]
        assert {c["document_id"] for c in answer["citations"]} <= own
        assert answer["generator"]["model"] == generator
        assert answer["generator"]["version"] == "1"
        assert answer["generator"]["weights"]["file"] == "tiny.gguf"
        assert len(answer["generator"]["weights"]["sha256"]) == 64
        assert 1 <= answer["generator"]["passages"] <= 5
        # The other tenant's question gets its own document, never the caller's.
        theirs_answer = (await theirs.post("/v1/ask", json={**question, "question": "Who is the recipient?"})).json()
        assert {c["document_id"] for c in theirs_answer["citations"]} == {other}
        # Asked for extractive, the same question is answered without the generator.
        extractive = (await mine.post("/v1/ask", json={**question, "mode": "extractive"})).json()
        assert (extractive["mode"], extractive["generator"]) == ("extractive", None)
        assert extractive["citations"][0]["document_id"] in own
        # Bad input: problem details.
        for bad in ({**question, "mode": "creative"}, {**question, "max_tokens": 0}, {**question, "generator": "x-y"}):
            refused = await mine.post("/v1/ask", json=bad)
            assert refused.status_code == 400, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
        unknown = await mine.post("/v1/ask", json={**question, "generator": "legal_doc_analyzer"})
        assert unknown.status_code == 400
        assert "no text-generation model" in unknown.json()["detail"]
    finally:
        await mine.aclose()
        await theirs.aclose()


async def test_a_generator_that_cannot_load_gives_an_extractive_answer_with_a_note(
    stack: HearthSettings, stack_environment: dict[str, str], engine: AsyncEngine, weights: Path, admin: dict[str, str]
) -> None:
    moved = weights.with_name("moved.gguf")
    shutil.copy(weights, moved)
    model_dir = _add_generator(stack, stack_environment, moved, f"gen_{uuid.uuid4().hex[:8]}")
    moved.unlink()  # the user moved the file after adding it
    http = await _tenant_client(stack, engine)
    try:
        await add(http, LEASE, "lease.txt")
        resp = await http.post("/v1/ask", json={"question": "租金是多少？", "generator": model_dir.name})
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["mode"] == "extractive"
        assert answer["citations"]
        assert f"the generator {model_dir.name} failed" in answer["note"]
        assert "weights" in answer["note"]
        assert "are missing" in answer["note"]
    finally:
        await http.aclose()
        _remove(stack, admin, model_dir)
