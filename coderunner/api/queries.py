"""Read-model queries the API answers from (plain functions over an asyncpg connection).

Rows come back as dicts with the tables' column names (migrations/0002_projections.sql);
`coderunner.api.convert` turns them into protobuf. Lists are keyset-paginated: a page token
is the (submitted_at, execution_id) or chunk_index of the last row sent, plus a digest of the
filters, so a token used with other filters is refused instead of skipping rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from coderunner.errors import InvalidRequest

TERMINAL_STATUSES = frozenset({"completed", "rejected", "cancelled"})
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

_LIST_COLUMNS = (
    "execution_id, status, attempt, language, language_version, client, submitted_at,"
    " started_at, completed_at, verdict, message, reject_field, exit_code, signal, tests_passed,"
    " tests_total, duration_us, compile_time_us, run_time_us, peak_memory_kb, image,"
    " image_digest, worker, limits, compile_limits"
)


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """ListExecutions' filters; an empty tuple or None matches everything."""

    statuses: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    submitted_from: datetime | None = None
    submitted_to: datetime | None = None

    def digest(self) -> str:
        text = json.dumps(asdict(self), default=str, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidRequest("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def encode_token(position: list[Any], digest: str) -> str:
    text = json.dumps({"p": position, "f": digest}, default=str)
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_token(token: str, digest: str) -> list[Any] | None:
    """The position a token holds (None for no token); InvalidRequest if it is not ours."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        position, filters = data["p"], data["f"]
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("page_token", "is not a token this API issued") from None
    if filters != digest or not isinstance(position, list):
        raise InvalidRequest("page_token", "was issued for other filters or another call")
    return position


async def get_execution(conn: asyncpg.Connection, execution_id: str) -> dict[str, Any] | None:
    """The execution row with `steps` and `tests` (rows of its current attempt), or None."""
    row = await conn.fetchrow("SELECT * FROM executions WHERE execution_id = $1", execution_id)
    if row is None:
        return None
    steps = await conn.fetch(
        "SELECT * FROM execution_steps WHERE execution_id = $1 AND attempt = $2"
        " ORDER BY seq NULLS LAST, step",
        execution_id,
        row["attempt"],
    )
    tests = await conn.fetch(
        "SELECT * FROM test_results WHERE execution_id = $1 AND attempt = $2 ORDER BY test_index",
        execution_id,
        row["attempt"],
    )
    return dict(row) | {"steps": [dict(s) for s in steps], "tests": [dict(t) for t in tests]}


async def execution_status(conn: asyncpg.Connection, execution_id: str) -> str | None:
    status: str | None = await conn.fetchval(
        "SELECT status FROM executions WHERE execution_id = $1", execution_id
    )
    return status


async def list_executions(
    conn: asyncpg.Connection, filters: ExecutionFilter, size: int, token: str
) -> tuple[list[dict[str, Any]], str]:
    """One page, newest submission first, and the token of the next page ("" at the end).

    An execution is listed once its submission is projected (it has a `submitted_at`).
    """
    digest = filters.digest()
    after = decode_token(token, digest)
    where, args = _filter_sql(filters)
    if after is not None:
        try:
            at, last_id = datetime.fromisoformat(after[0]), str(after[1])
        except (ValueError, IndexError, TypeError):
            raise InvalidRequest("page_token", "is not a token this API issued") from None
        args += [at, last_id]
        where.append(f"(submitted_at, execution_id) < (${len(args) - 1}, ${len(args)})")
    args.append(size + 1)
    sql = (
        f"SELECT {_LIST_COLUMNS} FROM executions WHERE {' AND '.join(where)}"  # noqa: S608 -- fixed fragments, values are parameters
        f" ORDER BY submitted_at DESC, execution_id DESC LIMIT ${len(args)}"
    )
    rows = [dict(r) for r in await conn.fetch(sql, *args)]
    if len(rows) <= size:
        return rows, ""
    last = rows[size - 1]
    return rows[:size], encode_token(
        [last["submitted_at"].isoformat(), last["execution_id"]], digest
    )


def _filter_sql(filters: ExecutionFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = ["submitted_at IS NOT NULL"]
    args: list[Any] = []
    for column, values in (
        ("status", filters.statuses),
        ("verdict", filters.verdicts),
        ("language", filters.languages),
    ):
        if values:
            args.append(list(values))
            where.append(f"{column} = ANY(${len(args)}::text[])")
    if filters.submitted_from is not None:
        args.append(filters.submitted_from)
        where.append(f"submitted_at >= ${len(args)}")
    if filters.submitted_to is not None:
        args.append(filters.submitted_to)
        where.append(f"submitted_at < ${len(args)}")
    return where, args


async def execution_logs(
    conn: asyncpg.Connection,
    execution_id: str,
    stream: str | None,
    step: str | None,
    size: int,
    token: str,
) -> tuple[list[dict[str, Any]], str]:
    """Log chunks of the current attempt in order, optionally of one stream/step; a page."""
    digest = hashlib.sha256(f"{execution_id}\0{stream}\0{step}".encode()).hexdigest()[:16]
    after = decode_token(token, digest)
    start = int(after[0]) if after else -1
    rows = await conn.fetch(
        "SELECT l.* FROM execution_logs AS l"
        " JOIN executions AS e ON e.execution_id = l.execution_id AND e.attempt = l.attempt"
        " WHERE l.execution_id = $1 AND l.chunk_index > $2"
        " AND ($3::text IS NULL OR l.stream = $3) AND ($4::text IS NULL OR l.step = $4)"
        " ORDER BY l.chunk_index LIMIT $5",
        execution_id,
        start,
        stream,
        step,
        size + 1,
    )
    chunks = [dict(r) for r in rows]
    if len(chunks) <= size:
        return chunks, ""
    return chunks[:size], encode_token([chunks[size - 1]["chunk_index"]], digest)


async def archived_events(
    conn: asyncpg.Connection, execution_id: str
) -> list[tuple[int, int, bytes]]:
    """(attempt, seq, message value) of every event of the execution the projector archived,
    in (attempt, seq) order."""
    rows = await conn.fetch(
        "SELECT attempt, seq, payload FROM events WHERE execution_id = $1 ORDER BY attempt, seq",
        execution_id,
    )
    return [(r["attempt"], r["seq"], bytes(r["payload"])) for r in rows]


# --- for /metrics ------------------------------------------------------------------------------


async def execution_counts(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Number of executions per status, language and verdict ("" where not known)."""
    rows = await conn.fetch(
        "SELECT status, coalesce(language, '') AS language, coalesce(verdict, '') AS verdict,"
        " count(*) AS n FROM executions GROUP BY 1, 2, 3"
    )
    return [dict(r) for r in rows]


async def duration_histogram(
    conn: asyncpg.Connection, bounds_us: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Per language: count and sum of the completed executions' durations (µs), and the
    cumulative count at or below each bound."""
    buckets = ", ".join(
        f"count(*) FILTER (WHERE duration_us <= {int(b)})" for b in bounds_us
    )  # integers of our own: no user input in this SQL
    rows = await conn.fetch(
        f"SELECT coalesce(language, '') AS language, count(*) AS n,"  # noqa: S608 -- see above
        f" coalesce(sum(duration_us), 0) AS total, ARRAY[{buckets}] AS buckets"
        " FROM executions WHERE status = 'completed' AND duration_us IS NOT NULL GROUP BY 1"
    )
    return [dict(r) for r in rows]


async def dead_letter_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Events each projection parked as poison."""
    rows = await conn.fetch(
        "SELECT projection, count(*) AS n FROM projection_deadletters GROUP BY 1"
    )
    return {r["projection"]: r["n"] for r in rows}
