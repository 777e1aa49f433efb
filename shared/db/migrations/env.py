"""Alembic environment: async SQLAlchemy on asyncpg, URL from Hearth settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import HearthSettings, get_settings
from shared.tls import postgres_connect_args

config = context.config


def _settings() -> HearthSettings:
    provided = config.attributes.get("hearth_settings")
    return provided if isinstance(provided, HearthSettings) else get_settings()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    settings = _settings()
    engine = create_async_engine(settings.postgres_dsn(), connect_args=postgres_connect_args(settings))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    # Offline SQL output must not carry the real password.
    context.configure(url=_settings().postgres_dsn(password="***"), literal_binds=True)  # noqa: S106
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
