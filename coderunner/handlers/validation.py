"""Pure validation of a submission against the catalogue and the server's maxima."""

from __future__ import annotations

import re
from dataclasses import dataclass

from coderunner.domain import AppliedLimits, Limits
from coderunner.errors import InvalidSubmission
from coderunner.languages import Language
from coderunner.schemas.events import ExecutionSubmitted
from coderunner.settings import Settings

# Extra files land next to the main source in the flat work dir: plain names only.
# Below these a program cannot even start (a JVM or Python interpreter needs some memory).
_LIMIT_FLOORS = {"memory_mb": 16, "wall_time_ms": 10, "cpu_time_ms": 10, "output_bytes": 16}
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True, slots=True)
class ExecutionPlan:
    """What a valid submission resolves to: the language, its files and the limits in force."""

    language: Language
    files: dict[str, bytes]
    limits: AppliedLimits
    compile_limits: AppliedLimits


def plan_execution(
    submission: ExecutionSubmitted, catalogue: dict[str, Language], settings: Settings
) -> ExecutionPlan:
    """Check every rule; the first broken one raises InvalidSubmission naming the field."""
    language = catalogue.get(submission.language)
    if language is None:
        known = ", ".join(sorted(catalogue))
        raise InvalidSubmission(
            "language", f"unknown language {submission.language!r}; one of: {known}"
        )
    files = {language.file: _source_bytes(submission.source, settings)}
    for index, extra in enumerate(submission.extra_files):
        field = f"extra_files[{index}].name"
        if not _SAFE_FILE_NAME.match(extra.name) or extra.name == ".." or extra.name in files:
            raise InvalidSubmission(field, f"{extra.name!r} is not a plain, unique file name")
        files[extra.name] = extra.content.encode()
    total = sum(len(content) for content in files.values())
    if total > settings.sandbox_max_source_bytes:
        raise InvalidSubmission(
            "extra_files",
            f"all files together are {total} bytes; at most {settings.sandbox_max_source_bytes}",
        )
    _check_inputs(submission, settings)
    return ExecutionPlan(
        language=language,
        files=files,
        limits=apply_limits(submission.limits, language.limits, settings),
        compile_limits=language.compile_limits,
    )


def _source_bytes(source: str, settings: Settings) -> bytes:
    data = source.encode()
    if not source.strip():
        raise InvalidSubmission("source", "must not be empty")
    if len(data) > settings.sandbox_max_source_bytes:
        raise InvalidSubmission(
            "source",
            f"is {len(data)} bytes; at most {settings.sandbox_max_source_bytes} bytes allowed",
        )
    return data


def _check_inputs(submission: ExecutionSubmitted, settings: Settings) -> None:
    if len(submission.tests) > settings.sandbox_max_tests:
        raise InvalidSubmission(
            "tests", f"has {len(submission.tests)} test cases; at most {settings.sandbox_max_tests}"
        )
    inputs = [("stdin", submission.stdin)] + [
        (f"tests[{i}].input", test.input) for i, test in enumerate(submission.tests)
    ]
    for field, text in inputs:
        size = len(text.encode())
        if size > settings.sandbox_max_stdin_bytes:
            raise InvalidSubmission(
                field, f"is {size} bytes; at most {settings.sandbox_max_stdin_bytes} bytes allowed"
            )


def server_maxima(settings: Settings) -> AppliedLimits:
    return AppliedLimits(
        wall_time_ms=settings.sandbox_max_wall_time_ms,
        cpu_time_ms=settings.sandbox_max_cpu_time_ms,
        memory_mb=settings.sandbox_max_memory_mb,
        processes=settings.sandbox_max_processes,
        output_bytes=settings.sandbox_max_output_bytes,
    )


def apply_limits(
    requested: Limits | None, defaults: AppliedLimits, settings: Settings
) -> AppliedLimits:
    """Requested limits where given, the language's defaults elsewhere; above a maximum is an
    error (silently lowering it would give the user a verdict for limits they did not ask for)."""
    maxima = server_maxima(settings)
    values = {}
    for name in AppliedLimits.model_fields:
        asked = getattr(requested, name) if requested is not None else None
        ceiling = getattr(maxima, name)
        if asked is not None and asked > ceiling:
            raise InvalidSubmission(
                f"limits.{name}", f"{asked} is above the server maximum {ceiling}"
            )
        floor = _LIMIT_FLOORS.get(name, 1)
        if asked is not None and asked < floor:
            raise InvalidSubmission(f"limits.{name}", f"{asked} is below the minimum {floor}")
        values[name] = asked if asked is not None else min(getattr(defaults, name), ceiling)
    return AppliedLimits(**values)
