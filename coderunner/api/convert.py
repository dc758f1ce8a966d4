"""Protobuf <-> domain translation for the gRPC API: no I/O, no business rules."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from coderunner.errors import InvalidRequest
from coderunner.languages import Language
from coderunner.proto.coderunner.v1 import coderunner_pb2 as pb
from coderunner.schemas import events as ev

_LIMIT_FIELDS = ("wall_time_ms", "cpu_time_ms", "memory_mb", "processes", "output_bytes")
_OPTIONAL_INTS = (
    "exit_code",
    "signal",
    "tests_passed",
    "tests_total",
    "duration_us",
    "compile_time_us",
    "run_time_us",
    "peak_memory_kb",
)


# --- enums: the proto names are the domain names with a prefix ----------------------------------


def _enum(enum: Any, prefix: str, value: str | None) -> Any:
    """The proto enum number of a domain value (0, UNSPECIFIED, for none)."""
    if not value:
        return 0
    return enum.Value(f"{prefix}{value.upper()}")


def _enum_name(enum: Any, prefix: str, number: int) -> str:
    name: str = enum.Name(number)
    return name.removeprefix(prefix)


def status_names(values: Any) -> tuple[str, ...]:
    """ExecutionStatus values -> the table's status strings ('queued', ...)."""
    return tuple(
        _checked_name(pb.ExecutionStatus, "EXECUTION_STATUS_", v, "statuses").lower()
        for v in values
    )


def verdict_names(values: Any) -> tuple[str, ...]:
    return tuple(_checked_name(pb.Verdict, "VERDICT_", v, "verdicts") for v in values)


def stream_name(value: int) -> str | None:
    """A Stream filter -> the table's stream string; None for UNSPECIFIED (every stream)."""
    if value == pb.STREAM_UNSPECIFIED:
        return None
    return _checked_name(pb.Stream, "STREAM_", value, "stream").lower()


def _checked_name(enum: Any, prefix: str, value: int, field: str) -> str:
    if value == 0 or value not in enum.values():
        raise InvalidRequest(field, f"{value} is not a valid {prefix.rstrip('_')} value")
    return _enum_name(enum, prefix, value)


# --- requests -> domain ---------------------------------------------------------------------------


def submission(request: pb.SubmitExecutionRequest) -> ev.ExecutionSubmitted:
    """The event a SubmitExecution request publishes; InvalidRequest names a malformed field."""
    limits = {
        name: getattr(request.limits, name)
        for name in _LIMIT_FIELDS
        if request.HasField("limits") and request.limits.HasField(name)
    }
    comparison = (
        _enum_name(pb.Comparison, "COMPARISON_", request.comparison)
        if request.comparison
        else "TRIMMED"
    )
    try:
        return ev.ExecutionSubmitted.model_validate(
            {
                "execution_id": request.execution_id or str(uuid.uuid4()),
                "language": request.language,
                "source": request.source,
                "extra_files": [
                    {"name": f.name, "content": f.content} for f in request.extra_files
                ],
                "stdin": request.stdin,
                "compiler_options": list(request.compiler_options),
                "args": list(request.args),
                "tests": [
                    {"name": t.name or None, "input": t.input, "expected_output": t.expected_output}
                    for t in request.tests
                ],
                "limits": limits,
                "comparison": comparison,
                "client": request.client or None,
            }
        )
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    field = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    ).lstrip(".")
    return InvalidRequest(field or "request", first["msg"])


def timestamp_or_none(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    value: Timestamp = getattr(message, field)
    when: datetime = value.ToDatetime(tzinfo=UTC)
    return when


# --- domain -> responses --------------------------------------------------------------------------


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _applied_limits(value: Any) -> pb.AppliedLimits | None:
    if value is None:
        return None
    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, Mapping):
        data = data.model_dump()
    return pb.AppliedLimits(**{name: data[name] for name in _LIMIT_FIELDS})


def execution(row: Mapping[str, Any], details: bool = False) -> pb.Execution:
    """An `executions` row (plus `steps` and `tests` when details) as an Execution."""
    message = pb.Execution(
        execution_id=row["execution_id"],
        status=_enum(pb.ExecutionStatus, "EXECUTION_STATUS_", row["status"]),
        attempt=row["attempt"],
        language=row["language"] or "",
        language_version=row["language_version"] or "",
        client=row["client"] or "",
        submitted_at=_ts(row["submitted_at"]),
        started_at=_ts(row["started_at"]),
        completed_at=_ts(row["completed_at"]),
        verdict=_enum(pb.Verdict, "VERDICT_", row["verdict"]),
        message=row["message"] or "",
        reject_field=row["reject_field"] or "",
        image=row["image"] or "",
        image_digest=row["image_digest"] or "",
        worker=row["worker"] or "",
        limits=_applied_limits(row["limits"]),
        compile_limits=_applied_limits(row["compile_limits"]),
        **{name: row[name] for name in _OPTIONAL_INTS if row[name] is not None},
    )
    if details:
        message.source = row["source"] or ""
        message.steps.extend(step(s) for s in row["steps"])
        message.test_results.extend(test_result(t) for t in row["tests"])
    return message


def step(row: Mapping[str, Any]) -> pb.Step:
    return pb.Step(
        name=row["step"],
        status=_enum(pb.StepStatus, "STEP_STATUS_", row["status"]),
        started_at=_ts(row["started_at"]),
        completed_at=_ts(row["completed_at"]),
        message=row["message"] or "",
        **{n: row[n] for n in ("duration_us", "exit_code", "signal") if row[n] is not None},
    )


def test_result(row: Mapping[str, Any]) -> pb.TestResult:
    return pb.TestResult(
        index=row["test_index"],
        name=row["name"] or "",
        verdict=_enum(pb.Verdict, "VERDICT_", row["verdict"]),
        input=row["input"],
        expected_output=row["expected_output"],
        actual_output=row["actual_output"],
        output_truncated=row["output_truncated"],
        time_ms=row["time_ms"],
        **{n: row[n] for n in ("exit_code", "signal", "peak_memory_kb") if row[n] is not None},
    )


def log_chunk(row: Mapping[str, Any]) -> pb.LogChunk:
    return pb.LogChunk(
        attempt=row["attempt"],
        chunk_index=row["chunk_index"],
        step=row["step"],
        stream=_enum(pb.Stream, "STREAM_", row["stream"]),
        content=row["content"],
        truncated=row["truncated"],
        occurred_at=_ts(row["occurred_at"]),
    )


def language(lang: Language) -> pb.Language:
    return pb.Language(
        id=lang.id,
        name=lang.name,
        version=lang.version,
        compiled=lang.compiled,
        default_limits=_applied_limits(lang.limits),
        compile_limits=_applied_limits(lang.compile_limits),
    )


def event(e: ev.EventBase) -> pb.ExecutionEvent:
    """One contract event as an ExecutionEvent (the oneof branch named after its type)."""
    message = pb.ExecutionEvent(
        event_id=e.event_id,
        execution_id=e.execution_id,
        attempt=e.attempt,
        seq=e.seq,
        occurred_at=_ts(e.occurred_at),
    )
    branch = _EVENT_BRANCHES.get(type(e))
    if branch is not None:
        name, build = branch
        getattr(message, name).CopyFrom(build(e))
    return message


def _optional(e: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(e, n) for n in names if getattr(e, n) is not None}


def _submitted(e: ev.ExecutionSubmitted) -> Message:
    return pb.ExecutionEvent.Submitted(
        language=e.language, tests=len(e.tests), client=e.client or ""
    )


def _cancel_requested(e: ev.ExecutionCancelRequested) -> Message:
    return pb.ExecutionEvent.CancelRequested(reason=e.reason, requested_by=e.requested_by or "")


def _accepted(e: ev.ExecutionAccepted) -> Message:
    return pb.ExecutionEvent.Accepted(
        language=e.language,
        language_version=e.language_version,
        image=e.image,
        image_digest=e.image_digest or "",
        limits=_applied_limits(e.limits),
        compile_limits=_applied_limits(e.compile_limits),
        worker=e.worker,
    )


def _step_completed(e: ev.StepCompleted) -> Message:
    return pb.ExecutionEvent.StepCompleted(
        step=e.step,
        status=_enum(pb.StepStatus, "STEP_STATUS_", e.status),
        duration_us=e.duration_us,
        message=e.message or "",
        **_optional(e, "exit_code", "signal"),
    )


def _log(e: ev.LogChunk) -> Message:
    return pb.LogChunk(
        attempt=e.attempt,
        chunk_index=e.chunk_index,
        step=e.step,
        stream=_enum(pb.Stream, "STREAM_", e.stream),
        content=e.content,
        truncated=e.truncated,
        occurred_at=_ts(e.occurred_at),
    )


def _test(e: ev.TestCompleted) -> Message:
    row = e.model_dump() | {"verdict": str(e.verdict)}
    return pb.ExecutionEvent.TestCompleted(result=test_result(row))


def _completed(e: ev.ExecutionCompleted) -> Message:
    return pb.ExecutionEvent.Completed(
        verdict=_enum(pb.Verdict, "VERDICT_", e.verdict),
        message=e.message or "",
        tests_passed=e.tests_passed,
        tests_total=e.tests_total,
        duration_us=e.duration_us,
        run_time_us=e.run_time_us,
        image=e.image,
        image_digest=e.image_digest or "",
        **_optional(e, "exit_code", "signal", "compile_time_us", "peak_memory_kb"),
    )


_EVENT_BRANCHES: dict[type[Any], tuple[str, Any]] = {
    ev.ExecutionSubmitted: ("submitted", _submitted),
    ev.ExecutionCancelRequested: ("cancel_requested", _cancel_requested),
    ev.ExecutionAccepted: ("accepted", _accepted),
    ev.ExecutionRejected: (
        "rejected",
        lambda e: pb.ExecutionEvent.Rejected(field=e.field, reason=e.reason),
    ),
    ev.StepStarted: ("step_started", lambda e: pb.ExecutionEvent.StepStarted(step=e.step)),
    ev.StepCompleted: ("step_completed", _step_completed),
    ev.LogChunk: ("log_chunk", _log),
    ev.TestCompleted: ("test_completed", _test),
    ev.ExecutionCompleted: ("completed", _completed),
    ev.ExecutionCancelled: ("cancelled", lambda e: pb.ExecutionEvent.Cancelled(reason=e.reason)),
}
