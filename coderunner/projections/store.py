"""SQL of the read models: lock positions, load execution rows, write a batch's row changes.

Rows that may meet an existing row (executions, steps, test results) are written with one
statement per table over arrays (`INSERT ... SELECT * FROM unnest(...) ON CONFLICT ...`):
asyncpg sends the arrays in binary. Insert-only rows (the archive, log chunks) are COPYed
straight into their table inside a savepoint, twice as fast as that INSERT; the rare batch
holding a row that is in already falls back to the idempotent INSERT. Table names are
unqualified, so a rebuild writes into its own schema by putting it first on search_path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg

from coderunner.projections.fold import (
    EXECUTION_COLUMNS,
    LOG_COLUMNS,
    STEP_COLUMNS,
    TEST_COLUMNS,
    ExecutionRow,
    RowChanges,
)

TopicPartition = tuple[str, int]

_TYPES = {
    "attempt": "int",
    "last_seq": "int",
    "seq": "int",
    "exit_code": "int",
    "signal": "int",
    "tests_passed": "int",
    "tests_total": "int",
    "chunk_index": "int",
    "test_index": "int",
    "time_ms": "int",
    "duration_us": "bigint",
    "compile_time_us": "bigint",
    "run_time_us": "bigint",
    "peak_memory_kb": "bigint",
    "submitted_at": "timestamptz",
    "started_at": "timestamptz",
    "completed_at": "timestamptz",
    "occurred_at": "timestamptz",
    "truncated": "boolean",
    "output_truncated": "boolean",
    "extra_files": "jsonb",
    "compiler_options": "jsonb",
    "args": "jsonb",
    "test_cases": "jsonb",
    "requested_limits": "jsonb",
    "limits": "jsonb",
    "compile_limits": "jsonb",
}
ARCHIVE_COLUMNS = (
    "event_id",
    "execution_id",
    "attempt",
    "seq",
    "event_type",
    "occurred_at",
    "source_topic",
    "source_partition",
    "source_offset",
    "payload",
)
_ARCHIVE_TYPES = {"source_partition": "int", "source_offset": "bigint", "payload": "bytea"}
DEADLETTER_COLUMNS = (
    "source_topic",
    "source_partition",
    "source_offset",
    "key",
    "payload",
    "reason",
)
# Two-int advisory lock keys (class, partition number): serialises projector transactions
# that may touch the same executions (same key -> same partition number on both topics).
_PARTITION_LOCK_CLASS = 0x70726A


class ArchivedEvent(NamedTuple):
    """A row of the `events` archive (a tuple: written as it is)."""

    event_id: str
    execution_id: str
    attempt: int
    seq: int
    event_type: str
    occurred_at: Any
    source_topic: str
    source_partition: int
    source_offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """A row of `projection_deadletters`."""

    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    payload: bytes | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Upsert:
    """One INSERT ... SELECT FROM unnest(<one array per column>) ... ON CONFLICT per table."""

    table: str
    columns: tuple[str, ...]
    conflict: str
    types: Mapping[str, str] = field(default_factory=dict)

    @property
    def sql(self) -> str:
        # Identifiers are this module's constants; values travel as binary arrays.
        cols = ", ".join(self.columns)
        arrays = ", ".join(
            f"${i}::{self.types.get(c, _TYPES.get(c, 'text'))}[]"
            for i, c in enumerate(self.columns, 1)
        )
        return (
            f"INSERT INTO {self.table} ({cols}) SELECT * FROM unnest({arrays})"  # noqa: S608
            f" {self.conflict}"
        )


def _update_all(columns: Iterable[str]) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)


_EXECUTIONS = _Upsert(
    "executions",
    EXECUTION_COLUMNS,
    f"ON CONFLICT (execution_id) DO UPDATE SET {_update_all(EXECUTION_COLUMNS[1:])}",
)
# A step's row may come in two batches (started, then completed): merge, never erase.
_STEPS = _Upsert(
    "execution_steps",
    STEP_COLUMNS,
    "ON CONFLICT (execution_id, attempt, step) DO UPDATE SET"
    " seq = COALESCE(execution_steps.seq, EXCLUDED.seq),"
    " status = CASE WHEN EXCLUDED.completed_at IS NULL"
    " AND execution_steps.completed_at IS NOT NULL"
    " THEN execution_steps.status ELSE EXCLUDED.status END,"
    " started_at = COALESCE(EXCLUDED.started_at, execution_steps.started_at),"
    + ",".join(
        f" {c} = COALESCE(EXCLUDED.{c}, execution_steps.{c})"
        for c in ("completed_at", "duration_us", "exit_code", "signal", "message")
    ),
)
_LOGS = _Upsert("execution_logs", LOG_COLUMNS, "ON CONFLICT DO NOTHING")
_TESTS = _Upsert(
    "test_results",
    TEST_COLUMNS,
    "ON CONFLICT (execution_id, attempt, test_index)"
    f" DO UPDATE SET {_update_all(TEST_COLUMNS[3:])}",
)
_ARCHIVE = _Upsert("events", ARCHIVE_COLUMNS, "ON CONFLICT (event_id) DO NOTHING", _ARCHIVE_TYPES)
_INSERT_DEADLETTERS = (
    "INSERT INTO projection_deadletters (projection, source_topic, source_partition,"
    " source_offset, key, payload, reason) SELECT $1, * FROM unnest($2::text[], $3::int[],"
    " $4::bigint[], $5::bytea[], $6::bytea[], $7::text[]) ON CONFLICT DO NOTHING"
)
_LOCK_POSITIONS = (
    "INSERT INTO projection_positions (projection, topic, partition, next_offset)"
    " SELECT $1, t, p, 0 FROM unnest($2::text[], $3::int[]) AS u(t, p) ORDER BY t, p"
    " ON CONFLICT (projection, topic, partition)"
    " DO UPDATE SET next_offset = projection_positions.next_offset"
    " RETURNING topic, partition, next_offset"
)
_SAVE_POSITIONS = (
    "INSERT INTO projection_positions (projection, topic, partition, next_offset)"
    " SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])"
    " ON CONFLICT (projection, topic, partition) DO UPDATE"
    " SET next_offset = GREATEST(projection_positions.next_offset, EXCLUDED.next_offset)"
)
_EXECUTION_LIST = ", ".join(EXECUTION_COLUMNS)
_LOAD_EXECUTIONS = f"SELECT {_EXECUTION_LIST} FROM executions WHERE execution_id = ANY($1)"  # noqa: S608
_CHILD_TABLES = ("execution_steps", "execution_logs", "test_results")


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return list(zip(*rows, strict=True))


def _clean_text(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL: show it as U+FFFD (programs may print it)."""
    if type(value) is str and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _clean_rows(rows: list[tuple[Any, ...]], text_columns: Sequence[int]) -> list[tuple[Any, ...]]:
    """Rows with NUL replaced in the free-text columns (a program's output, its source...)."""
    out = rows
    for i, row in enumerate(rows):
        if any(type(row[c]) is str and "\x00" in row[c] for c in text_columns):
            if out is rows:
                out = list(rows)
            out[i] = tuple(_clean_text(v) for v in row)
    return out


class ReadModelStore:
    """The read-model tables seen through one connection, inside the caller's transaction."""

    def __init__(
        self, conn: asyncpg.Connection, projection: str, archive_by_copy: bool = True
    ) -> None:
        self.conn = conn
        self.projection = projection
        # False when the archive is known to hold the events already (a rebuild replays them).
        self.archive_by_copy = archive_by_copy

    async def lock_partitions(self, partitions: Iterable[int]) -> None:
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock($1, p) FROM unnest($2::int[]) AS p ORDER BY p",
            _PARTITION_LOCK_CLASS,
            sorted(set(partitions)),
        )

    async def lock_positions(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset to apply of each topic-partition, rows locked until commit."""
        ordered = sorted(set(tps))
        rows = await self.conn.fetch(
            _LOCK_POSITIONS, self.projection, [t for t, _ in ordered], [p for _, p in ordered]
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def positions(self) -> dict[TopicPartition, int]:
        rows = await self.conn.fetch(
            "SELECT topic, partition, next_offset FROM projection_positions WHERE projection = $1",
            self.projection,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def load(self, execution_ids: Iterable[str]) -> dict[str, ExecutionRow]:
        rows = await self.conn.fetch(_LOAD_EXECUTIONS, list(set(execution_ids)))
        return {r["execution_id"]: ExecutionRow(*r.values()) for r in rows}

    async def write(
        self,
        changes: RowChanges,
        archive: Sequence[ArchivedEvent],
        parked: Sequence[ParkedEvent],
        positions: dict[TopicPartition, int],
    ) -> None:
        conn = self.conn
        if changes.superseded:
            ids, attempts = list(changes.superseded), list(changes.superseded.values())
            for table in _CHILD_TABLES:
                await conn.execute(
                    f"DELETE FROM {table} AS t USING unnest($1::text[], $2::int[]) AS s(id, a)"  # noqa: S608 - fixed names
                    " WHERE t.execution_id = s.id AND t.attempt < s.a",
                    ids,
                    attempts,
                )
        await self._merge(
            _EXECUTIONS,
            [r.as_tuple() for r in changes.executions.values()],
            _text_columns(EXECUTION_COLUMNS, "source", "stdin", "message", "client"),
        )
        await self._merge(_STEPS, changes.step_rows(), _text_columns(STEP_COLUMNS, "message"))
        logs = _clean_rows(changes.log_rows(), _text_columns(LOG_COLUMNS, "content"))
        await self._append(_LOGS, logs)
        await self._merge(
            _TESTS,
            changes.test_rows(),
            _text_columns(TEST_COLUMNS, "name", "input", "expected_output", "actual_output"),
        )
        if self.archive_by_copy:
            await self._append(_ARCHIVE, archive)
        else:
            await self._merge(_ARCHIVE, archive)
        if parked:
            values = [tuple(getattr(p, c) for c in DEADLETTER_COLUMNS) for p in parked]
            await conn.execute(_INSERT_DEADLETTERS, self.projection, *_columns(values, 6))
        if positions:
            tps = sorted(positions)
            await conn.execute(
                _SAVE_POSITIONS,
                self.projection,
                [t for t, _ in tps],
                [p for _, p in tps],
                [positions[tp] for tp in tps],
            )

    async def _merge(
        self, target: _Upsert, rows: Sequence[tuple[Any, ...]], text_columns: Sequence[int] = ()
    ) -> None:
        if not rows:
            return
        if text_columns:
            rows = _clean_rows(list(rows), text_columns)
        await self.conn.execute(target.sql, *_columns(rows, len(target.columns)))

    async def _append(self, target: _Upsert, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert-only rows (`ON CONFLICT DO NOTHING`): COPY them, twice as fast as the INSERT;
        if some are in already (an event delivered twice at two offsets, a rebuild's replay),
        the COPY fails as a whole inside its savepoint and the idempotent INSERT does it."""
        if not rows:
            return
        try:
            async with self.conn.transaction():  # a savepoint
                await self.conn.copy_records_to_table(
                    target.table, records=rows, columns=target.columns
                )
        except asyncpg.UniqueViolationError:
            await self._merge(target, rows)


def _text_columns(columns: Sequence[str], *names: str) -> tuple[int, ...]:
    return tuple(columns.index(n) for n in names)
