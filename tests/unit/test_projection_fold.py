"""The pure fold: events -> read-model row changes, without any service."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coderunner.domain import AppliedLimits, Stream, Verdict
from coderunner.projections.fold import (
    ExecutionRow,
    InvariantViolated,
    Outcome,
    RowChanges,
    fold,
)
from coderunner.schemas import events as ev
from coderunner.schemas.codec import default_registry

EID = "ex-1"
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
LIMITS = AppliedLimits(
    wall_time_ms=1000, cpu_time_ms=1000, memory_mb=64, processes=16, output_bytes=65536
)


def record(event: ev.EventBase) -> tuple[str, dict[str, Any]]:
    """The event as the projector sees it: encoded, then decoded by the codec."""
    return default_registry().decode_record(default_registry().encode(event))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submitted(**fields: Any) -> ev.ExecutionSubmitted:
    values: dict[str, Any] = {
        "execution_id": EID,
        "language": "python",
        "source": "print(input())",
        "tests": [{"name": "echo", "input": "a\n", "expected_output": "a\n"}],
        "occurred_at": T0,
    }
    return ev.ExecutionSubmitted(**(values | fields))


def attempt_events(attempt: int, *, finish: bool = True) -> list[ev.EventBase]:
    """A realistic attempt: validate, prepare + accepted, test-1 with a log and a result."""
    seq = iter(range(1, 100))
    common = lambda: {"execution_id": EID, "attempt": attempt, "seq": next(seq)}  # noqa: E731
    out: list[ev.EventBase] = [
        ev.StepStarted(**common(), step="validate", occurred_at=at(1)),
        ev.StepCompleted(
            **common(), step="validate", status=ev.StepStatus.SUCCEEDED, duration_us=5
        ),
        ev.StepStarted(**common(), step="prepare"),
        ev.ExecutionAccepted(
            **common(),
            language="python",
            language_version="3.12",
            image="coderunner/runtime-python",
            limits=LIMITS,
            compile_limits=LIMITS,
            worker=f"w{attempt}",
            occurred_at=at(2),
        ),
        ev.StepCompleted(**common(), step="prepare", status=ev.StepStatus.SUCCEEDED, duration_us=9),
        ev.StepStarted(**common(), step="test-1"),
        ev.LogChunk(**common(), step="test-1", stream=Stream.STDOUT, chunk_index=0, content="a\n"),
    ]
    if finish:
        out += [
            ev.TestCompleted(
                **common(),
                test_index=0,
                name="echo",
                verdict=Verdict.ACCEPTED,
                input="a\n",
                expected_output="a\n",
                actual_output="a\n",
                output_truncated=False,
                exit_code=0,
                time_ms=12,
            ),
            ev.StepCompleted(
                **common(), step="test-1", status=ev.StepStatus.SUCCEEDED, duration_us=1
            ),
            ev.ExecutionCompleted(
                **common(),
                verdict=Verdict.ACCEPTED,
                tests_passed=1,
                tests_total=1,
                duration_us=2000,
                run_time_us=1000,
                image="coderunner/runtime-python",
                occurred_at=at(3),
            ),
        ]
    return out


def apply_all(
    events: list[ev.EventBase], rows: dict[str, ExecutionRow] | None = None
) -> tuple[dict[str, ExecutionRow], RowChanges, list[Outcome]]:
    rows = {} if rows is None else rows
    changes = RowChanges()
    outcomes = []
    for event in events:
        name, rec = record(event)
        outcomes.append(fold(rows, changes, name, rec, name == "ExecutionSubmitted"))
    return rows, changes, outcomes


def test_a_submission_alone_is_queued_with_what_it_asked_for() -> None:
    rows, changes, outcomes = apply_all([submitted()])
    row = rows[EID]
    assert outcomes == [Outcome.APPLIED]
    assert (row.status, row.attempt, row.language, row.tests_total) == ("queued", 0, "python", 1)
    assert row.submitted_at == T0 and row.source == "print(input())"
    assert json.loads(row.test_cases or "")[0]["name"] == "echo"
    assert changes.executions[EID] is row


def test_a_whole_execution_folds_into_rows() -> None:
    rows, changes, _ = apply_all([submitted(), *attempt_events(1)])
    row = rows[EID]
    assert (row.status, row.verdict, row.attempt, row.tests_passed) == (
        "completed",
        "ACCEPTED",
        1,
        1,
    )
    assert row.started_at == at(2) and row.completed_at == at(3) and row.worker == "w1"
    assert json.loads(row.limits or "")["memory_mb"] == 64
    steps = {r[2]: r for r in changes.step_rows()}
    assert set(steps) == {"validate", "prepare", "test-1"}
    assert steps["validate"][4] == "succeeded" and steps["validate"][5] == at(1)
    [log] = changes.log_rows()
    assert log[5:7] == ("stdout", "a\n")
    [test] = changes.test_rows()
    assert test[5] == "ACCEPTED" and test[12] == 12


def test_accepted_means_running() -> None:
    rows, _, _ = apply_all([submitted(), *attempt_events(1, finish=False)])
    assert rows[EID].status == "running"


@pytest.mark.parametrize(
    ("terminal", "status"),
    [
        (
            ev.ExecutionRejected(execution_id=EID, attempt=1, seq=3, field="language", reason="no"),
            "rejected",
        ),
        (ev.ExecutionCancelled(execution_id=EID, attempt=1, seq=3, reason="shutdown"), "cancelled"),
    ],
)
def test_rejected_and_cancelled_are_terminal(terminal: ev.EventBase, status: str) -> None:
    rows, _, _ = apply_all([submitted(), *attempt_events(1, finish=False)[:2], terminal])
    assert rows[EID].status == status
    assert rows[EID].completed_at == terminal.occurred_at


def test_every_event_twice_changes_nothing() -> None:
    events = [submitted(), *attempt_events(1)]
    once, _, _ = apply_all(events)
    rows, changes, outcomes = apply_all(events, {EID: _copy(once[EID])})
    assert set(outcomes) == {Outcome.DUPLICATE}
    assert rows[EID] == once[EID]
    assert not changes.executions and not changes.logs and not changes.steps


def test_a_second_submission_of_the_same_id_is_ignored() -> None:
    rows, _, outcomes = apply_all([submitted(), submitted(source="other")])
    assert outcomes == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert rows[EID].source == "print(input())"


def test_a_newer_attempt_supersedes_the_older_ones_rows() -> None:
    crashed = attempt_events(1, finish=False)
    rows, changes, _ = apply_all([submitted(), *crashed, *attempt_events(2)])
    assert rows[EID].attempt == 2 and rows[EID].worker == "w2"
    assert changes.superseded == {EID: 2}
    assert {r[1] for r in changes.step_rows() + changes.log_rows() + changes.test_rows()} == {2}


def test_a_late_event_of_an_older_attempt_changes_nothing() -> None:
    rows, _, _ = apply_all([submitted(), *attempt_events(1, finish=False), *attempt_events(2)])
    before = _copy(rows[EID])
    late = ev.LogChunk(
        execution_id=EID,
        attempt=1,
        seq=50,
        step="run",
        stream=Stream.STDOUT,
        chunk_index=9,
        content="late",
    )
    _, changes, outcomes = apply_all([late], rows)
    assert outcomes == [Outcome.STALE]
    assert rows[EID] == before and not changes.logs


def test_worker_events_before_the_submission_give_the_same_row() -> None:
    submission, events = submitted(), attempt_events(1)
    in_order, _, _ = apply_all([submission, *events])
    reversed_topics, _, _ = apply_all([*events, submission])
    assert reversed_topics[EID] == in_order[EID]


def test_an_event_after_the_terminal_event_is_an_invariant_violation() -> None:
    rows, _, _ = apply_all([submitted(), *attempt_events(1)])
    extra = ev.StepStarted(execution_id=EID, attempt=1, seq=99, step="more")
    name, rec = record(extra)
    with pytest.raises(InvariantViolated, match="follows the terminal event"):
        fold(rows, RowChanges(), name, rec, False)


def test_events_on_the_wrong_topic_are_invariant_violations() -> None:
    name, rec = record(submitted())
    with pytest.raises(InvariantViolated, match="events topic"):
        fold({}, RowChanges(), name, rec, False)
    name, rec = record(attempt_events(1)[0])
    with pytest.raises(InvariantViolated, match="submissions topic"):
        fold({}, RowChanges(), name, rec, True)


def test_nul_characters_become_replacement_characters_in_json() -> None:
    rows, _, _ = apply_all([submitted(tests=[{"input": "a\x00", "expected_output": ""}])])
    assert "\\u0000" not in (rows[EID].test_cases or "")


def _copy(row: ExecutionRow) -> ExecutionRow:
    return ExecutionRow(*row.as_tuple())


def test_a_cancel_request_changes_no_row() -> None:
    rows, _, _ = apply_all([submitted()])
    request = ev.ExecutionCancelRequested(execution_id=EID, reason="enough")
    name, rec = record(request)
    changes = RowChanges()
    assert fold(rows, changes, name, rec, True) is Outcome.IGNORED
    assert rows[EID].status == "queued" and not changes.executions
