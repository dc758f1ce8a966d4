"""Value types shared by the event contract, the pipeline and the sandbox (no I/O here)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Verdict(StrEnum):
    """How an execution (or one test case) ended."""

    ACCEPTED = "ACCEPTED"
    WRONG_ANSWER = "WRONG_ANSWER"
    COMPILATION_ERROR = "COMPILATION_ERROR"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    TIME_LIMIT_EXCEEDED = "TIME_LIMIT_EXCEEDED"
    MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
    OUTPUT_LIMIT_EXCEEDED = "OUTPUT_LIMIT_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class Stream(StrEnum):
    STDOUT = "STDOUT"
    STDERR = "STDERR"
    SYSTEM = "SYSTEM"  # messages from the service itself, e.g. "compiling with gcc"


class Limits(BaseModel):
    """Resource limits of one run. On a submission every field is optional (None = default).

    Ranges are checked by the pipeline's validation, so a bad value becomes a rejection that
    names the field, not an undecodable event.
    """

    model_config = ConfigDict(frozen=True)

    wall_time_ms: int | None = None
    cpu_time_ms: int | None = None
    memory_mb: int | None = None
    processes: int | None = None
    output_bytes: int | None = None


class AppliedLimits(BaseModel):
    """Limits after defaults and server maxima were applied: every field is set."""

    model_config = ConfigDict(frozen=True)

    wall_time_ms: int
    cpu_time_ms: int
    memory_mb: int
    processes: int
    output_bytes: int
