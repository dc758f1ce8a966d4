"""Output comparison and verdict rules, as a user of a judge expects them."""

from __future__ import annotations

import pytest

from coderunner.domain import Verdict
from coderunner.handlers.ports import ProcessResult
from coderunner.handlers.verdicts import describe, outputs_match, overall_verdict, run_verdict


def result(**changes: object) -> ProcessResult:
    base: dict[str, object] = dict(
        exit_code=0,
        signal=None,
        wall_time_ms=5,
        timed_out=False,
        oom_killed=False,
        output_limit_exceeded=False,
        stdout=b"",
        stderr=b"",
    )
    return ProcessResult(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("actual", "expected"),
    [("42\n", "42"), ("42   \n\n\n", "42"), ("a \nb\t\n", "a\nb"), ("a\r\nb\r\n", "a\nb")],
)
def test_trailing_whitespace_and_newlines_are_ignored_by_default(
    actual: str, expected: str
) -> None:
    assert outputs_match(actual, expected)


@pytest.mark.parametrize(("actual", "expected"), [("4 2", "42"), (" 42", "42"), ("a\n\nb", "a\nb")])
def test_inner_and_leading_differences_still_count(actual: str, expected: str) -> None:
    assert not outputs_match(actual, expected)


def test_exact_comparison_counts_every_byte() -> None:
    assert not outputs_match("42\n", "42", exact=True)
    assert outputs_match("42\n", "42\n", exact=True)


def test_resource_verdicts_win_over_the_exit_status() -> None:
    assert (
        run_verdict(result(exit_code=None, signal=9, oom_killed=True), "", None, False)
        is Verdict.MEMORY_LIMIT_EXCEEDED
    )
    assert (
        run_verdict(result(exit_code=None, signal=9, timed_out=True), "", None, False)
        is Verdict.TIME_LIMIT_EXCEEDED
    )
    assert (
        run_verdict(result(output_limit_exceeded=True), "", "", False)
        is Verdict.OUTPUT_LIMIT_EXCEEDED
    )


def test_crash_is_a_runtime_error_named_by_its_signal() -> None:
    crashed = result(exit_code=None, signal=11)
    assert run_verdict(crashed, "", None, False) is Verdict.RUNTIME_ERROR
    assert describe(crashed, Verdict.RUNTIME_ERROR) == "killed by SIGSEGV (signal 11)"
    assert describe(result(exit_code=3), Verdict.RUNTIME_ERROR) == "exit code 3"


def test_wrong_output_is_a_wrong_answer_and_right_output_accepted() -> None:
    assert run_verdict(result(), "41\n", "42", False) is Verdict.WRONG_ANSWER
    assert run_verdict(result(), "42\n", "42", False) is Verdict.ACCEPTED


def test_first_failing_run_names_the_execution() -> None:
    assert (
        overall_verdict([Verdict.ACCEPTED, Verdict.WRONG_ANSWER, Verdict.TIME_LIMIT_EXCEEDED])
        is Verdict.WRONG_ANSWER
    )
    assert overall_verdict([Verdict.ACCEPTED, Verdict.ACCEPTED]) is Verdict.ACCEPTED
