"""Rebuild the read models from a replay into fresh tables and swap them in; checksum; lag.

A rebuild writes into the schema `projection_rebuild` (copies of the four tables and of the
positions, put first on the connection's search_path, so the projector's unqualified SQL lands
there; the archive and the dead letters stay the live ones). Then ONE transaction locks the
live tables, catches up from the archive with whatever the live projector applied meanwhile,
and moves the rebuilt tables into `public` in place of the old ones. Readers see the old tables
or the new ones, never half of either; the live projector waits for the lock, then resumes
from the swapped-in positions.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from coderunner.projections.projector import READ_MODELS, Projector, SourceMessage
from coderunner.projections.store import ReadModelStore, TopicPartition

log = logging.getLogger(__name__)

READ_MODEL_TABLES = ("executions", "execution_steps", "execution_logs", "test_results")
# Locked and swapped in this order: the order the live projector touches them (no deadlock).
SWAPPED_TABLES = ("projection_positions", *READ_MODEL_TABLES)
REBUILD_SCHEMA = "projection_rebuild"
RETIRED_SCHEMA = "projection_retired"
_CHECKSUM_SQL = (
    "SELECT count(*) AS n, md5(coalesce(string_agg(h, '' ORDER BY h), '')) AS d"
    " FROM (SELECT md5(t::text) AS h FROM {table} AS t) AS s"
)
_RAISE_POSITION_SQL = (
    "INSERT INTO {table} (projection, topic, partition, next_offset) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (projection, topic, partition)"
    " DO UPDATE SET next_offset = GREATEST({table}.next_offset, $4)"
)


async def checksum(conn: asyncpg.Connection, schema: str = "public") -> tuple[str, dict[str, int]]:
    """A digest of the four tables' contents and their row counts.

    Independent of physical order (row digests are sorted) and of the session's time zone;
    the tables hold no surrogate ids or projection-time timestamps.
    """
    counts: dict[str, int] = {}
    overall = hashlib.sha256()
    async with conn.transaction():
        await conn.execute("SET LOCAL TimeZone = 'UTC'")
        for table in READ_MODEL_TABLES:
            row = await conn.fetchrow(_CHECKSUM_SQL.format(table=f"{schema}.{table}"))
            assert row is not None
            counts[table] = row["n"]
            overall.update(f"{table}:{row['n']}:{row['d']}\n".encode())
    return overall.hexdigest(), counts


def projection_lag(
    positions: Mapping[TopicPartition, int], end_offsets: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Messages not applied yet, per topic-partition (positions vs the topics' end offsets)."""
    return {tp: max(0, end - positions.get(tp, 0)) for tp, end in sorted(end_offsets.items())}


async def positions(conn: asyncpg.Connection, projection: str = READ_MODELS) -> dict[Any, int]:
    return await ReadModelStore(conn, projection).positions()


async def archive_batches(
    conn: asyncpg.Connection,
    batch_size: int = 5000,
    after: tuple[str, int, int] = ("", -1, -1),
    before: tuple[str, int, int] = ("\U0010ffff", 2**31 - 1, 2**63 - 1),
) -> AsyncIterator[list[SourceMessage]]:
    """The archived events in (topic, partition, offset) order, strictly between two points."""
    last = after
    while True:
        rows = await conn.fetch(
            "SELECT source_topic, source_partition, source_offset, payload FROM public.events"
            " WHERE (source_topic, source_partition, source_offset) > ($1, $2, $3)"
            " AND (source_topic, source_partition, source_offset) < ($4, $5, $6)"
            " ORDER BY source_topic, source_partition, source_offset LIMIT $7",
            *last,
            *before,
            batch_size,
        )
        if not rows:
            return
        last = (rows[-1][0], rows[-1][1], rows[-1][2])
        yield [SourceMessage(r[0], r[1], r[2], None, r[3]) for r in rows]


@asynccontextmanager
async def _borrowed(conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    yield conn


async def rebuild(
    conn: asyncpg.Connection,
    batches: AsyncIterator[list[SourceMessage]] | None,
    submissions_topic: str,
    projection: str = READ_MODELS,
    on_progress: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Replay `batches` (None: the archive) into fresh tables, then swap them in.

    Returns how many messages were replayed, applied, skipped and parked; `on_progress` gets
    the running totals after each batch.
    """
    await _create_rebuild_schema(conn)
    await conn.execute(f"SET search_path = {REBUILD_SCHEMA}, public")
    projector = Projector(
        lambda: _borrowed(conn),
        submissions_topic,
        projection=projection,
        lock_partitions=False,
        archive_by_copy=False,  # the live archive holds the replayed events already
    )
    totals = {"messages": 0, "applied": 0, "skipped": 0, "parked": 0}
    try:
        source = batches if batches is not None else archive_batches(conn)
        async for batch in source:
            result = await projector.apply(batch)
            totals["messages"] += len(batch)
            totals["applied"] += result.applied
            totals["skipped"] += result.skipped
            totals["parked"] += result.parked
            if on_progress is not None:
                on_progress(totals)
        await _swap(conn, projector)
    finally:
        await conn.execute("SET search_path TO DEFAULT")
    return totals


async def _create_rebuild_schema(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {REBUILD_SCHEMA} CASCADE")
        await conn.execute(f"CREATE SCHEMA {REBUILD_SCHEMA}")
        for table in SWAPPED_TABLES:
            await conn.execute(
                f"CREATE TABLE {REBUILD_SCHEMA}.{table} (LIKE public.{table} INCLUDING ALL)"
            )


async def _swap(conn: asyncpg.Connection, projector: Projector) -> None:
    async with conn.transaction():
        await conn.execute(
            "LOCK TABLE "
            + ", ".join(f"public.{t}" for t in SWAPPED_TABLES)
            + " IN ACCESS EXCLUSIVE MODE"
        )
        live = await _positions_in(conn, "public", projector.projection)
        rebuilt = await _positions_in(conn, REBUILD_SCHEMA, projector.projection)
        for (topic, partition), n in sorted(live.items()):
            done = rebuilt.get((topic, partition), 0)
            if done < n:  # what the live projector applied while we replayed
                window = archive_batches(
                    conn, after=(topic, partition, done - 1), before=(topic, partition, n)
                )
                async for batch in window:
                    await projector.apply(batch)
        for (topic, partition), n in live.items():
            await conn.execute(
                _RAISE_POSITION_SQL.format(table=f"{REBUILD_SCHEMA}.projection_positions"),
                projector.projection,
                topic,
                partition,
                n,
            )
        await conn.execute(f"DROP SCHEMA IF EXISTS {RETIRED_SCHEMA} CASCADE")
        await conn.execute(f"CREATE SCHEMA {RETIRED_SCHEMA}")
        for table in SWAPPED_TABLES:
            await conn.execute(f"ALTER TABLE public.{table} SET SCHEMA {RETIRED_SCHEMA}")
            await conn.execute(f"ALTER TABLE {REBUILD_SCHEMA}.{table} SET SCHEMA public")
        await conn.execute(f"DROP SCHEMA {RETIRED_SCHEMA} CASCADE")
        await conn.execute(f"DROP SCHEMA {REBUILD_SCHEMA} CASCADE")
    log.info("rebuilt read models swapped in")


async def _positions_in(
    conn: asyncpg.Connection, schema: str, projection: str
) -> dict[TopicPartition, int]:
    rows = await conn.fetch(
        f"SELECT topic, partition, next_offset FROM {schema}.projection_positions"  # noqa: S608
        " WHERE projection = $1",
        projection,
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
