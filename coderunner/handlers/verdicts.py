"""Pure rules: how output is compared and which verdict a finished process earns."""

from __future__ import annotations

import signal as _signal

from coderunner.domain import Verdict
from coderunner.handlers.ports import ProcessResult


def outputs_match(actual: str, expected: str, exact: bool = False) -> bool:
    """Judge0's default rule: ignore whitespace at line ends and trailing newlines.

    With `exact`, the two must be identical byte for byte (after UTF-8 decoding).
    """
    if exact:
        return actual == expected
    return _normalise(actual) == _normalise(expected)


def _normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def process_verdict(result: ProcessResult) -> Verdict | None:
    """The verdict a process earns on its own, or None when it ran cleanly (exit 0).

    Resource verdicts win over the exit status: a program killed for memory also "exited"
    with SIGKILL, but the user needs to know why.
    """
    if result.oom_killed:
        return Verdict.MEMORY_LIMIT_EXCEEDED
    if result.output_limit_exceeded:
        return Verdict.OUTPUT_LIMIT_EXCEEDED
    if result.timed_out:
        return Verdict.TIME_LIMIT_EXCEEDED
    if result.signal is not None or result.exit_code != 0:
        return Verdict.RUNTIME_ERROR
    return None


def run_verdict(result: ProcessResult, actual: str, expected: str | None, exact: bool) -> Verdict:
    """Verdict of one run; with an expected output (a test case) the output is compared too."""
    verdict = process_verdict(result)
    if verdict is not None:
        return verdict
    if expected is not None and not outputs_match(actual, expected, exact):
        return Verdict.WRONG_ANSWER
    return Verdict.ACCEPTED


def describe(result: ProcessResult, verdict: Verdict) -> str:
    """One line a person understands: why the run ended as it did."""
    if verdict is Verdict.MEMORY_LIMIT_EXCEEDED:
        return "killed: memory limit exceeded"
    if verdict is Verdict.OUTPUT_LIMIT_EXCEEDED:
        return "stopped: output limit exceeded"
    if verdict is Verdict.TIME_LIMIT_EXCEEDED:
        return f"killed: time limit exceeded after {result.wall_time_ms} ms"
    if result.signal is not None:
        return f"killed by {signal_name(result.signal)} (signal {result.signal})"
    if result.exit_code not in (0, None):
        return f"exit code {result.exit_code}"
    return "ok" if verdict is Verdict.ACCEPTED else "output differs from the expected output"


def signal_name(number: int) -> str:
    try:
        return _signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def overall_verdict(verdicts: list[Verdict]) -> Verdict:
    """An execution is ACCEPTED when every run is; otherwise the first failure names it."""
    return next((v for v in verdicts if v is not Verdict.ACCEPTED), Verdict.ACCEPTED)
