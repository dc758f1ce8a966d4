"""The events of the contract as immutable pydantic models, one per Avro record (same names).

The `.avsc` files in `schemas/avro/` are the contract; these models mirror them field for field
and add the rules Avro cannot say (UUIDs, ranges, sizes, attempt/seq numbering). Constructing an
event fills `event_id` (a fresh uuid4), `occurred_at` (now, UTC) and `event_type`:

    LogChunk(execution_id=eid, attempt=1, seq=4, step="run", stream=Stream.STDOUT,
             chunk_index=0, content="hello\\n")
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from coderunner.domain import AppliedLimits, Limits, Stream, Verdict

__all__ = [
    "EVENT_TYPES",
    "LOG_CHUNK_MAX_BYTES",
    "TERMINAL_EVENT_TYPES",
    "TEST_TEXT_MAX_BYTES",
    "AppliedLimits",
    "Comparison",
    "Event",
    "EventBase",
    "ExecutionAccepted",
    "ExecutionCancelRequested",
    "ExecutionCancelled",
    "ExecutionCompleted",
    "ExecutionRejected",
    "ExecutionSubmitted",
    "LogChunk",
    "RequestedLimits",
    "SourceFile",
    "StepCompleted",
    "StepStarted",
    "StepStatus",
    "Stream",
    "TestCase",
    "TestCompleted",
    "Verdict",
    "WorkerEvent",
    "new_event_id",
    "truncate_utf8",
    "utc_now",
]

# Kafka and Event Hubs cap a message at 1 MB: keep every event far below it.
LOG_CHUNK_MAX_BYTES = 64 * 1024
TEST_TEXT_MAX_BYTES = 16 * 1024  # each of input, expected_output, actual_output of a TestCompleted
EXECUTION_ID_MAX_CHARS = 128
_INT32_MAX = 2**31 - 1

RequestedLimits = Limits  # the submission's limits: every field optional


class StepStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class Comparison(StrEnum):
    """How a test's actual output is compared with the expected output."""

    TRIMMED = "TRIMMED"  # ignore trailing whitespace at line ends and trailing newlines
    EXACT = "EXACT"


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, microsecond precision (what Avro stores)."""
    return datetime.now(UTC)


def truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut text so its UTF-8 encoding fits in max_bytes, never inside a character.

    Returns the text and whether it was cut.
    """
    if len(text) * 4 <= max_bytes:  # fast path: even all 4-byte characters would fit
        return text, False
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", errors="ignore"), True


def _uuid_text(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError(f"must be a UUID in text form, got {value[:40]!r}") from None
    return value


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _at_most_bytes(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) * 4 > limit and len(value.encode("utf-8", errors="replace")) > limit:
            raise ValueError(f"must be at most {limit} bytes in UTF-8")
        return value

    return AfterValidator(check)


UuidText = Annotated[str, AfterValidator(_uuid_text)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
ExecutionId = Annotated[str, Field(min_length=1, max_length=EXECUTION_ID_MAX_CHARS)]
Int32 = Annotated[int, Field(ge=-(2**31), le=_INT32_MAX)]
Count = Annotated[int, Field(ge=0, le=_INT32_MAX)]
Micros = Annotated[int, Field(ge=0)]
Signal = Annotated[int, Field(ge=1, le=127)]
StepName = Annotated[str, Field(min_length=1, max_length=64)]
TestText = Annotated[str, _at_most_bytes(TEST_TEXT_MAX_BYTES)]


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceFile(_Value):
    """A file written next to the main source file (Avro record `File`)."""

    name: str  # the pipeline's validation rejects unsafe names, naming the field
    content: str


class TestCase(_Value):
    __test__ = False  # a value type, not a pytest test class

    name: str | None = None
    input: str
    expected_output: str


class EventBase(_Value):
    """The six fields every event starts with, in the order of the Avro records."""

    event_id: UuidText = Field(default_factory=new_event_id)
    execution_id: ExecutionId
    attempt: Count
    seq: Count
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    event_type: str  # each event narrows it to its record name, with that as the default


class WorkerEvent(EventBase):
    """An event a worker emits while running attempt 1, 2, ...; seq counts from 1."""

    attempt: Annotated[int, Field(ge=1, le=_INT32_MAX)]
    seq: Annotated[int, Field(ge=1, le=_INT32_MAX)]


class ExecutionSubmitted(EventBase):
    event_type: Literal["ExecutionSubmitted"] = "ExecutionSubmitted"
    attempt: Literal[0] = 0
    seq: Literal[0] = 0
    language: str
    source: str
    extra_files: tuple[SourceFile, ...] = ()
    stdin: str = ""
    compiler_options: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    tests: tuple[TestCase, ...] = ()
    limits: RequestedLimits = RequestedLimits()
    comparison: Comparison = Comparison.TRIMMED
    client: str | None = None


class ExecutionAccepted(WorkerEvent):
    event_type: Literal["ExecutionAccepted"] = "ExecutionAccepted"
    language: str
    language_version: str
    image: str
    image_digest: str | None = None
    limits: AppliedLimits
    compile_limits: AppliedLimits
    worker: str


class ExecutionRejected(WorkerEvent):
    event_type: Literal["ExecutionRejected"] = "ExecutionRejected"
    field: str
    reason: str


class StepStarted(WorkerEvent):
    event_type: Literal["StepStarted"] = "StepStarted"
    step: StepName


class StepCompleted(WorkerEvent):
    event_type: Literal["StepCompleted"] = "StepCompleted"
    step: StepName
    status: StepStatus
    duration_us: Micros
    exit_code: Int32 | None = None
    signal: Signal | None = None
    message: str | None = None


class LogChunk(WorkerEvent):
    event_type: Literal["LogChunk"] = "LogChunk"
    step: StepName
    stream: Stream
    chunk_index: Count
    content: Annotated[str, _at_most_bytes(LOG_CHUNK_MAX_BYTES)]
    truncated: bool = False


class TestCompleted(WorkerEvent):
    __test__ = False  # an event, not a pytest test class

    event_type: Literal["TestCompleted"] = "TestCompleted"
    test_index: Count
    name: str | None = None
    verdict: Verdict
    input: TestText
    expected_output: TestText
    actual_output: TestText
    output_truncated: bool
    exit_code: Int32 | None = None
    signal: Signal | None = None
    time_ms: Count
    peak_memory_kb: Annotated[int, Field(ge=0)] | None = None


class ExecutionCompleted(WorkerEvent):
    event_type: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    verdict: Verdict
    message: str | None = None
    exit_code: Int32 | None = None
    signal: Signal | None = None
    tests_passed: Count
    tests_total: Count
    duration_us: Micros
    compile_time_us: Micros | None = None
    run_time_us: Micros
    peak_memory_kb: Annotated[int, Field(ge=0)] | None = None
    image: str
    image_digest: str | None = None

    @model_validator(mode="after")
    def _passed_within_total(self) -> ExecutionCompleted:
        if self.tests_passed > self.tests_total:
            raise ValueError(
                f"tests_passed ({self.tests_passed}) exceeds tests_total ({self.tests_total})"
            )
        return self


class ExecutionCancelled(WorkerEvent):
    event_type: Literal["ExecutionCancelled"] = "ExecutionCancelled"
    reason: str


class ExecutionCancelRequested(EventBase):
    """A producer's command to stop an execution; attempt 0, seq 1 (see the .avsc)."""

    event_type: Literal["ExecutionCancelRequested"] = "ExecutionCancelRequested"
    attempt: Literal[0] = 0
    seq: Literal[1] = 1
    reason: str
    requested_by: str | None = None


Event: TypeAlias = Annotated[
    ExecutionSubmitted
    | ExecutionCancelRequested
    | ExecutionAccepted
    | ExecutionRejected
    | StepStarted
    | StepCompleted
    | LogChunk
    | TestCompleted
    | ExecutionCompleted
    | ExecutionCancelled,
    Field(discriminator="event_type"),
]

# Record name (= event_type) -> model class.
EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.__name__: cls
    for cls in (
        ExecutionSubmitted,
        ExecutionCancelRequested,
        ExecutionAccepted,
        ExecutionRejected,
        StepStarted,
        StepCompleted,
        LogChunk,
        TestCompleted,
        ExecutionCompleted,
        ExecutionCancelled,
    )
}

# Exactly one of these ends every attempt that finishes.
TERMINAL_EVENT_TYPES = frozenset({"ExecutionCompleted", "ExecutionRejected", "ExecutionCancelled"})
