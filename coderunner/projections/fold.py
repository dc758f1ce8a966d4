"""The pure fold of events into read-model row changes: no I/O, unit-tested in milliseconds.

Input: decoded Avro records (`SchemaRegistry.decode_record`: plain dicts, enums as strings,
times as aware datetimes) and the current `ExecutionRow` of each execution touched. Output: a
`RowChanges` the store writes in one transaction.

Rules (docs/events.md):
- a submission creates the row as `queued` (the first submission of an execution id wins);
- events of attempt N are applied once: same attempt and `seq` <= the last applied is a
  duplicate; an attempt lower than the row's is stale (a late event of a superseded attempt);
- the first event of a newer attempt resets the attempt's columns and supersedes the older
  attempt's steps, logs and test results;
- ExecutionAccepted -> running; ExecutionCompleted/Rejected/Cancelled -> completed/rejected/
  cancelled; nothing may follow a terminal event within its attempt (an invariant violation).

Submission columns and worker columns are disjoint, so the fold gives the same rows whichever
of the two topics is read first: the rebuild from the archive relies on it.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from coderunner.errors import CoderunnerError

EXECUTION_ID_MAX_CHARS = 128
TERMINAL_STATUSES = frozenset({"completed", "rejected", "cancelled"})
SUBMITTED = "ExecutionSubmitted"
# What producers publish on the submissions topic; a cancel request changes no row (the
# worker's ExecutionCancelled does).
PRODUCER_EVENTS = frozenset({SUBMITTED, "ExecutionCancelRequested"})


class InvariantViolated(CoderunnerError):
    """A decodable event that breaks a rule of the contract: parked, never applied."""


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # already applied (same attempt, seq not newer; or a resubmission)
    STALE = "stale"  # an event of an attempt a newer one superseded
    IGNORED = "ignored"  # an event type this projection has no use for


@dataclass(slots=True)
class ExecutionRow:
    """One row of `executions`; field order = column order of the table."""

    execution_id: str
    status: str = "queued"
    attempt: int = 0
    last_seq: int = 0
    language: str | None = None
    language_version: str | None = None
    submission_event_id: str | None = None
    client: str | None = None
    source: str | None = None
    stdin: str | None = None
    extra_files: str | None = None  # jsonb columns hold canonical JSON text
    compiler_options: str | None = None
    args: str | None = None
    test_cases: str | None = None
    requested_limits: str | None = None
    comparison: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    verdict: str | None = None
    message: str | None = None
    reject_field: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    tests_passed: int | None = None
    tests_total: int | None = None
    duration_us: int | None = None
    compile_time_us: int | None = None
    run_time_us: int | None = None
    peak_memory_kb: int | None = None
    image: str | None = None
    image_digest: str | None = None
    worker: str | None = None
    limits: str | None = None
    compile_limits: str | None = None

    def as_tuple(self) -> tuple[Any, ...]:
        return _row_values(self)


EXECUTION_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ExecutionRow))
_row_values = operator.attrgetter(*EXECUTION_COLUMNS)
# Columns a new attempt starts afresh (everything a worker event sets).
_ATTEMPT_COLUMNS = (
    "language_version",
    "started_at",
    "completed_at",
    "verdict",
    "message",
    "reject_field",
    "exit_code",
    "signal",
    "tests_passed",
    "duration_us",
    "compile_time_us",
    "run_time_us",
    "peak_memory_kb",
    "image",
    "image_digest",
    "worker",
    "limits",
    "compile_limits",
)

STEP_COLUMNS = (
    "execution_id",
    "attempt",
    "step",
    "seq",
    "status",
    "started_at",
    "completed_at",
    "duration_us",
    "exit_code",
    "signal",
    "message",
)
LOG_COLUMNS = (
    "execution_id",
    "attempt",
    "chunk_index",
    "seq",
    "step",
    "stream",
    "content",
    "truncated",
    "occurred_at",
)
TEST_COLUMNS = (
    "execution_id",
    "attempt",
    "test_index",
    "seq",
    "name",
    "verdict",
    "input",
    "expected_output",
    "actual_output",
    "output_truncated",
    "exit_code",
    "signal",
    "time_ms",
    "peak_memory_kb",
    "occurred_at",
)


@dataclass(slots=True)
class RowChanges:
    """What one batch does to the tables; child rows are keyed by (execution, attempt, ...)."""

    executions: dict[str, ExecutionRow] = field(default_factory=dict)
    steps: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, int, int], tuple[Any, ...]] = field(default_factory=dict)
    tests: dict[tuple[str, int, int], tuple[Any, ...]] = field(default_factory=dict)
    # execution id -> attempt: rows of lower attempts are deleted.
    superseded: dict[str, int] = field(default_factory=dict)

    def step_rows(self) -> list[tuple[Any, ...]]:
        current = self._current_attempts()
        return [
            (eid, attempt, step, *(values.get(c) for c in STEP_COLUMNS[3:]))
            for (eid, attempt, step), values in self.steps.items()
            if attempt >= current[eid]
        ]

    def log_rows(self) -> list[tuple[Any, ...]]:
        current = self._current_attempts()
        return [row for key, row in self.logs.items() if key[1] >= current[key[0]]]

    def test_rows(self) -> list[tuple[Any, ...]]:
        current = self._current_attempts()
        return [row for key, row in self.tests.items() if key[1] >= current[key[0]]]

    def _current_attempts(self) -> dict[str, int]:
        return {eid: row.attempt for eid, row in self.executions.items()}


def canonical_json(value: Any) -> str:
    """JSON text that is equal for equal values; NUL (which jsonb refuses) shown as U+FFFD."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if "\\u0000" in text:
        text = json.dumps(_without_nul(value), sort_keys=True, separators=(",", ":"))
    return text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def fold(
    rows: dict[str, ExecutionRow],
    changes: RowChanges,
    name: str,
    event: dict[str, Any],
    from_submissions: bool,
) -> Outcome:
    """Apply one decoded event to `rows` (the current state, updated in place) and `changes`.

    Raises InvariantViolated for an event that must be parked; then nothing was changed.
    """
    _check_envelope(name, event, from_submissions)
    eid = event["execution_id"]
    row = rows.get(eid)
    if from_submissions and name != SUBMITTED:
        return Outcome.IGNORED  # a cancel request: the worker's answer is what counts
    if name == SUBMITTED:
        if row is not None and row.submission_event_id is not None:
            return Outcome.DUPLICATE  # the first submission of an execution id wins
        row = row or ExecutionRow(eid)
        _submitted(row, event)
    else:
        row = row or ExecutionRow(eid)
        outcome = _worker_event(row, changes, name, event)
        if outcome is not Outcome.APPLIED:
            return outcome
    rows[eid] = row
    changes.executions[eid] = row
    return Outcome.APPLIED


def _check_envelope(name: str, event: dict[str, Any], from_submissions: bool) -> None:
    if event.get("event_type") != name:
        raise InvariantViolated(f"event_type {event.get('event_type')!r} is not the record {name}")
    eid = event["execution_id"]
    if not 1 <= len(eid) <= EXECUTION_ID_MAX_CHARS:
        raise InvariantViolated(f"execution_id must have 1 to 128 characters, has {len(eid)}")
    if from_submissions != (name in PRODUCER_EVENTS):
        where = "submissions" if from_submissions else "events"
        raise InvariantViolated(f"{name} does not belong on the {where} topic")
    attempt, seq = event["attempt"], event["seq"]
    if name == SUBMITTED and (attempt, seq) != (0, 0):
        raise InvariantViolated(f"a submission has attempt 0 and seq 0, not {attempt}/{seq}")
    if name in PRODUCER_EVENTS and attempt != 0:
        raise InvariantViolated(f"{name} has attempt 0, not {attempt}")
    if name not in PRODUCER_EVENTS and (attempt < 1 or seq < 1):
        raise InvariantViolated(
            f"a worker event has attempt >= 1 and seq >= 1, not {attempt}/{seq}"
        )


def _submitted(row: ExecutionRow, e: dict[str, Any]) -> None:
    row.language = e["language"]  # the submission is the authority on the language
    row.submission_event_id = e["event_id"]
    row.client = e["client"]
    row.source = e["source"]
    row.stdin = e["stdin"]
    row.extra_files = canonical_json(e["extra_files"])
    row.compiler_options = canonical_json(e["compiler_options"])
    row.args = canonical_json(e["args"])
    row.test_cases = canonical_json(e["tests"])
    row.requested_limits = canonical_json(e["limits"])
    row.comparison = e["comparison"]
    row.submitted_at = e["occurred_at"]
    if row.tests_total is None:
        row.tests_total = len(e["tests"])


def _worker_event(row: ExecutionRow, changes: RowChanges, name: str, e: dict[str, Any]) -> Outcome:
    handler = _HANDLERS.get(name)
    if handler is None:
        return Outcome.IGNORED  # a newer event type: the contract says to ignore it
    attempt, seq = e["attempt"], e["seq"]
    if attempt < row.attempt:
        return Outcome.STALE
    if attempt == row.attempt:
        if seq <= row.last_seq:
            return Outcome.DUPLICATE
        if row.status in TERMINAL_STATUSES:
            raise InvariantViolated(
                f"{name} (seq {seq}) follows the terminal event of attempt {attempt}"
            )
    if attempt > row.attempt:
        _start_attempt(row, changes, attempt)
    row.last_seq = seq
    handler(row, changes, e)
    return Outcome.APPLIED


def _start_attempt(row: ExecutionRow, changes: RowChanges, attempt: int) -> None:
    if row.attempt >= 1:
        changes.superseded[row.execution_id] = attempt
    row.attempt = attempt
    row.status = "queued"
    for column in _ATTEMPT_COLUMNS:
        setattr(row, column, None)
    row.tests_total = None if row.test_cases is None else len(json.loads(row.test_cases))


def _accepted(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    row.status = "running"
    row.started_at = e["occurred_at"]
    if row.language is None:
        row.language = e["language"]
    row.language_version = e["language_version"]
    row.image = e["image"]
    row.image_digest = e["image_digest"]
    row.limits = canonical_json(e["limits"])
    row.compile_limits = canonical_json(e["compile_limits"])
    row.worker = e["worker"]


# ExecutionCompleted fields the executions row takes as they are (image_digest is kept from an
# earlier event when this one has none).
COMPLETED_COLUMNS = (
    "verdict",
    "message",
    "exit_code",
    "signal",
    "tests_passed",
    "tests_total",
    "duration_us",
    "compile_time_us",
    "run_time_us",
    "peak_memory_kb",
    "image",
)


def _completed(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    row.status = "completed"
    row.completed_at = e["occurred_at"]
    for column in COMPLETED_COLUMNS:
        setattr(row, column, e[column])
    row.image_digest = e["image_digest"] or row.image_digest


def _rejected(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    row.status = "rejected"
    row.completed_at = e["occurred_at"]
    row.reject_field = e["field"]
    row.message = e["reason"]


def _cancelled(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    row.status = "cancelled"
    row.completed_at = e["occurred_at"]
    row.message = e["reason"]


def _step_values(changes: RowChanges, e: dict[str, Any]) -> dict[str, Any]:
    key = (e["execution_id"], e["attempt"], e["step"])
    return changes.steps.setdefault(key, {})


def _step_started(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    values = _step_values(changes, e)
    values.setdefault("seq", e["seq"])
    values.setdefault("status", "running")
    values["started_at"] = e["occurred_at"]


def _step_completed(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    values = _step_values(changes, e)
    values.setdefault("seq", e["seq"])
    values["status"] = str(e["status"]).lower()
    values["completed_at"] = e["occurred_at"]
    values["duration_us"] = e["duration_us"]
    values["exit_code"] = e["exit_code"]
    values["signal"] = e["signal"]
    values["message"] = e["message"]


def _log_chunk(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    eid, attempt, index = e["execution_id"], e["attempt"], e["chunk_index"]
    changes.logs[(eid, attempt, index)] = (
        eid,
        attempt,
        index,
        e["seq"],
        e["step"],
        str(e["stream"]).lower(),
        e["content"],
        e["truncated"],
        e["occurred_at"],
    )


def _test_completed(row: ExecutionRow, changes: RowChanges, e: dict[str, Any]) -> None:
    eid, attempt, index = e["execution_id"], e["attempt"], e["test_index"]
    changes.tests[(eid, attempt, index)] = (
        eid,
        attempt,
        index,
        e["seq"],
        e["name"],
        e["verdict"],
        e["input"],
        e["expected_output"],
        e["actual_output"],
        e["output_truncated"],
        e["exit_code"],
        e["signal"],
        e["time_ms"],
        e["peak_memory_kb"],
        e["occurred_at"],
    )


_HANDLERS = {
    "ExecutionAccepted": _accepted,
    "ExecutionCompleted": _completed,
    "ExecutionRejected": _rejected,
    "ExecutionCancelled": _cancelled,
    "StepStarted": _step_started,
    "StepCompleted": _step_completed,
    "LogChunk": _log_chunk,
    "TestCompleted": _test_completed,
}
