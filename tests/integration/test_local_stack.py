"""The local stack is real: messages cross the broker on both listeners, PostgreSQL answers,
and every runtime image runs a program."""

from __future__ import annotations

import uuid

import docker
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from coderunner.errors import ServiceUnavailable
from coderunner.languages import languages
from coderunner.projections.database import connection, ping_postgres
from coderunner.sandbox.docker_engine import ping_docker
from coderunner.settings import Settings
from coderunner.streams.kafka_config import aiokafka_kwargs
from coderunner.streams.probe import ping_kafka
from tests.conftest import local_settings, read_sasl_env, sasl_settings

pytestmark = pytest.mark.integration


async def _round_trip(settings: Settings) -> list[tuple[bytes, bytes]]:
    topic = f"test.stack.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings))
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"value-{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, **aiokafka_kwargs(settings), auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=3)
        return [(m.key, m.value) for records in batch.values() for m in records]
    finally:
        await consumer.stop()


async def test_message_crosses_the_plaintext_listener(kafka: Settings) -> None:
    received = await _round_trip(kafka)
    assert received == [(b"k", b"value-0"), (b"k", b"value-1"), (b"k", b"value-2")]


async def test_message_crosses_the_sasl_ssl_listener_like_event_hubs(kafka: Settings) -> None:
    received = await _round_trip(sasl_settings())
    assert [value for _, value in received] == [b"value-0", b"value-1", b"value-2"]


async def test_wrong_event_hubs_key_fails_clearly_without_leaking_it(kafka: Settings) -> None:
    real = read_sasl_env()["KAFKA_CONNECTION_STRING"]
    wrong = real.replace("SharedAccessKey=", "SharedAccessKey=WRONG")
    with pytest.raises(ServiceUnavailable) as caught:
        await ping_kafka(sasl_settings(wrong), timeout_ms=10_000)
    message = str(caught.value)
    assert "authentication failed" in message
    assert "KAFKA_CONNECTION_STRING" in message
    assert "SharedAccessKey=" not in message and real not in message


async def test_postgres_answers_a_query(postgres: Settings) -> None:
    async with connection(postgres) as conn:
        assert await conn.fetchval("SELECT current_database()") == "coderunner"
        assert await conn.fetchval("SELECT 6 * 7") == 42


# One tiny program per runtime image: (language id, source, expected stdout).
PROGRAMS = {
    "python": ('print("hi from", 6 * 7)', "hi from 42"),
    "javascript": ('console.log("hi from", 6 * 7)', "hi from 42"),
    "java": (
        "public class Main { public static void main(String[] a) "
        '{ System.out.println("hi from " + 6 * 7); } }',
        "hi from 42",
    ),
    "c": ('#include <stdio.h>\nint main(void){printf("hi from %d\\n", 6*7);}', "hi from 42"),
    "cpp": (
        '#include <iostream>\nint main(){std::cout << "hi from " << 6*7 << "\\n";}',
        "hi from 42",
    ),
    "go": ('package main\nimport "fmt"\nfunc main(){ fmt.Println("hi from", 6*7) }', "hi from 42"),
    "rust": ('fn main() { println!("hi from {}", 6 * 7); }', "hi from 42"),
    "ruby": ('puts "hi from #{6 * 7}"', "hi from 42"),
    "php": ('<?php echo "hi from " . (6 * 7) . "\\n";', "hi from 42"),
    "bash": ('echo "hi from $((6 * 7))"', "hi from 42"),
}


def test_every_language_has_a_smoke_program() -> None:
    assert set(PROGRAMS) == set(languages())


@pytest.mark.parametrize("lang_id", sorted(PROGRAMS))
def test_runtime_image_runs_a_program(docker_engine: Settings, lang_id: str) -> None:
    """Straight through the docker SDK, locked down as the sandbox will be."""
    language = languages()[lang_id]
    source, expected = PROGRAMS[lang_id]
    steps = [f"printf '%s' \"$SRC\" > {language.file}"]
    if language.compile:
        steps.append(" ".join(language.compile))
    steps.append(" ".join(language.run))
    client = docker.from_env()
    try:
        output = client.containers.run(
            language.image(docker_engine.sandbox_image_set),
            ["sh", "-c", " && ".join(steps)],
            environment={"SRC": source},
            remove=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/work": "rw,exec,size=256m,uid=65534,gid=65534"},
            working_dir="/work",
            user="65534:65534",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="1g",
            memswap_limit="1g",
            pids_limit=128,
        )
    finally:
        client.close()
    assert output.decode().strip() == expected


async def test_missing_kafka_fails_with_how_to_start_it() -> None:
    with pytest.raises(ServiceUnavailable, match="make stack-up"):
        await ping_kafka(local_settings(kafka_bootstrap_servers="127.0.0.1:1"), timeout_ms=2000)


async def test_missing_postgres_fails_with_how_to_start_it_and_no_password() -> None:
    settings = local_settings(postgres_dsn="postgresql://u:s3cret-pw@127.0.0.1:1/db")
    with pytest.raises(ServiceUnavailable, match="make stack-up") as caught:
        await ping_postgres(settings)
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:1/db" in str(caught.value)


def test_missing_docker_fails_with_how_to_start_it() -> None:
    with pytest.raises(ServiceUnavailable, match="make stack-up"):
        ping_docker(local_settings(docker_host="tcp://127.0.0.1:1"))
