"""Schemas evolve without breaking old events: written with v1, read with v2."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from coderunner.errors import UndecodableEvent
from coderunner.schemas.codec import PACKAGED_SCHEMAS, SchemaRegistry
from coderunner.schemas.events import ExecutionCompleted, ExecutionSubmitted, TestCase, Verdict

EID = "9a1c0d7e-6f3b-4c2a-8e5d-1b2c3d4e5f60"


def submission() -> ExecutionSubmitted:
    return ExecutionSubmitted(
        execution_id=EID,
        language="python",
        source="print(input())",
        tests=(TestCase(input="a\n", expected_output="a\n"),),
        client="evolution-test",
    )


def copy_schemas(target: Path) -> Path:
    target.mkdir()
    for path in PACKAGED_SCHEMAS.glob("*.avsc"):
        shutil.copy(path, target / path.name)
    return target


def packaged(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((PACKAGED_SCHEMAS / name).read_text(encoding="utf-8"))
    return schema


def with_v2(tmp_path: Path, change: dict[str, Any]) -> SchemaRegistry:
    """The packaged schemas plus an execution_submitted.v2.avsc changed as given."""
    directory = copy_schemas(tmp_path / "v1-and-v2")
    schema = packaged("execution_submitted.v1.avsc")
    fields = [f for f in schema["fields"] if f["name"] not in change.get("remove", ())]
    schema["fields"] = fields + change.get("add", [])
    (directory / "execution_submitted.v2.avsc").write_text(json.dumps(schema, indent=2))
    return SchemaRegistry(directory)


PRIORITY = {"name": "priority", "type": "int", "default": 0, "doc": "Higher runs sooner."}


@pytest.fixture
def v1(tmp_path: Path) -> SchemaRegistry:
    return SchemaRegistry(copy_schemas(tmp_path / "v1"))


def test_v1_event_reads_with_v2_and_the_added_field_takes_its_default(
    v1: SchemaRegistry, tmp_path: Path
) -> None:
    v2 = with_v2(tmp_path, {"add": [PRIORITY]})
    data = v1.encode(submission())

    assert v2.writer_of(data).version == 1
    name, record = v2.decode_record(data)
    assert (name, record["priority"]) == ("ExecutionSubmitted", 0)
    assert v2.decode(data) == submission().model_copy(
        update={"event_id": record["event_id"], "occurred_at": record["occurred_at"]}
    )


def test_v2_event_names_its_writer_schema_and_old_readers_say_so(
    v1: SchemaRegistry, tmp_path: Path
) -> None:
    v2 = with_v2(tmp_path, {"add": [PRIORITY]})
    record = submission().model_dump() | {"priority": 7}
    data = v2.encode_record("ExecutionSubmitted", record)

    writer = v2.writer_of(data)
    assert (writer.version, writer.path.name) == (2, "execution_submitted.v2.avsc")
    assert data[2:10] == writer.fingerprint != v1.newest("ExecutionSubmitted").fingerprint
    assert v2.decode_record(data)[1]["priority"] == 7
    # A model that predates the field still reads the event (it ignores the field).
    assert v2.decode(data).event_id == record["event_id"]
    # A reader that never saw v2 cannot guess its layout: deploy new schemas to readers first.
    with pytest.raises(
        UndecodableEvent, match=f"unknown writer schema fingerprint {data[2:10].hex()}"
    ):
        v1.decode(data)


def test_v2_that_removes_a_field_with_a_default(v1: SchemaRegistry, tmp_path: Path) -> None:
    v2 = with_v2(tmp_path, {"remove": ["client"]})
    old = v1.encode(submission())

    _, record = v2.decode_record(old)
    assert "client" not in record  # v1's value is skipped over
    decoded_old = v2.decode(old)
    assert isinstance(decoded_old, ExecutionSubmitted)
    assert decoded_old.client is None  # the model's default

    new = v2.encode(submission())  # the model still has `client`: v2 leaves it out
    assert v2.writer_of(new).version == 2
    decoded = v2.decode(new)
    assert isinstance(decoded, ExecutionSubmitted)
    assert (decoded.client, decoded.tests) == (None, submission().tests)


def test_a_field_added_without_a_default_breaks_old_events_loudly(
    v1: SchemaRegistry, tmp_path: Path
) -> None:
    v2 = with_v2(tmp_path, {"add": [{"name": "priority", "type": "int", "doc": "no default"}]})
    with pytest.raises(
        UndecodableEvent,
        match="ExecutionSubmitted v1 cannot be read with ExecutionSubmitted v2: "
        "No default value for field priority",
    ):
        v2.decode(v1.encode(submission()))


def test_an_enum_symbol_unknown_to_the_reader_reads_as_the_enum_default() -> None:
    reader = packaged("execution_completed.v1.avsc")
    writer = packaged("execution_completed.v1.avsc")
    verdict = next(f for f in writer["fields"] if f["name"] == "verdict")
    verdict["type"]["symbols"].append("SECURITY_VIOLATION")
    event = ExecutionCompleted(
        execution_id=EID,
        attempt=1,
        seq=9,
        verdict=Verdict.ACCEPTED,
        tests_passed=0,
        tests_total=0,
        duration_us=1,
        run_time_us=1,
        image="img",
    )
    body = io.BytesIO()
    schemaless_writer(
        body, parse_schema(writer), event.model_dump() | {"verdict": "SECURITY_VIOLATION"}
    )
    body.seek(0)
    record = schemaless_reader(body, parse_schema(writer), parse_schema(reader))
    assert isinstance(record, dict)
    assert record["verdict"] == "INTERNAL_ERROR"
