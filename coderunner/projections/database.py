"""PostgreSQL connections for the read models, with a reachability check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg

from coderunner.errors import LOCAL_STACK_HINT, ServiceUnavailable
from coderunner.settings import Settings


def describe_dsn(settings: Settings) -> str:
    """host:port/database of the DSN — safe to print, the password never appears."""
    parts = urlsplit(settings.postgres_dsn.get_secret_value())
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


async def connect(settings: Settings, connect_timeout: float = 10.0) -> asyncpg.Connection:
    """One connection, or ServiceUnavailable with a message that carries no secret."""
    try:
        return await asyncpg.connect(
            settings.postgres_dsn.get_secret_value(), timeout=connect_timeout
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise ServiceUnavailable(
            "PostgreSQL", describe_dsn(settings), f"{type(exc).__name__}: {exc}", LOCAL_STACK_HINT
        ) from None


@asynccontextmanager
async def connection(
    settings: Settings, connect_timeout: float = 10.0
) -> AsyncIterator[asyncpg.Connection]:
    """`async with connection(settings) as conn:` — one connection, always closed."""
    conn = await connect(settings, connect_timeout)
    try:
        yield conn
    finally:
        await conn.close()


async def ping_postgres(settings: Settings) -> None:
    async with connection(settings, connect_timeout=5.0) as conn:
        await conn.fetchval("SELECT 1")
