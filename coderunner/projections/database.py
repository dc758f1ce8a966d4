"""PostgreSQL connections for the read models, with a reachability check.

TLS is configured by the DSN alone: Settings puts POSTGRES_SSLMODE and POSTGRES_SSLROOTCERT in its
query (sslmode=, sslrootcert=), which asyncpg reads on every path, pools included.
"""

from __future__ import annotations

import ssl
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
    except (
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.ClientConfigurationError,  # e.g. verify-full with no root certificate at all
    ) as exc:
        raise ServiceUnavailable(
            "PostgreSQL",
            describe_dsn(settings),
            f"{type(exc).__name__}: {exc}",
            _hint(exc, settings),
        ) from None


def _hint(exc: BaseException, settings: Settings) -> str:
    """How to fix it: a TLS failure is a matter of settings, not of a stopped server."""
    rootcert = settings.postgres_dsn_param("sslrootcert")
    tls = isinstance(exc, ssl.SSLError | asyncpg.ClientConfigurationError) or (
        # asyncpg loads sslrootcert itself and reports a missing file without naming it
        isinstance(exc, FileNotFoundError) and rootcert is not None
    )
    if not tls:
        return LOCAL_STACK_HINT
    return (
        "Check POSTGRES_SSLMODE and POSTGRES_SSLROOTCERT (root certificate in use:"
        f" {rootcert or 'none'}): verify-ca and verify-full need a readable file with the CA that"
        " signed the server's certificate (the local stack's is .stack/postgres/tls/ca.pem)."
    )


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
