"""A third party that only read docs/events.md publishes a submission and reads it back.

On purpose this module imports nothing from `coderunner`: it uses the `.avsc` files, fastavro
and aiokafka exactly as the document tells an outside producer to. The same bytes are decoded
by coderunner's own codec in tests/unit/test_codec.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

pytestmark = pytest.mark.integration

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
SUBMISSIONS_TOPIC = "coderunner.submissions"
SCHEMAS = Path(__file__).resolve().parents[2] / "coderunner" / "schemas" / "avro"
MAGIC = b"\xc3\x01"

# --- the helpers of the example in docs/events.md, as written there ----------------------------


def schema_fingerprint(schema: Any) -> bytes:
    """The 8 header bytes naming a schema (fastavro's hex is already in little-endian order)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def load_schemas(directory: Path) -> dict[bytes, Any]:
    """Every writer schema we know, by fingerprint."""
    schemas = {}
    for path in sorted(directory.glob("*.avsc")):
        schema = parse_schema(json.loads(path.read_text(encoding="utf-8")))
        schemas[schema_fingerprint(schema)] = schema
    return schemas


def encode(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    out.write(MAGIC + schema_fingerprint(schema))
    schemaless_writer(out, schema, record)
    return out.getvalue()


def decode(schemas: dict[bytes, Any], data: bytes) -> dict[str, Any]:
    if len(data) < 10 or data[:2] != MAGIC:
        raise ValueError("not an Avro single-object encoded message")
    schema = schemas.get(data[2:10])
    if schema is None:
        raise ValueError(f"unknown writer schema {data[2:10].hex()}: get the newer .avsc files")
    body = io.BytesIO(data[10:])
    record = schemaless_reader(body, schema)
    if body.tell() != len(data) - 10:
        raise ValueError("trailing bytes after the record")
    assert isinstance(record, dict)
    return record


# --- the test ----------------------------------------------------------------------------------


async def _started_producer() -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", request_timeout_ms=10_000)
    try:
        await producer.start()
        return producer
    except (KafkaError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    await producer.stop()
    pytest.fail(
        f"Kafka is not reachable at {BOOTSTRAP} ({reason}): "
        "start the local stack with `make stack-up`.",
        pytrace=False,
    )


async def _read_at(partition: TopicPartition, offset: int) -> tuple[bytes, bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None)
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, offset)
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        assert message.key is not None and message.value is not None
        return message.key, message.value
    finally:
        await consumer.stop()


async def test_a_submission_built_from_the_published_contract_crosses_kafka_intact() -> None:
    schemas = load_schemas(SCHEMAS)
    submitted = parse_schema(
        json.loads((SCHEMAS / "execution_submitted.v1.avsc").read_text(encoding="utf-8"))
    )
    execution_id = str(uuid.uuid4())
    submission = {
        "event_id": str(uuid.uuid4()),
        "execution_id": execution_id,
        "attempt": 0,
        "seq": 0,
        "occurred_at": datetime.now(UTC),
        "event_type": "ExecutionSubmitted",
        "language": "python",
        "source": "print(input()[::-1])",
        "tests": [{"name": "reverse", "input": "abc\n", "expected_output": "cba\n"}],
        "client": "third-party-test/1.0",
    }  # every other field takes its schema default
    value = encode(submitted, submission)
    assert value[:10] == bytes([0xC3, 0x01]) + schema_fingerprint(submitted)

    producer = await _started_producer()
    try:
        sent = await producer.send_and_wait(
            SUBMISSIONS_TOPIC, value, key=execution_id.encode("utf-8")
        )
    finally:
        await producer.stop()

    key, data = await _read_at(TopicPartition(SUBMISSIONS_TOPIC, sent.partition), sent.offset)
    assert (key, data) == (execution_id.encode("utf-8"), value)
    record = decode(schemas, data)
    assert record == submission | {
        "extra_files": [],
        "stdin": "",
        "compiler_options": [],
        "args": [],
        "limits": dict.fromkeys(
            ("wall_time_ms", "cpu_time_ms", "memory_mb", "processes", "output_bytes")
        ),
        "comparison": "TRIMMED",
    }
