"""The Avro event contract: schemas, framing, round trips and every way decoding can fail."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from pydantic import ValidationError

from coderunner.errors import UndecodableEvent
from coderunner.schemas.codec import (
    PACKAGED_SCHEMAS,
    SchemaRegistry,
    SchemaVersion,
    default_registry,
    encode_key,
)
from coderunner.schemas.events import (
    EVENT_TYPES,
    LOG_CHUNK_MAX_BYTES,
    AppliedLimits,
    Comparison,
    EventBase,
    ExecutionAccepted,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionRejected,
    ExecutionSubmitted,
    LogChunk,
    RequestedLimits,
    SourceFile,
    StepCompleted,
    StepStarted,
    StepStatus,
    Stream,
    TestCase,
    TestCompleted,
    Verdict,
    truncate_utf8,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EID = "0b5c4e1e-5d0e-4a7c-9a53-3b8f3c2a9d10"
LIMITS = AppliedLimits(
    wall_time_ms=2000, cpu_time_ms=1000, memory_mb=128, processes=16, output_bytes=65536
)
COMMON_FIELDS = [
    ("event_id", "string"),
    ("execution_id", "string"),
    ("attempt", "int"),
    ("seq", "int"),
    ("occurred_at", {"type": "long", "logicalType": "timestamp-micros"}),
    ("event_type", "string"),
]


def one_of_each() -> list[EventBase]:
    """Every event type, with its optional fields set where it has any."""
    w: dict[str, Any] = {"execution_id": EID, "attempt": 1}
    return [
        ExecutionSubmitted(
            execution_id=EID,
            language="cpp",
            source="int main() { return 0; }\n",
            extra_files=(SourceFile(name="util.h", content="#pragma once\n"),),
            stdin="ignored\n",
            compiler_options=("-O2", "-std=c++20"),
            args=("--fast",),
            tests=(
                TestCase(name="small", input="1 2\n", expected_output="3\n"),
                TestCase(input="", expected_output="0\n"),
            ),
            limits=RequestedLimits(wall_time_ms=3000, memory_mb=256),
            comparison=Comparison.EXACT,
            client="unit-test/1.0",
        ),
        ExecutionAccepted(
            **w,
            seq=1,
            language="cpp",
            language_version="14.2.0",
            image="coderunner/runtime-cpp:1",
            image_digest="sha256:" + "ab" * 32,
            limits=LIMITS,
            compile_limits=LIMITS.model_copy(update={"wall_time_ms": 10_000}),
            worker="host-1/4242",
        ),
        ExecutionRejected(**w, seq=1, field="limits.memory_mb", reason="at most 512"),
        StepStarted(**w, seq=2, step="compile"),
        StepCompleted(
            **w,
            seq=3,
            step="run",
            status=StepStatus.FAILED,
            duration_us=1_234_567,
            exit_code=None,
            signal=11,
            message="killed by SIGSEGV",
        ),
        LogChunk(
            **w,
            seq=4,
            step="run",
            stream=Stream.STDERR,
            chunk_index=7,
            content="héllo \ufffd wörld\n",
            truncated=True,
        ),
        TestCompleted(
            **w,
            seq=5,
            test_index=1,
            name="edge",
            verdict=Verdict.WRONG_ANSWER,
            input="0\n",
            expected_output="0\n",
            actual_output="1\n",
            output_truncated=False,
            exit_code=0,
            time_ms=12,
            peak_memory_kb=10_240,
        ),
        ExecutionCompleted(
            **w,
            seq=6,
            verdict=Verdict.RUNTIME_ERROR,
            message="exit code 3",
            exit_code=3,
            tests_passed=1,
            tests_total=2,
            duration_us=2_000_000,
            compile_time_us=900_000,
            run_time_us=800_000,
            peak_memory_kb=20_480,
            image="coderunner/runtime-cpp:1",
            image_digest=None,
        ),
        ExecutionCancelled(**w, seq=7, reason="cancelled by the client"),
    ]


# --- an independent Parsing Canonical Form and CRC-64-AVRO, written from the Avro spec ---------

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def canonical_form(schema: Any, namespace: str = "") -> str:
    """[PRIMITIVES] [FULLNAMES] [STRIP] [ORDER] [STRINGS] [INTEGERS] [WHITESPACE] of the spec."""
    if isinstance(schema, list):
        return "[" + ",".join(canonical_form(s, namespace) for s in schema) + "]"
    if isinstance(schema, str):
        return json.dumps(schema if schema in _PRIMITIVES else _fullname(schema, namespace))
    kind = schema["type"]
    if kind in _PRIMITIVES:
        return json.dumps(kind)
    if kind == "array":
        return f'{{"type":"array","items":{canonical_form(schema["items"], namespace)}}}'
    if kind == "map":
        return f'{{"type":"map","values":{canonical_form(schema["values"], namespace)}}}'
    name = _fullname(schema["name"], schema.get("namespace", namespace))
    head = f'{{"name":{json.dumps(name)},"type":"{kind}"'
    if kind == "enum":
        return head + f',"symbols":{json.dumps(schema["symbols"], separators=(",", ":"))}}}'
    if kind == "fixed":
        return head + f',"size":{int(schema["size"])}}}'
    inner = name.rpartition(".")[0]
    fields = ",".join(
        f'{{"name":{json.dumps(f["name"])},"type":{canonical_form(f["type"], inner)}}}'
        for f in schema["fields"]
    )
    return head.replace('"type":"error"', '"type":"record"') + f',"fields":[{fields}]}}'


def avsc_files() -> list[Path]:
    return sorted(PACKAGED_SCHEMAS.glob("*.avsc"))


def raw(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


# --- the .avsc files ---------------------------------------------------------------------------


def test_one_schema_file_per_event_type() -> None:
    names = {raw(p)["name"] for p in avsc_files()}
    assert names == set(EVENT_TYPES)
    assert len(avsc_files()) == len(EVENT_TYPES)


@pytest.mark.parametrize("path", avsc_files(), ids=lambda p: p.name)
def test_schema_file_is_self_contained_and_starts_with_the_common_fields(path: Path) -> None:
    schema = raw(path)
    parse_schema(schema)  # alone: no named types borrowed from another file
    assert schema["namespace"] == "coderunner.events"
    assert re.sub(r"(?<!^)(?=[A-Z])", "_", schema["name"]).lower() + ".v1.avsc" == path.name
    assert [(f["name"], f["type"]) for f in schema["fields"][:6]] == COMMON_FIELDS


@pytest.mark.parametrize("path", avsc_files(), ids=lambda p: p.name)
def test_every_field_and_named_type_has_a_doc(path: Path) -> None:
    def walk(node: Any, where: str) -> list[str]:
        missing = []
        if isinstance(node, list):
            for item in node:
                missing += walk(item, where)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "enum") and not node.get("doc"):
                missing.append(f"{where}:{node['name']}")
            for field in node.get("fields", []):
                if not field.get("doc"):
                    missing.append(f"{where}.{field['name']}")
                missing += walk(field["type"], f"{where}.{field['name']}")
            missing += walk(node.get("items"), where)
        return missing

    assert walk(raw(path), path.stem) == []


@pytest.mark.parametrize("path", avsc_files(), ids=lambda p: p.name)
def test_every_enum_has_a_default_so_new_symbols_stay_readable(path: Path) -> None:
    enums = re.findall(r'"type": "enum",\s*"name": "(\w+)",\s*"default"', path.read_text())
    assert path.read_text().count('"type": "enum"') == len(enums)


def test_crc64_avro_matches_the_avro_projects_test_vectors() -> None:
    # From apache/avro share/test/data/schema-tests.txt (Java longs, i.e. signed).
    vectors = {
        '"null"': 7195948357588979594,
        '"int"': 8247732601305521295,
        '"string"': -8142146995180207161,
        '{"name":"foo","type":"record","fields":[]}': -4824392279771201922,
        '{"name":"x.y.foo","type":"record","fields":[]}': 5916914534497305771,
        '{"name":"foo","type":"enum","symbols":["A1"]}': -6342190197741309591,
    }
    for canonical, expected in vectors.items():
        signed = int.from_bytes(
            crc64_avro(canonical.encode()).to_bytes(8, "big"), "big", signed=True
        )
        assert signed == expected, canonical


@pytest.mark.parametrize("path", avsc_files(), ids=lambda p: p.name)
def test_fastavro_canonical_form_and_fingerprint_match_the_spec(path: Path) -> None:
    mine = canonical_form(raw(path))
    assert to_parsing_canonical_form(parse_schema(raw(path))) == mine
    version = SchemaVersion.load(path)
    assert version.canonical_form == mine
    assert version.fingerprint == crc64_avro(mine.encode()).to_bytes(8, "little")
    assert fingerprint(mine, "CRC-64-AVRO") == version.fingerprint.hex()


def test_models_declare_the_fields_of_their_schema_in_order() -> None:
    for version in default_registry():
        model = EVENT_TYPES[version.record_name]
        assert [f["name"] for f in version.schema["fields"]] == list(model.model_fields)


# --- framing and round trips -------------------------------------------------------------------


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: e.event_type)
def test_every_event_type_round_trips(event: EventBase) -> None:
    registry = default_registry()
    data = registry.encode(event)
    assert registry.decode(data) == event
    name, record = registry.decode_record(data)
    assert name == event.event_type == record["event_type"]
    assert record["event_id"] == event.event_id


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: e.event_type)
def test_header_is_c3_01_then_the_writer_fingerprint_little_endian(event: EventBase) -> None:
    data = default_registry().encode(event)
    path = PACKAGED_SCHEMAS / f"{default_registry().newest(event.event_type).path.name}"
    expected = crc64_avro(canonical_form(raw(path)).encode()).to_bytes(8, "little")
    assert data[:2] == bytes([0xC3, 0x01])
    assert data[2:10] == expected
    assert default_registry().writer_of(data).path == path


def test_occurred_at_is_utc_with_microseconds_through_a_round_trip() -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 7, 1, 12, 0, 0, 123456, tzinfo=paris)
    event = StepStarted(execution_id=EID, attempt=1, seq=1, step="run", occurred_at=local)
    assert event.occurred_at == local and event.occurred_at.tzinfo is UTC
    decoded = default_registry().decode(default_registry().encode(event))
    assert decoded.occurred_at == datetime(2026, 7, 1, 10, 0, 0, 123456, tzinfo=UTC)


def test_constructing_an_event_fills_id_time_and_type() -> None:
    before = datetime.now(UTC)
    event = ExecutionCancelled(execution_id=EID, attempt=2, seq=9, reason="shutdown")
    other = ExecutionCancelled(execution_id=EID, attempt=2, seq=9, reason="shutdown")
    assert event.event_type == "ExecutionCancelled"
    assert event.event_id != other.event_id and len(event.event_id) == 36
    assert before <= event.occurred_at <= datetime.now(UTC)


def _chunk(**changes: Any) -> dict[str, Any]:
    fields = {"execution_id": EID, "attempt": 1, "seq": 1, "step": "run", "chunk_index": 0}
    return fields | {"stream": Stream.STDOUT, "content": ""} | changes


def test_model_rules_that_avro_cannot_say() -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValidationError, match="timezone"):
        StepStarted(execution_id=EID, attempt=1, seq=1, step="run", occurred_at=naive)
    with pytest.raises(ValidationError, match="attempt"):
        LogChunk(**_chunk(attempt=0))
    with pytest.raises(ValidationError, match="at most 65536 bytes"):
        LogChunk(**_chunk(content="é" * (LOG_CHUNK_MAX_BYTES // 2 + 1)))
    with pytest.raises(ValidationError, match="Input should be 0"):
        ExecutionSubmitted(execution_id=EID, attempt=1, language="c", source="")  # type: ignore[arg-type]


def test_truncate_utf8_never_cuts_inside_a_character() -> None:
    assert truncate_utf8("abc", 3) == ("abc", False)
    assert truncate_utf8("ééé", 5) == ("éé", True)
    assert truncate_utf8("x" * 10, 4) == ("xxxx", True)


def test_key_is_the_execution_id_in_utf8() -> None:
    assert encode_key("exé-1") == "exé-1".encode()


def test_a_submission_framed_by_hand_as_the_docs_say_decodes() -> None:
    """The third-party recipe of docs/events.md, with fastavro only, read by our codec."""
    schema = parse_schema(raw(PACKAGED_SCHEMAS / "execution_submitted.v1.avsc"))
    header = b"\xc3\x01" + bytes.fromhex(
        fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    )
    body = io.BytesIO()
    now = datetime.now(UTC)
    schemaless_writer(
        body,
        schema,
        {
            "event_id": "7d0b8a34-51b5-4b8e-8e7a-7d4f1c3a2b19",
            "execution_id": EID,
            "attempt": 0,
            "seq": 0,
            "occurred_at": now,
            "event_type": "ExecutionSubmitted",
            "language": "python",
            "source": "print(input())",
            "tests": [{"name": None, "input": "hi\n", "expected_output": "hi\n"}],
        },
    )
    event = default_registry().decode(header + body.getvalue())
    assert isinstance(event, ExecutionSubmitted)
    assert event.tests == (TestCase(input="hi\n", expected_output="hi\n"),)
    assert event.limits == RequestedLimits() and event.comparison is Comparison.TRIMMED
    assert event.occurred_at == now


def test_the_worked_example_in_the_docs_decodes_to_what_the_docs_say() -> None:
    text = (REPO_ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- example-hex -->\s*```text\n(.*?)```", text, re.S)
    assert block, "docs/events.md lost its worked example"
    data = bytes.fromhex(re.sub(r"^\s*[0-9a-f]{4}:|\s", "", block[1], flags=re.M))
    event = default_registry().decode(data)
    assert isinstance(event, ExecutionSubmitted)
    assert event.event_id in text and event.execution_id in text
    assert data[2:10].hex(" ") in text.replace("\n", " ")


def test_the_docs_list_the_fingerprint_of_every_schema() -> None:
    text = (REPO_ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    for version in default_registry():
        assert f"`{version.fingerprint.hex(' ')}`" in text, version.path.name


# --- bad input ---------------------------------------------------------------------------------


def _valid() -> bytes:
    return default_registry().encode(one_of_each()[5])  # a LogChunk


def _record(**changes: Any) -> bytes:
    record = one_of_each()[5].model_dump() | changes
    return default_registry().encode_record("LogChunk", record)


BAD_INPUT = {
    "empty": (b"", "empty message"),
    "short": (b"\xc3\x01\x00", "too short: 3 bytes"),
    "wrong magic": (b"\x4f\x62" + _valid()[2:], "wrong magic bytes 4F 62"),
    "confluent": (b"\x00\x00\x00\x00\x2a" + _valid()[5:], "Confluent schema-registry framing"),
    "unknown fingerprint": (b"\xc3\x01" + bytes(8) + _valid()[10:], "unknown writer schema"),
    "header only": (_valid()[:10], "truncated LogChunk v1 body"),
    "truncated": (_valid()[:-5], "truncated LogChunk v1 body"),
    "trailing": (_valid() + b"\x00\x00", "2 trailing bytes after the LogChunk v1 body"),
    "bad enum index": (_record(stream="STDOUT").replace(b"\x06run\x00", b"\x06run\x7e"), "corrupt"),
    "not a uuid": (_record(event_id="nope"), "LogChunk failed validation: event_id"),
    "wrong event_type": (_record(event_type="StepStarted"), "event_type"),
    "bad attempt": (_record(attempt=0), "attempt: Input should be greater than or equal to 1"),
}


@pytest.mark.parametrize(("data", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_raises_undecodable_event_naming_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(UndecodableEvent, match=re.escape(message)):
        default_registry().decode(data)


def test_decode_record_skips_model_rules_but_not_framing() -> None:
    name, record = default_registry().decode_record(_record(event_id="nope"))
    assert (name, record["event_id"]) == ("LogChunk", "nope")
    with pytest.raises(UndecodableEvent, match="too short"):
        default_registry().decode_record(b"\xc3\x01")


def test_registry_refuses_misnamed_schema_files(tmp_path: Path) -> None:
    source = PACKAGED_SCHEMAS / "log_chunk.v1.avsc"
    (tmp_path / "logchunk.v1.avsc").write_bytes(source.read_bytes())
    with pytest.raises(ValueError, match=r"record LogChunk belongs in log_chunk\.vN\.avsc"):
        SchemaRegistry(tmp_path)
    (tmp_path / "logchunk.v1.avsc").rename(tmp_path / "log_chunk.avsc")
    with pytest.raises(ValueError, match=r"<snake_name>\.v<N>\.avsc"):
        SchemaRegistry(tmp_path)
