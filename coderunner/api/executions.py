"""What the API does, as plain functions over its backends (the servicer only translates)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from coderunner.api import queries
from coderunner.api.live import LiveEvents
from coderunner.errors import ExecutionEnded, ExecutionNotFound
from coderunner.handlers.validation import plan_execution
from coderunner.languages import Language, languages
from coderunner.schemas import events as ev
from coderunner.schemas.codec import SchemaRegistry
from coderunner.settings import Settings
from coderunner.streams.client import TERMINAL, ExecutionClient

# How long a watcher waits for the projector to archive events it saw skipped live.
GAP_FILL_SECONDS = 5.0
# A watcher with no live event for this long looks in the archive: the events published
# between its archive read and its follow (e.g. the terminal one) are there once projected.
ARCHIVE_POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Backends:
    """Everything the API's operations use; built once by the server from Settings."""

    settings: Settings
    pool: asyncpg.Pool
    client: ExecutionClient
    live: LiveEvents
    registry: SchemaRegistry


async def submit(b: Backends, submission: ev.ExecutionSubmitted) -> str:
    """Validate as the worker would (InvalidSubmission names the field), publish, return the
    id. Publishing an id again is harmless: the worker's claims run each id once."""
    plan_execution(submission, languages(), b.settings)
    await b.client.publish(submission)
    return submission.execution_id


async def get_execution(b: Backends, execution_id: str) -> dict[str, Any]:
    async with b.pool.acquire() as conn:
        row = await queries.get_execution(conn, execution_id)
    if row is None:
        raise ExecutionNotFound(execution_id)
    return row


async def list_executions(
    b: Backends, filters: queries.ExecutionFilter, page_size: int, page_token: str
) -> tuple[list[dict[str, Any]], str]:
    size = queries.page_size(page_size)
    async with b.pool.acquire() as conn:
        return await queries.list_executions(conn, filters, size, page_token)


async def execution_logs(
    b: Backends,
    execution_id: str,
    stream: str | None,
    step: str | None,
    page_size: int,
    page_token: str,
) -> tuple[list[dict[str, Any]], str]:
    size = queries.page_size(page_size)
    async with b.pool.acquire() as conn:
        if await queries.execution_status(conn, execution_id) is None:
            raise ExecutionNotFound(execution_id)
        return await queries.execution_logs(conn, execution_id, stream, step, size, page_token)


async def cancel(b: Backends, execution_id: str, reason: str, by: str | None) -> None:
    """Ask the worker to stop a queued or running execution (it answers ExecutionCancelled)."""
    async with b.pool.acquire() as conn:
        status = await queries.execution_status(conn, execution_id)
    if status is None:
        raise ExecutionNotFound(execution_id)
    if status in queries.TERMINAL_STATUSES:
        raise ExecutionEnded(execution_id, status)
    await b.client.cancel(execution_id, reason or "cancelled by the client", by=by)


def list_languages() -> list[Language]:
    return sorted(languages().values(), key=lambda lang: lang.id)


async def watch(b: Backends, execution_id: str) -> AsyncIterator[Any]:
    """The execution's events: the archived ones, then live ones, until the terminal event.

    Live events are followed *before* the archive is read, so nothing falls between the two;
    each (attempt, seq) is yielded once. An event published before the watch began but not
    archived yet shows up as a gap in the live seqs, or as silence: either way it is read
    from the archive once the projector has it. An unknown execution is waited for (within
    the caller's deadline).
    """
    with b.live.subscribe(execution_id) as live:
        seen: set[tuple[int, int]] = set()
        for event in await _archived(b, execution_id, seen):
            yield event
            if isinstance(event, TERMINAL):
                return
        while True:
            try:
                event = await asyncio.wait_for(live.get(), ARCHIVE_POLL_SECONDS)
            except TimeoutError:  # quiet: was something published before we followed?
                for archived in await _archived(b, execution_id, seen):
                    yield archived
                    if isinstance(archived, TERMINAL):
                        return
                continue
            if (event.attempt, event.seq) in seen:
                continue
            for missed in await _fill_gap(b, execution_id, event, seen):
                yield missed
                if isinstance(missed, TERMINAL):
                    return
            seen.add((event.attempt, event.seq))
            yield event
            if isinstance(event, TERMINAL):
                return


async def _archived(b: Backends, execution_id: str, seen: set[tuple[int, int]]) -> list[Any]:
    """Archived events not yielded yet, in (attempt, seq) order; marks them seen."""
    async with b.pool.acquire() as conn:
        rows = await queries.archived_events(conn, execution_id)
    fresh = []
    for attempt, seq, payload in rows:
        if (attempt, seq) not in seen:
            seen.add((attempt, seq))
            fresh.append(b.registry.decode(payload))
    return fresh


async def _fill_gap(
    b: Backends, execution_id: str, event: Any, seen: set[tuple[int, int]]
) -> list[Any]:
    """Events before `event` (same attempt, lower seq; and the submission) not seen yet."""
    missing = {(event.attempt, s) for s in range(1, event.seq)} - seen
    if not missing and (0, 0) in seen:
        return []
    found: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GAP_FILL_SECONDS
    while True:
        found += await _archived(b, execution_id, seen)
        if missing <= seen or loop.time() > deadline:
            return sorted(found, key=lambda e: (e.attempt, e.seq))
        await asyncio.sleep(0.1)
