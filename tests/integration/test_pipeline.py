"""End to end through the real stack: submission on Kafka -> worker -> Docker -> events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from coderunner.domain import Stream, Verdict
from coderunner.schemas import events as ev
from coderunner.settings import Settings
from coderunner.streams.client import ExecutionClient, new_submission
from coderunner.streams.kafka_config import aiokafka_kwargs
from tests.integration.programs import FACTORIAL, HELLO, REVERSE
from tests.integration.workers import WorkerProcess, isolated_settings, run_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_settings(kafka: Settings, postgres: Settings, docker_engine: Settings) -> Settings:
    return isolated_settings(sandbox_max_in_flight=4)


@pytest.fixture(scope="module")
def worker(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        stack_settings, tmp_path_factory.mktemp("worker") / "worker.log"
    ).start()
    yield process
    process.stop()


def terminal(events: list[Any]) -> Any:
    return events[-1]


def stdout_of(events: list[Any]) -> str:
    return "".join(
        e.content for e in events if isinstance(e, ev.LogChunk) and e.stream is Stream.STDOUT
    )


async def read_topic(
    settings: Settings, topic: str, at_least: int = 0, within: float = 60
) -> list[Any]:
    """Every record of a topic from its beginning (waiting for `at_least` of them)."""
    reader = AIOKafkaConsumer(
        topic, **aiokafka_kwargs(settings), group_id=None, auto_offset_reset="earliest"
    )
    await reader.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            batch = await reader.getmany(timeout_ms=2000, max_records=100_000)
            records += [r for part in batch.values() for r in part]
            done = len(records) >= at_least and not batch
            if done or asyncio.get_running_loop().time() > deadline:
                return records
    finally:
        await reader.stop()


def managed_containers(execution_id: str) -> list[Any]:
    client = docker.from_env()
    try:
        return client.containers.list(
            all=True,
            filters={"label": f"coderunner.execution={execution_id}"},
            ignore_removed=True,  # auto-removed containers may vanish while being listed
        )
    finally:
        client.close()


async def until_removed(execution_id: str, within: float = 10.0) -> None:
    """The container goes right after the verdict is announced; give the engine a moment."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while managed_containers(execution_id):
        assert loop.time() < deadline, f"container of {execution_id} still there after {within} s"
        await asyncio.sleep(0.2)


# --- every language ---------------------------------------------------------------------------


async def test_every_language_runs_hello_factorial_and_reversal(client: ExecutionClient) -> None:
    submissions = []
    for lang in sorted(HELLO):
        submissions.append(new_submission(lang, HELLO[lang]))
        submissions.append(
            new_submission(
                lang,
                FACTORIAL[lang],
                tests=[
                    {"name": "5!", "input": "5\n", "expected_output": "120\n"},
                    {"name": "20!", "input": "20\n", "expected_output": "2432902008176640000\n"},
                ],
            )
        )
        submissions.append(
            new_submission(
                lang, REVERSE[lang], tests=[{"input": "stressed\n", "expected_output": "desserts"}]
            )
        )
    results = await run_all(client, submissions, within=420)
    failures = []
    for submission, events in zip(submissions, results, strict=True):
        done = terminal(events)
        if not isinstance(done, ev.ExecutionCompleted) or done.verdict is not Verdict.ACCEPTED:
            failures.append(
                (submission.language, submission.source[:30], done, stdout_of(events)[-300:])
            )
    assert not failures
    hello = {
        s.language: stdout_of(events)
        for s, events in zip(submissions, results, strict=True)
        if s.source in HELLO.values()
    }
    assert hello == {lang: "Hello, World!\n" for lang in HELLO}


async def test_events_tell_the_whole_story_in_order(client: ExecutionClient) -> None:
    submission = new_submission("c", FACTORIAL["c"], tests=[{"input": "3", "expected_output": "6"}])
    [events] = await run_all(client, [submission])
    kinds = [type(e).__name__ for e in events]
    assert kinds[:4] == ["StepStarted", "StepCompleted", "StepStarted", "ExecutionAccepted"]
    assert [e.step for e in events if isinstance(e, ev.StepStarted)] == [
        "validate",
        "prepare",
        "compile",
        "test-1",
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert {e.attempt for e in events} == {1}
    assert {e.execution_id for e in events} == {submission.execution_id}
    assert len({e.event_id for e in events}) == len(events)
    [result] = [e for e in events if isinstance(e, ev.TestCompleted)]
    assert (result.verdict, result.actual_output, result.expected_output) == (
        Verdict.ACCEPTED,
        "6\n",
        "6",
    )
    done = terminal(events)
    assert done.tests_passed == done.tests_total == 1
    assert done.image.startswith("coderunner/runtime-gcc") and done.image_digest
    assert done.compile_time_us and done.compile_time_us > 0


async def test_output_streams_while_the_program_runs(client: ExecutionClient) -> None:
    source = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')"
    submission = new_submission("python", source)
    await client.submit(submission)
    seen_first_at = done_at = None
    loop = asyncio.get_running_loop()
    async for event in client.events(submission.execution_id):
        if isinstance(event, ev.LogChunk) and "first" in event.content:
            seen_first_at = loop.time()
        if isinstance(event, ev.ExecutionCompleted):
            done_at = loop.time()
    assert seen_first_at is not None and done_at is not None
    assert done_at - seen_first_at > 1.0  # 'first' arrived while the program was still sleeping


# --- every verdict, from real hostile programs ------------------------------------------------

SMALL = {
    "wall_time_ms": 2000,
    "cpu_time_ms": 2000,
    "memory_mb": 64,
    "output_bytes": 65536,
    "processes": 32,
}

HOSTILE = [
    ("compile error", "c", "int main(void) { return undefined_thing; }", Verdict.COMPILATION_ERROR),
    ("exception", "python", "raise ValueError('boom')", Verdict.RUNTIME_ERROR),
    ("segfault", "c", "int main(void) { volatile int *p = 0; return *p; }", Verdict.RUNTIME_ERROR),
    (
        "sigfpe",
        "c",
        "int main(int c, char **v) { volatile int z = c - 1; return 7 / z; }",
        Verdict.RUNTIME_ERROR,
    ),
    ("infinite loop", "python", "while True: pass", Verdict.TIME_LIMIT_EXCEEDED),
    ("sleep past wall", "python", "import time; time.sleep(60)", Verdict.TIME_LIMIT_EXCEEDED),
    (
        "memory bomb",
        "python",
        "a = []\nwhile True: a.append(bytearray(10 * 2**20))",
        Verdict.MEMORY_LIMIT_EXCEEDED,
    ),
    (
        "fork bomb",
        "bash",
        ":(){ :|:& };:",
        None,
    ),  # contained: any non-crash verdict, service unharmed
    ("output flood", "python", "while True: print('y' * 1000)", Verdict.OUTPUT_LIMIT_EXCEEDED),
    (
        "network",
        "python",
        "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)",
        Verdict.RUNTIME_ERROR,
    ),
    (
        "write outside work dir",
        "python",
        "open('/etc/evil', 'w').write('x')",
        Verdict.RUNTIME_ERROR,
    ),
    (
        "disk fill",
        "python",
        "f = open('fill', 'wb')\nwhile True: f.write(b'x' * 2**20)",
        Verdict.RUNTIME_ERROR,
    ),
]


@pytest.mark.parametrize(
    ("name", "lang", "source", "verdict"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_hostile_program_gets_its_verdict_and_harms_nothing(
    client: ExecutionClient, name: str, lang: str, source: str, verdict: Verdict | None
) -> None:
    hostile = new_submission(lang, source, limits=SMALL)
    [events] = await run_all(client, [hostile], within=120)
    done = terminal(events)
    assert isinstance(done, ev.ExecutionCompleted)
    if verdict is not None:
        assert done.verdict is verdict, (done.message, stdout_of(events)[-200:])
    else:
        assert done.verdict is not Verdict.INTERNAL_ERROR
    await until_removed(hostile.execution_id)
    follow_up = new_submission("python", "print(input()[::-1])", stdin="olleh")
    [events] = await run_all(client, [follow_up])
    assert (terminal(events).verdict, stdout_of(events)) == (Verdict.ACCEPTED, "hello\n")


async def test_output_cut_at_the_cap_is_marked_on_the_last_chunk(client: ExecutionClient) -> None:
    flood = new_submission("python", "while True: print('y' * 1000)", limits=SMALL)
    [events] = await run_all(client, [flood])
    chunks = [e for e in events if isinstance(e, ev.LogChunk) and e.step == "run"]
    assert chunks[-1].truncated and chunks[-1].stream is Stream.SYSTEM
    assert not any(c.truncated for c in chunks[:-1])
    assert sum(len(c.content) for c in chunks[:-1]) <= SMALL["output_bytes"]


async def test_signals_are_reported_by_name(client: ExecutionClient) -> None:
    crash = new_submission("c", HOSTILE[2][2])
    [events] = await run_all(client, [crash])
    done = terminal(events)
    assert (done.signal, done.exit_code) == (11, None)
    assert "SIGSEGV" in done.message


async def test_wrong_answer_names_the_failing_test(client: ExecutionClient) -> None:
    submission = new_submission(
        "python",
        "print(int(input()) * 2)",
        tests=[
            {"input": "2", "expected_output": "4"},
            {"input": "3", "expected_output": "7"},
        ],
    )
    [events] = await run_all(client, [submission])
    done = terminal(events)
    assert (done.verdict, done.tests_passed, done.tests_total) == (Verdict.WRONG_ANSWER, 1, 2)
    assert done.message.startswith("test-2")


async def test_exact_comparison_is_an_option(client: ExecutionClient) -> None:
    trimmed = new_submission(
        "python", "print('a  ')", tests=[{"input": "", "expected_output": "a"}]
    )
    exact = new_submission(
        "python", "print('a  ')", tests=[{"input": "", "expected_output": "a"}], comparison="EXACT"
    )
    results = await run_all(client, [trimmed, exact])
    assert [terminal(e).verdict for e in results] == [Verdict.ACCEPTED, Verdict.WRONG_ANSWER]


# --- bad input --------------------------------------------------------------------------------

BAD = [
    ("unknown language", {"language": "cobol"}, "language"),
    ("empty source", {"source": "   \n"}, "source"),
    ("oversized source", {"source": "#" * (64 * 1024 + 1)}, "source"),
    ("limits above the maxima", {"limits": {"memory_mb": 999_999}}, "limits.memory_mb"),
    ("limits below the minimum", {"limits": {"wall_time_ms": 0}}, "limits.wall_time_ms"),
]


@pytest.mark.parametrize(("name", "change", "field"), BAD, ids=[b[0] for b in BAD])
async def test_bad_submission_is_rejected_naming_the_field(
    client: ExecutionClient, name: str, change: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {"language": "python", "source": "print(1)"} | change
    submission = new_submission(fields.pop("language"), fields.pop("source"), **fields)
    [events] = await run_all(client, [submission])
    rejected = terminal(events)
    assert isinstance(rejected, ev.ExecutionRejected)
    assert rejected.field == field and rejected.reason
    assert not any(isinstance(e, ev.ExecutionAccepted) for e in events)


async def test_malformed_bytes_go_to_the_dead_letter_topic_and_the_worker_goes_on(
    client: ExecutionClient, worker: WorkerProcess
) -> None:
    settings = worker.settings
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings))
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.kafka_topic_submissions, b"\x00not avro at all", key=b"junk-1"
        )
    finally:
        await producer.stop()
    [record] = await read_topic(settings, settings.kafka_topic_deadletter, at_least=1)
    headers = {k: v.decode() for k, v in record.headers}
    assert record.value == b"\x00not avro at all" and record.key == b"junk-1"
    assert "undecodable" in headers["reason"]
    assert headers["source-topic"] == settings.kafka_topic_submissions
    after = new_submission("python", "print('still here')")
    [events] = await run_all(client, [after])
    assert terminal(events).verdict is Verdict.ACCEPTED


async def test_duplicate_submission_id_runs_once(
    client: ExecutionClient, worker: WorkerProcess
) -> None:
    first = new_submission("python", "print('once')")
    again = new_submission("python", "print('twice')", execution_id=first.execution_id)
    await client.submit(first)
    await client.submit(again)
    events = [e async for e in client.events(first.execution_id)]
    assert stdout_of(events) == "once\n"
    # Give a second run every chance to show up, then read the whole topic for this id.
    await asyncio.sleep(3)
    everything = await read_topic(worker.settings, worker.settings.kafka_topic_events)
    mine = [r for r in everything if r.key == first.execution_id.encode()]
    assert len(mine) == len(events)
    assert sum(isinstance(e, ev.ExecutionAccepted) for e in events) == 1


# --- cancellation -----------------------------------------------------------------------------


async def test_cancelling_a_running_execution_stops_it_and_removes_its_container(
    client: ExecutionClient,
) -> None:
    source = "import time\nprint('started', flush=True)\ntime.sleep(30)"
    submission = new_submission("python", source, limits={"wall_time_ms": 20_000})
    await client.submit(submission)
    loop = asyncio.get_running_loop()
    events = []
    async for event in client.events(submission.execution_id):
        events.append(event)
        if isinstance(event, ev.LogChunk) and "started" in event.content:
            asked_at = loop.time()
            await client.cancel(submission.execution_id, "changed my mind", by="test")
    done = events[-1]
    assert isinstance(done, ev.ExecutionCancelled) and done.reason == "changed my mind"
    assert loop.time() - asked_at < 10  # not the 30 s the program wanted
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # one gapless attempt
    await until_removed(submission.execution_id)


async def test_an_execution_cancelled_before_it_runs_never_runs(client: ExecutionClient) -> None:
    submission = new_submission("python", "print('should not run')")
    client.follow(submission.execution_id)
    await client.cancel(submission.execution_id, "too late anyway")
    await client.submit(submission)
    events = [e async for e in client.events(submission.execution_id)]
    assert isinstance(events[-1], ev.ExecutionCancelled)
    assert not any(isinstance(e, ev.LogChunk) for e in events)


# --- crash safety -----------------------------------------------------------------------------


async def test_worker_killed_mid_execution_loses_nothing(
    kafka: Settings, postgres: Settings, docker_engine: Settings, tmp_path: Path
) -> None:
    """A later submission finishing first must not let the offset pass the earlier one
    (faust-streaming #606): kill -9 while the earlier one runs, restart, nothing is lost."""
    settings = isolated_settings(sandbox_max_in_flight=2)
    log = tmp_path / "worker.log"
    first = WorkerProcess(settings, log).start()
    slow = new_submission("python", "import time\nprint('working', flush=True)\ntime.sleep(4)")
    quick = new_submission("python", "print('quick')")
    async with ExecutionClient(settings) as client:
        await client.submit(slow)
        await client.submit(quick)
        quick_done = await asyncio.wait_for(client.wait(quick.execution_id), 60)
        await asyncio.sleep(2)  # past the commit interval: a commit now would skip `slow`
        first.kill9()
        second = WorkerProcess(settings, log).start()
        try:
            slow_done = await asyncio.wait_for(client.wait(slow.execution_id), 120)
            client.follow(quick.execution_id)
            await asyncio.sleep(3)  # a rerun of `quick` would show up here
        finally:
            second.stop()
        rerun = client.pending(quick.execution_id)
    assert (slow_done.verdict, slow_done.attempt) == (Verdict.ACCEPTED, 2), (slow_done, quick_done)
    assert (quick_done.verdict, quick_done.attempt) == (Verdict.ACCEPTED, 1)
    assert rerun == []  # redelivered after the restart, but finished work does not run twice


async def test_sigterm_hands_back_running_work_and_exits_cleanly(
    kafka: Settings, postgres: Settings, docker_engine: Settings, tmp_path: Path
) -> None:
    """Graceful shutdown: the process exits with status 0, its container is gone, and the
    running execution still ends exactly once — finished during the shutdown, or handed back
    unacknowledged and run again by the next worker."""
    settings = isolated_settings(sandbox_max_in_flight=2)
    log = tmp_path / "worker.log"
    first = WorkerProcess(settings, log).start()
    slow = new_submission("python", "import time\nprint('working', flush=True)\ntime.sleep(4)")
    async with ExecutionClient(settings) as client:
        await client.submit(slow)
        async for event in client.events(slow.execution_id):
            if isinstance(event, ev.LogChunk) and "working" in event.content:
                break
        first.stop()  # SIGTERM
        assert first.process is not None and first.process.returncode == 0, first.tail()
        await until_removed(slow.execution_id)
        second = WorkerProcess(settings, log).start()
        try:
            done = await asyncio.wait_for(client.wait(slow.execution_id), 120)
            client.follow(slow.execution_id)
            await asyncio.sleep(3)  # a second run would show up here
        finally:
            second.stop()
        again = client.pending(slow.execution_id)
    assert done.verdict is Verdict.ACCEPTED
    assert not any(isinstance(e, ev.ExecutionCompleted) for e in again)
