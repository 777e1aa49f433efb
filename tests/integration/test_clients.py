"""Clients built from settings reach the real servers with least privilege."""

from __future__ import annotations

import uuid

import hvac.exceptions
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from shared.clients import postgres_engine, temporal_client, vault_client
from shared.settings import REPO_ROOT, SERVICES, HearthSettings

pytestmark = pytest.mark.integration


def test_each_service_has_an_approle_that_can_use_transit_but_not_administer(stack: HearthSettings) -> None:
    for service in SERVICES:
        assert stack.secret_path(f"approle-{service}.json").stat().st_mode & 0o777 == 0o600
    client = vault_client(stack, "ocr")
    assert client.is_authenticated()
    key = f"hearth-tenant-test-{uuid.uuid4().hex[:8]}"  # the policy allows tenant keys only
    client.secrets.transit.encrypt_data(name=key, plaintext="AA==")  # creates the tenant key (upsert)
    datakey = client.secrets.transit.generate_data_key(name=key, key_type="plaintext")["data"]
    assert datakey["ciphertext"].startswith("vault:v1:")
    with pytest.raises(hvac.exceptions.Forbidden):
        client.sys.list_mounted_secrets_engines()
    with pytest.raises(hvac.exceptions.Forbidden):  # rotation and deletion are keyadmin's
        client.secrets.transit.rotate_key(name=key)
    with pytest.raises(hvac.exceptions.Forbidden):  # keys are not configured through transit/keys/
        client.secrets.transit.create_key(name=f"hearth-tenant-other-{uuid.uuid4().hex[:8]}")
    with pytest.raises(hvac.exceptions.Forbidden):  # and only tenant keys exist for services
        client.secrets.transit.encrypt_data(name=f"other-{uuid.uuid4().hex[:8]}", plaintext="AA==")


async def test_postgres_engine_runs_as_the_service_role(stack: HearthSettings) -> None:
    engine = postgres_engine(stack)
    try:
        async with engine.connect() as conn:
            user = (await conn.execute(text("SELECT current_user"))).scalar_one()
            revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            superuser = (
                await conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert user == stack.postgres_user
    head = ScriptDirectory(str(REPO_ROOT / "shared" / "db" / "migrations")).get_current_head()
    assert revision == head
    assert superuser is False


async def test_temporal_client_reaches_the_namespace(stack: HearthSettings) -> None:
    client = await temporal_client(stack)
    assert client.namespace == stack.temporal_namespace
    assert await client.service_client.check_health()
