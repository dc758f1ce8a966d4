"""PostgreSQL store of execution claims: runs each execution id once, retries crashed attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from coderunner.errors import LOCAL_STACK_HINT, ServiceUnavailable
from coderunner.handlers.claims import Claim

_CONNECTION_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


@asynccontextmanager
async def _connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; losing PostgreSQL becomes ServiceUnavailable (retried upstream)."""
    try:
        async with pool.acquire() as conn:
            yield conn
    except _CONNECTION_ERRORS as exc:
        raise ServiceUnavailable(
            "PostgreSQL", "the claims store", str(exc), LOCAL_STACK_HINT
        ) from exc


class PostgresClaims:
    def __init__(self, pool: asyncpg.Pool, worker: str) -> None:
        self._pool = pool
        self._worker = worker

    async def claim(self, execution_id: str, submission_event_id: str) -> Claim:
        async with _connection(self._pool) as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO execution_claims"
                " (execution_id, submission_event_id, attempt, state, worker)"
                " VALUES ($1, $2, 1, 'running', $3)"
                " ON CONFLICT (execution_id) DO NOTHING RETURNING attempt",
                execution_id,
                submission_event_id,
                self._worker,
            )
            if row is not None:
                return Claim(run=True, attempt=1)
            current = await conn.fetchrow(
                "SELECT submission_event_id, attempt, state, cancel_reason FROM execution_claims"
                " WHERE execution_id = $1 FOR UPDATE",
                execution_id,
            )
            assert current is not None  # the insert conflicted with it
            if current["state"] == "cancelled":
                # Its own attempt number: after any attempt a dead worker had started.
                attempt = current["attempt"] + 1
                await self._set(conn, execution_id, attempt, "cancelled")
                return Claim(run=False, attempt=attempt, cancelled=current["cancel_reason"])
            if (
                current["submission_event_id"] != submission_event_id
                or current["state"] == "finished"
            ):
                return Claim(run=False, attempt=current["attempt"])
            attempt = current["attempt"] + 1
            await self._set(conn, execution_id, attempt, "running")
            return Claim(run=True, attempt=attempt)

    async def cancel(self, execution_id: str, reason: str) -> None:
        async with _connection(self._pool) as conn:
            await conn.execute(
                "INSERT INTO execution_claims"
                " (execution_id, submission_event_id, attempt, state, worker, cancel_reason)"
                " VALUES ($1, '', 0, 'cancelled', $2, $3)"
                " ON CONFLICT (execution_id) DO UPDATE"
                " SET state = 'cancelled', cancel_reason = $3, updated_at = now()"
                " WHERE execution_claims.state = 'running'",
                execution_id,
                self._worker,
                reason,
            )

    async def next_attempt(self, execution_id: str, attempt: int) -> None:
        async with _connection(self._pool) as conn:
            await self._set(conn, execution_id, attempt, "running")

    async def finish(self, execution_id: str) -> None:
        async with _connection(self._pool) as conn:
            await conn.execute(
                "UPDATE execution_claims SET state = 'finished', updated_at = now()"
                " WHERE execution_id = $1",
                execution_id,
            )

    async def _set(
        self, conn: asyncpg.Connection, execution_id: str, attempt: int, state: str
    ) -> None:
        await conn.execute(
            "UPDATE execution_claims SET attempt = $2, state = $3, worker = $4, updated_at = now()"
            " WHERE execution_id = $1",
            execution_id,
            attempt,
            state,
            self._worker,
        )
