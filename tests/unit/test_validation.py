"""Submission rules: each broken rule is named by its field, before anything runs."""

from __future__ import annotations

from typing import Any

import pytest

from coderunner.errors import InvalidSubmission
from coderunner.handlers.validation import plan_execution
from coderunner.languages import languages
from coderunner.schemas.events import ExecutionSubmitted
from coderunner.settings import Settings


def submission(**fields: Any) -> ExecutionSubmitted:
    base: dict[str, Any] = {"execution_id": "e-1", "language": "python", "source": "print(1)"}
    return ExecutionSubmitted(**(base | fields))


def broken_field(**fields: Any) -> str:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(InvalidSubmission) as caught:
        plan_execution(submission(**fields), languages(), settings)
    return caught.value.field


def test_a_valid_submission_gets_the_language_defaults_within_the_maxima() -> None:
    settings = Settings(_env_file=None, sandbox_max_memory_mb=200)  # type: ignore[call-arg]
    plan = plan_execution(submission(limits={"wall_time_ms": 1500}), languages(), settings)
    assert plan.files == {"main.py": b"print(1)"}
    assert plan.limits.wall_time_ms == 1500
    assert plan.limits.memory_mb == 200  # the default 256 is capped by the server maximum


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"language": "cobol"}, "language"),
        ({"source": ""}, "source"),
        ({"source": "x" * (64 * 1024 + 1)}, "source"),
        ({"limits": {"memory_mb": 10**6}}, "limits.memory_mb"),
        ({"limits": {"wall_time_ms": 0}}, "limits.wall_time_ms"),
        ({"limits": {"processes": -1}}, "limits.processes"),
        ({"tests": [{"input": "", "expected_output": ""}] * 65}, "tests"),
        ({"stdin": "x" * (1024 * 1024 + 1)}, "stdin"),
        ({"extra_files": [{"name": "../escape", "content": ""}]}, "extra_files[0].name"),
        ({"extra_files": [{"name": "main.py", "content": ""}]}, "extra_files[0].name"),
    ],
)
def test_each_broken_rule_names_its_field(fields: dict[str, Any], field: str) -> None:
    assert broken_field(**fields) == field


def test_unknown_language_lists_the_known_ones() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(InvalidSubmission, match="python") as caught:
        plan_execution(submission(language="cobol"), languages(), settings)
    assert "cobol" in str(caught.value)
