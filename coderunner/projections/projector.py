"""Applies batches of raw messages to the read models: one transaction per batch.

Per batch: decode (`decode`, outside the transaction and free of state, so a reader may decode
the next batch while this one commits), then in ONE transaction lock the positions of the
batch's topic-partitions, drop messages below them (redelivered), fold the rest, write the row
changes, the archive rows, the parked poison events and the new positions. A crash at any
moment either commits all of it or nothing, so replaying from any earlier offset is harmless.

Failures, classified here so the Faust agent above never sees an exception:
- PostgreSQL unreachable, deadlock, serialization failure, a plan invalidated by a rebuild's
  swap: retried with back-off, forever (the lag shows a stuck projection), never dropped;
- a batch PostgreSQL refuses for its data: split in halves until the offending message is
  alone, which is parked with the database's reason;
- undecodable bytes, a record that breaks the contract: parked, the rest applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg

from coderunner.errors import UndecodableEvent
from coderunner.projections.fold import (
    ExecutionRow,
    InvariantViolated,
    RowChanges,
    fold,
)
from coderunner.projections.store import ArchivedEvent, ParkedEvent, ReadModelStore
from coderunner.schemas.codec import SchemaRegistry

log = logging.getLogger(__name__)

READ_MODELS = "read_models"  # the projection's name in projection_positions
_RETRIABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.InvalidCachedStatementError,
    asyncpg.UndefinedTableError,  # mid-migration or mid-swap: the table comes back
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


class SourceMessage(NamedTuple):
    """A consumed Kafka message, as the projector needs it (a tuple: cheap to make)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class BatchResult:
    applied: int = 0
    skipped: int = 0  # below the stored position: already in
    parked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class DecodedMessage:
    """A message decoded ahead of its transaction (`Projector.decode`)."""

    message: SourceMessage
    name: str = ""
    record: dict[str, Any] | None = None
    error: str | None = None


class Projector:
    """Folds batches of messages into the tables reached through `connect`'s connections."""

    def __init__(
        self,
        acquire: Callable[[], Any],
        submissions_topic: str,
        registry: SchemaRegistry | None = None,
        projection: str = READ_MODELS,
        lock_partitions: bool = True,
        archive_by_copy: bool = True,
        retry_delays: Sequence[float] = (0.2, 0.5, 1.0, 2.0, 5.0),
    ) -> None:
        self._acquire = acquire  # () -> async context manager yielding a connection
        self._submissions_topic = submissions_topic
        self._registry = registry or SchemaRegistry()
        self.projection = projection
        self._lock_partitions = lock_partitions
        self._archive_by_copy = archive_by_copy
        self._retry_delays = retry_delays

    async def apply(self, messages: Sequence[SourceMessage]) -> BatchResult:
        """Apply a batch; returns only once it is committed (retrying infrastructure errors)."""
        return await self.apply_decoded(self.decode(messages))

    async def apply_decoded(self, batch: Sequence[DecodedMessage]) -> BatchResult:
        """Apply a batch `decode` made (a reader may decode the next batch meanwhile)."""
        return await self._apply_or_split(list(batch))

    # --- decoding (no I/O) ----------------------------------------------------------------

    def decode(self, messages: Sequence[SourceMessage]) -> list[DecodedMessage]:
        """Decode a batch: pure CPU, no state, so it may run while another batch commits."""
        return [self._decode(m) for m in messages]

    def _decode(self, message: SourceMessage) -> DecodedMessage:
        item = DecodedMessage(message)
        try:
            item.name, item.record = self._registry.decode_record(message.value or b"")
        except UndecodableEvent as exc:
            item.error = f"undecodable: {exc}"
            return item
        eid = item.record.get("execution_id")
        if message.key is not None and isinstance(eid, str) and message.key != eid.encode():
            item.error = f"invariant: key {message.key[:64]!r} is not the execution id {eid[:64]!r}"
        return item

    # --- one transaction per batch, split on data errors -----------------------------------

    async def _apply_or_split(self, batch: list[DecodedMessage]) -> BatchResult:
        try:
            return await self._apply_retrying(batch)
        except asyncpg.PostgresError as exc:
            if len(batch) == 1:
                batch[0].error = f"refused by PostgreSQL: {type(exc).__name__}: {exc}"
                batch[0].record = None
                return await self._apply_retrying(batch)
            log.warning("batch of %d refused (%s): splitting it", len(batch), exc)
            half = len(batch) // 2
            first = await self._apply_or_split(batch[:half])
            second = await self._apply_or_split(batch[half:])
            return _merge(first, second)

    async def _apply_retrying(self, batch: list[DecodedMessage]) -> BatchResult:
        attempt = 0
        while True:
            try:
                return await self._apply_once(batch)
            except _RETRIABLE as exc:
                delay = self._retry_delays[min(attempt, len(self._retry_delays) - 1)]
                attempt += 1
                log.warning(
                    "projection batch failed (%s: %s); retrying in %.1f s (attempt %d)",
                    type(exc).__name__,
                    exc,
                    delay,
                    attempt,
                )
                await asyncio.sleep(delay)

    async def _apply_once(self, batch: list[DecodedMessage]) -> BatchResult:
        async with self._acquire() as conn, conn.transaction():
            store = ReadModelStore(conn, self.projection, self._archive_by_copy)
            tps = {(d.message.topic, d.message.partition) for d in batch}
            if self._lock_partitions:
                await store.lock_partitions(p for _, p in tps)
            positions = await store.lock_positions(tps)
            fresh = [d for d in batch if d.message.offset >= positions[_tp(d.message)]]
            rows = await store.load(
                d.record["execution_id"] for d in fresh if d.record is not None and not d.error
            )
            result, changes, archive, parked = _fold_batch(fresh, rows, self._submissions_topic)
            result.skipped = len(batch) - len(fresh)
            reached = dict(positions)
            for d in fresh:
                reached[_tp(d.message)] = max(reached[_tp(d.message)], d.message.offset + 1)
            await store.write(changes, archive, parked, reached)
        for item in parked:
            log.warning(
                "parked %s[%d]@%d: %s",
                item.source_topic,
                item.source_partition,
                item.source_offset,
                item.reason,
            )
        return result


def _tp(message: SourceMessage) -> tuple[str, int]:
    return message.topic, message.partition


def _fold_batch(
    batch: list[DecodedMessage], rows: dict[str, ExecutionRow], submissions_topic: str
) -> tuple[BatchResult, RowChanges, list[ArchivedEvent], list[ParkedEvent]]:
    result = BatchResult()
    changes = RowChanges()
    archive: list[ArchivedEvent] = []
    parked: list[ParkedEvent] = []
    for item in batch:
        m = item.message
        reason = item.error
        if reason is None and item.record is not None:
            try:
                outcome = fold(rows, changes, item.name, item.record, m.topic == submissions_topic)
            except InvariantViolated as exc:
                reason = f"invariant: {exc}"
            except Exception as exc:  # a bug in the fold must not stall the projection
                log.exception("fold failed on %s[%d]@%d", m.topic, m.partition, m.offset)
                reason = f"internal error: {type(exc).__name__}: {exc}"
            else:
                result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
                result.applied += 1
                archive.append(_archived(item.record, m))
                continue
        result.parked += 1
        parked.append(
            ParkedEvent(m.topic, m.partition, m.offset, m.key, m.value, reason or "unknown")
        )
    return result, changes, archive, parked


def _archived(e: dict[str, Any], m: SourceMessage) -> ArchivedEvent:
    return ArchivedEvent(
        e["event_id"],
        e["execution_id"],
        e["attempt"],
        e["seq"],
        e["event_type"],
        e["occurred_at"],
        m.topic,
        m.partition,
        m.offset,
        m.value or b"",
    )


def _merge(a: BatchResult, b: BatchResult) -> BatchResult:
    outcomes = dict(a.outcomes)
    for k, v in b.outcomes.items():
        outcomes[k] = outcomes.get(k, 0) + v
    return BatchResult(a.applied + b.applied, a.skipped + b.skipped, a.parked + b.parked, outcomes)
