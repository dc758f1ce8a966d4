"""Events <-> bytes: Avro single-object encoding with fastavro, old writer schemas resolved.

A message value is

    C3 01 | fingerprint (8 bytes) | Avro binary body

where the fingerprint is the CRC-64-AVRO (Rabin) fingerprint of the writer schema's Parsing
Canonical Form, little-endian, exactly the bytes fastavro's `fingerprint(..., "CRC-64-AVRO")`
spells in hex. The body is fastavro's `schemaless_writer` output.

Every event is keyed by its execution id (`encode_key`), so all events of one execution land
in one partition, in order.

A `SchemaRegistry` reads the `<snake_name>.vN.avsc` files: any known version can be read (found
by fingerprint) and is resolved to the newest version of its record, which is also the one
used to write. Whatever is wrong with some bytes, decoding raises `UndecodableEvent` saying what.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from pydantic import ValidationError

from coderunner.errors import UndecodableEvent
from coderunner.schemas.events import EVENT_TYPES, Event, EventBase

MAGIC = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE
FINGERPRINT_ALGORITHM = "CRC-64-AVRO"
NAMESPACE = "coderunner.events"
PACKAGED_SCHEMAS = Path(__file__).resolve().parent / "avro"

_FILE_NAME = re.compile(r"(?P<stem>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc")
_CONFLUENT_MAGIC = 0


def encode_key(execution_id: str) -> bytes:
    """The Kafka key of every event: the execution id as UTF-8, so one execution = one partition."""
    return execution_id.encode("utf-8")


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """The 8 header bytes naming a schema: CRC-64-AVRO of its canonical form, little-endian."""
    canonical = to_parsing_canonical_form(dict(schema))
    return bytes.fromhex(fingerprint(canonical, FINGERPRINT_ALGORITHM))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One `.avsc` file: a version of one event record."""

    record_name: str  # short name, equal to event_type, e.g. "LogChunk"
    version: int
    path: Path
    schema: dict[str, Any]  # as parsed by fastavro
    canonical_form: str
    fingerprint: bytes

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint

    @classmethod
    def load(cls, path: Path) -> SchemaVersion:
        """Parse a `<snake_name>.vN.avsc` file; ValueError when the file breaks a naming rule."""
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise ValueError(f"{path}: schema files are named <snake_name>.v<N>.avsc")
        schema = parse_schema(json.loads(path.read_text(encoding="utf-8")))
        if not isinstance(schema, dict) or schema["type"] != "record":
            raise ValueError(f"{path}: expected a record schema")
        namespace, _, name = str(schema["name"]).rpartition(".")
        if namespace != NAMESPACE:
            raise ValueError(f"{path}: expected a record in namespace {NAMESPACE}")
        if _snake_case(name) != match["stem"]:
            raise ValueError(f"{path}: record {name} belongs in {_snake_case(name)}.vN.avsc")
        canonical = to_parsing_canonical_form(schema)
        return cls(
            record_name=name,
            version=int(match["version"]),
            path=path,
            schema=schema,
            canonical_form=canonical,
            fingerprint=bytes.fromhex(fingerprint(canonical, FINGERPRINT_ALGORITHM)),
        )


class SchemaRegistry:
    """Every known version of every event schema, from the `.avsc` files under a directory."""

    def __init__(self, directory: Path = PACKAGED_SCHEMAS) -> None:
        self.directory = directory
        versions = [SchemaVersion.load(path) for path in sorted(directory.rglob("*.avsc"))]
        if not versions:
            raise ValueError(f"no *.avsc schema files under {directory}")
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._newest: dict[str, SchemaVersion] = {}
        for version in sorted(versions, key=lambda v: (v.record_name, v.version)):
            self._by_fingerprint.setdefault(version.fingerprint, version)
            self._newest[version.record_name] = version
        # Fields of a newest schema that its model does not declare (a schema ahead of the code).
        self._unknown_fields = {
            name: frozenset(_field_names(v.schema)) - set(EVENT_TYPES[name].model_fields)
            for name, v in self._newest.items()
            if name in EVENT_TYPES
        }

    # --- what is known ----------------------------------------------------------------------

    def __iter__(self) -> Iterator[SchemaVersion]:
        """Every version, ordered by record name then version."""
        return iter(sorted(self._by_fingerprint.values(), key=lambda v: (v.record_name, v.version)))

    def newest(self, record_name: str) -> SchemaVersion:
        """The version used to write a record, and to read every older version of it."""
        try:
            return self._newest[record_name]
        except KeyError:
            raise KeyError(f"no schema for record {record_name!r} under {self.directory}") from None

    def writer_of(self, data: bytes) -> SchemaVersion:
        """The schema version that wrote these bytes, from their header."""
        if not data:
            raise UndecodableEvent("empty message: no value (a tombstone?)")
        if len(data) < HEADER_SIZE:
            raise UndecodableEvent(
                f"too short: {len(data)} bytes, an event has at least {HEADER_SIZE} "
                "(2 magic bytes C3 01 and an 8-byte schema fingerprint)"
            )
        if data[:2] != MAGIC:
            raise UndecodableEvent(_describe_wrong_magic(data))
        fp = bytes(data[2:HEADER_SIZE])
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UndecodableEvent(
                f"unknown writer schema fingerprint {fp.hex()}: none of the "
                f"{len(self._by_fingerprint)} schemas under {self.directory} has it "
                "(written with a newer or foreign schema?)"
            ) from None

    # --- encoding ---------------------------------------------------------------------------

    def encode(self, event: EventBase) -> bytes:
        """Frame an event with the newest schema of its record."""
        return self.encode_record(event.event_type, event.model_dump())

    def encode_record(self, record_name: str, record: Mapping[str, Any]) -> bytes:
        """Frame a plain dict with the newest schema of record_name (no model validation)."""
        version = self.newest(record_name)
        buffer = io.BytesIO()
        buffer.write(version.header)
        schemaless_writer(buffer, version.schema, record)
        return buffer.getvalue()

    # --- decoding ---------------------------------------------------------------------------

    def decode_record(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The record name and the record as a dict, resolved to the newest schema."""
        writer = self.writer_of(data)
        reader = self._newest[writer.record_name]
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(
                buffer, writer.schema, None if reader is writer else reader.schema
            )
        except SchemaResolutionError as exc:  # the newest schema broke an evolution rule
            raise UndecodableEvent(
                f"{_label(writer)} cannot be read with {_label(reader)}: {exc}"
            ) from exc
        except EOFError as exc:
            raise UndecodableEvent(
                f"truncated {_label(writer)} body: the data ends before the record does"
            ) from exc
        except Exception as exc:  # fastavro raises many kinds on bad bytes: translate them here
            raise UndecodableEvent(
                f"corrupt {_label(writer)} body: {type(exc).__name__}: {exc}"
            ) from exc
        if buffer.tell() != len(data):
            raise UndecodableEvent(
                f"{len(data) - buffer.tell()} trailing bytes after the {_label(writer)} body "
                "(corrupt, or encoded with another schema)"
            )
        return writer.record_name, cast(dict[str, Any], record)

    def decode(self, data: bytes) -> Event:
        """The event model; UndecodableEvent also when the record breaks a model rule."""
        name, record = self.decode_record(data)
        model = EVENT_TYPES.get(name)
        if model is None:
            raise UndecodableEvent(f"{name} is a known schema but not an event this code handles")
        unknown = self._unknown_fields.get(name)
        if unknown:
            record = {k: v for k, v in record.items() if k not in unknown}
        try:
            return cast(Event, model.model_validate(record))
        except ValidationError as exc:
            raise UndecodableEvent(
                f"{name} failed validation: {_summarize(exc)}  (execution_id="
                f"{str(record.get('execution_id'))[:128]!r})"
            ) from exc


@functools.cache
def default_registry() -> SchemaRegistry:
    """The registry of the schemas packaged with this code (loaded once)."""
    return SchemaRegistry()


def _field_names(schema: Mapping[str, Any]) -> Iterator[str]:
    return (str(field["name"]) for field in schema["fields"])


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _label(version: SchemaVersion) -> str:
    return f"{version.record_name} v{version.version}"


def _describe_wrong_magic(data: bytes) -> str:
    got = bytes(data[:2]).hex(" ").upper()
    if data[0] == _CONFLUENT_MAGIC:
        schema_id = int.from_bytes(data[1:5], "big")
        return (
            f"wrong magic bytes {got}: this looks like Confluent schema-registry framing "
            f"(schema id {schema_id}), which is not supported; expected C3 01 "
            "(Avro single-object encoding)"
        )
    return f"wrong magic bytes {got}: expected C3 01 (Avro single-object encoding)"


def _summarize(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(record)'}: {error['msg']}"
        for error in exc.errors()[:5]
    )
