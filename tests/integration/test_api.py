"""The gRPC and HTTP API through real clients, against the real stack.

A `coderunner worker` subprocess (execution agent + projector) runs on topics and a PostgreSQL
database of this module's own; the API servers run in-process on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import SecretStr

from bench.projection import fresh_database
from coderunner.api.server import ApiServers
from coderunner.proto.coderunner.v1 import coderunner_pb2 as pb
from coderunner.proto.coderunner.v1 import coderunner_pb2_grpc as pb_grpc
from coderunner.settings import LOCAL_STACK_DIR, Settings
from coderunner.streams.topics import ensure_topics
from tests.integration.programs import FACTORIAL
from tests.integration.workers import WorkerProcess, free_port, isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LANGUAGES = ("python", "c", "javascript")
TOKEN = "s3cret-token-for-tests"


def api_settings(base: Settings, **overrides: Any) -> Settings:
    return base.model_copy(
        update={"api_host": "127.0.0.1", "grpc_port": free_port(), "http_port": free_port()}
        | overrides
    )


@pytest.fixture(scope="module")
async def stack(kafka: Settings, postgres: Settings, docker_engine: Settings) -> Settings:
    base = isolated_settings(sandbox_max_in_flight=4)
    dsn = await fresh_database(
        postgres.postgres_dsn.get_secret_value(), base.kafka_consumer_group.replace("-", "_")
    )
    settings = base.model_copy(update={"postgres_dsn": SecretStr(dsn)})
    await ensure_topics(settings)
    return settings


@pytest.fixture(scope="module")
def worker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("api") / "worker.log"
    env = {"POSTGRES_DSN": stack.postgres_dsn.get_secret_value()}
    process = WorkerProcess(stack, log, extra_env=env).start()
    yield process
    process.stop()


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[ApiServers]:
    servers = await ApiServers(settings).start()
    try:
        yield servers
    finally:
        await servers.stop()


@pytest.fixture(scope="module")
async def api(stack: Settings, worker: WorkerProcess) -> AsyncIterator[Settings]:
    settings = api_settings(stack)
    async with running_api(settings):
        yield settings


@pytest.fixture(scope="module")
async def stub(api: Settings) -> AsyncIterator[pb_grpc.CodeRunnerStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.grpc_port}") as channel:
        yield pb_grpc.CodeRunnerStub(channel)


def factorial_request(language: str, **fields: Any) -> pb.SubmitExecutionRequest:
    return pb.SubmitExecutionRequest(
        language=language,
        source=FACTORIAL[language],
        tests=[
            pb.TestCase(name="five", input="5\n", expected_output="120\n"),
            pb.TestCase(name="ten", input="10\n", expected_output="3628800\n"),
        ],
        client="test_api",
        **fields,
    )


async def watch_all(stub: pb_grpc.CodeRunnerStub, execution_id: str) -> list[pb.ExecutionEvent]:
    call = stub.WatchExecution(pb.WatchExecutionRequest(execution_id=execution_id), timeout=180)
    return [event async for event in call]


def kinds(events: list[pb.ExecutionEvent]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


async def status_code(awaitable: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    return info.value.code(), info.value.details() or ""


# --- submit -> watch -> get ----------------------------------------------------------------------


async def test_submit_watch_get_in_several_languages(stub: pb_grpc.CodeRunnerStub) -> None:
    ids = {}
    for language in LANGUAGES:
        response = await stub.SubmitExecution(factorial_request(language))
        ids[language] = response.execution_id
    watched = await asyncio.gather(*(watch_all(stub, i) for i in ids.values()))
    for (language, execution_id), events in zip(ids.items(), watched, strict=True):
        assert events[-1].WhichOneof("event") == "completed", (language, kinds(events))
        assert events[-1].completed.verdict == pb.VERDICT_ACCEPTED, (language, events[-1])
        positions = [(e.attempt, e.seq) for e in events]
        assert len(positions) == len(set(positions)), f"{language}: an event sent twice"
        assert {"accepted", "step_started", "test_completed"} <= set(kinds(events))
        assert all(e.execution_id == execution_id for e in events)
        execution = await _get_when_projected(stub, execution_id)
        assert execution.status == pb.EXECUTION_STATUS_COMPLETED
        assert execution.verdict == pb.VERDICT_ACCEPTED
        assert execution.language == language
        assert (execution.tests_passed, execution.tests_total) == (2, 2)
        assert [t.name for t in execution.test_results] == ["five", "ten"]
        assert execution.test_results[1].actual_output == "3628800\n"
        assert any(s.name == "test-1" for s in execution.steps)
        assert execution.source == FACTORIAL[language]


async def _get_when_projected(
    stub: pb_grpc.CodeRunnerStub, execution_id: str, status: int = pb.EXECUTION_STATUS_COMPLETED
) -> pb.Execution:
    """The terminal event is live before the projector has committed it: poll briefly."""
    deadline = time.monotonic() + 30
    while True:
        try:
            execution = await stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id))
            if execution.status == status or time.monotonic() > deadline:
                return execution
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def test_watch_before_during_and_after_give_the_same_events(
    stub: pb_grpc.CodeRunnerStub,
) -> None:
    execution_id = f"api-{uuid.uuid4()}"
    before = asyncio.ensure_future(watch_all(stub, execution_id))  # not submitted yet
    await asyncio.sleep(1.0)
    await stub.SubmitExecution(factorial_request("python", execution_id=execution_id))
    during_started = asyncio.Event()

    async def during() -> list[pb.ExecutionEvent]:
        call = stub.WatchExecution(pb.WatchExecutionRequest(execution_id=execution_id))
        events = []
        async for event in call:
            events.append(event)
            during_started.set()
        return events

    await asyncio.sleep(0.3)
    while_running = asyncio.ensure_future(during())
    early, mid = await asyncio.gather(before, while_running)
    await _get_when_projected(stub, execution_id)
    after = await watch_all(stub, execution_id)
    key = [(e.attempt, e.seq, e.event_id) for e in after]
    assert kinds(after)[0] == "submitted" and kinds(after)[-1] == "completed"
    assert key == sorted(key)
    # Live watchers see every worker event; the submission comes from the archive.
    worker_events = [k for k in key if k[0] > 0]
    assert [(e.attempt, e.seq, e.event_id) for e in early if e.attempt > 0] == worker_events
    assert [(e.attempt, e.seq, e.event_id) for e in mid if e.attempt > 0] == worker_events


async def test_logs_filter_by_stream_and_step(stub: pb_grpc.CodeRunnerStub) -> None:
    source = (
        "import sys\nfor i in range(5):\n    print('out', i)\n    print('err', i, file=sys.stderr)"
    )
    response = await stub.SubmitExecution(
        pb.SubmitExecutionRequest(language="python", source=source)
    )
    await watch_all(stub, response.execution_id)
    await _get_when_projected(stub, response.execution_id)
    request = pb.GetExecutionLogsRequest(execution_id=response.execution_id)
    everything = await stub.GetExecutionLogs(request)
    assert {c.stream for c in everything.chunks} >= {pb.STREAM_STDOUT, pb.STREAM_STDERR}
    stdout = await stub.GetExecutionLogs(
        pb.GetExecutionLogsRequest(execution_id=response.execution_id, stream=pb.STREAM_STDOUT)
    )
    text = "".join(c.content for c in stdout.chunks)
    assert text == "".join(f"out {i}\n" for i in range(5))
    run = await stub.GetExecutionLogs(
        pb.GetExecutionLogsRequest(execution_id=response.execution_id, step="no-such-step")
    )
    assert list(run.chunks) == []
    # Pagination: one chunk per page, all of them, in order.
    pages, token = [], ""
    while True:
        page = await stub.GetExecutionLogs(
            pb.GetExecutionLogsRequest(
                execution_id=response.execution_id, page_size=1, page_token=token
            )
        )
        pages += [c.chunk_index for c in page.chunks]
        token = page.next_page_token
        if not token:
            break
    assert pages == [c.chunk_index for c in everything.chunks]


# --- lists ----------------------------------------------------------------------------------------


async def test_list_filters_and_pagination(stub: pb_grpc.CodeRunnerStub) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    ids = []
    for _ in range(3):
        ids.append((await stub.SubmitExecution(factorial_request("python"))).execution_id)
    wrong = await stub.SubmitExecution(
        pb.SubmitExecutionRequest(
            language="python",
            source="print(41)",
            tests=[pb.TestCase(input="", expected_output="42\n")],
        )
    )
    for execution_id in [*ids, wrong.execution_id]:
        await watch_all(stub, execution_id)
        await _get_when_projected(stub, execution_id)
    since = pb.ListExecutionsRequest(submitted_from=start, languages=["python"])
    pages, token = [], ""
    while True:
        request = pb.ListExecutionsRequest()
        request.CopyFrom(since)
        request.page_size, request.page_token = 2, token
        page = await stub.ListExecutions(request)
        assert len(page.executions) <= 2
        pages += list(page.executions)
        token = page.next_page_token
        if not token:
            break
    listed = [e.execution_id for e in pages]
    assert set([*ids, wrong.execution_id]) <= set(listed)
    assert len(listed) == len(set(listed)), "a row on two pages"
    times = [e.submitted_at.ToDatetime() for e in pages]
    assert times == sorted(times, reverse=True), "not newest first"
    assert pages[0].steps == [] and not pages[0].source, "lists carry no details"

    wrong_only = await stub.ListExecutions(
        pb.ListExecutionsRequest(submitted_from=start, verdicts=[pb.VERDICT_WRONG_ANSWER])
    )
    assert [e.execution_id for e in wrong_only.executions] == [wrong.execution_id]
    completed = await stub.ListExecutions(
        pb.ListExecutionsRequest(
            submitted_from=start, statuses=[pb.EXECUTION_STATUS_COMPLETED], page_size=500
        )
    )
    assert set(ids) <= {e.execution_id for e in completed.executions}
    future = await stub.ListExecutions(
        pb.ListExecutionsRequest(submitted_from=datetime.now(UTC) + timedelta(hours=1))
    )
    assert list(future.executions) == []
    past = await stub.ListExecutions(pb.ListExecutionsRequest(submitted_to=start))
    assert not set(ids) & {e.execution_id for e in past.executions}
    other_language = await stub.ListExecutions(
        pb.ListExecutionsRequest(submitted_from=start, languages=["ruby"])
    )
    assert list(other_language.executions) == []


async def test_list_languages(stub: pb_grpc.CodeRunnerStub) -> None:
    response = await stub.ListLanguages(pb.ListLanguagesRequest())
    by_id = {lang.id: lang for lang in response.languages}
    assert {"python", "c", "java"} <= set(by_id)
    assert by_id["c"].compiled and not by_id["python"].compiled
    assert by_id["python"].default_limits.memory_mb > 0
    assert by_id["python"].version


# --- errors ---------------------------------------------------------------------------------------


async def test_invalid_arguments_name_the_field_and_rule(stub: pb_grpc.CodeRunnerStub) -> None:
    cases = {
        "language": pb.SubmitExecutionRequest(language="cobol", source="x"),
        "source": pb.SubmitExecutionRequest(language="python", source="   "),
        "limits.memory_mb": pb.SubmitExecutionRequest(
            language="python", source="print(1)", limits=pb.Limits(memory_mb=10**6)
        ),
        "execution_id": pb.SubmitExecutionRequest(
            language="python", source="print(1)", execution_id="x" * 200
        ),
    }
    for field, request in cases.items():
        code, details = await status_code(stub.SubmitExecution(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, field
        assert details.startswith(f"{field}: "), details
    code, details = await status_code(
        stub.ListExecutions(pb.ListExecutionsRequest(page_token="not-a-token"))
    )
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    code, details = await status_code(stub.ListExecutions(pb.ListExecutionsRequest(page_size=501)))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "page_size")
    code, details = await status_code(stub.GetExecution(pb.GetExecutionRequest()))
    assert (code, details.split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "execution_id")


async def test_unknown_execution_is_not_found(stub: pb_grpc.CodeRunnerStub) -> None:
    unknown = f"nobody-{uuid.uuid4()}"
    for call in (
        stub.GetExecution(pb.GetExecutionRequest(execution_id=unknown)),
        stub.GetExecutionLogs(pb.GetExecutionLogsRequest(execution_id=unknown)),
        stub.CancelExecution(pb.CancelExecutionRequest(execution_id=unknown)),
    ):
        code, details = await status_code(call)
        assert code == grpc.StatusCode.NOT_FOUND
        assert unknown in details


async def test_cancel_of_an_ended_execution_is_a_failed_precondition(
    stub: pb_grpc.CodeRunnerStub,
) -> None:
    response = await stub.SubmitExecution(factorial_request("python"))
    await watch_all(stub, response.execution_id)
    await _get_when_projected(stub, response.execution_id)
    code, details = await status_code(
        stub.CancelExecution(pb.CancelExecutionRequest(execution_id=response.execution_id))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "completed" in details


async def test_submit_is_idempotent_on_a_client_chosen_id(stub: pb_grpc.CodeRunnerStub) -> None:
    execution_id = f"api-{uuid.uuid4()}"
    for _ in range(2):
        response = await stub.SubmitExecution(
            factorial_request("python", execution_id=execution_id)
        )
        assert response.execution_id == execution_id
    events = await watch_all(stub, execution_id)
    await _get_when_projected(stub, execution_id)
    assert kinds(events).count("accepted") == 1
    execution = await stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id))
    assert execution.attempt == 1


async def test_cancel_stops_a_running_execution(stub: pb_grpc.CodeRunnerStub) -> None:
    response = await stub.SubmitExecution(
        pb.SubmitExecutionRequest(
            language="python",
            source="import time\nprint('started', flush=True)\ntime.sleep(30)",
            limits=pb.Limits(wall_time_ms=20_000),
        )
    )
    execution_id = response.execution_id
    watch = asyncio.ensure_future(watch_all(stub, execution_id))
    await _get_when_projected(stub, execution_id, status=pb.EXECUTION_STATUS_RUNNING)
    started = time.monotonic()
    await stub.CancelExecution(
        pb.CancelExecutionRequest(execution_id=execution_id, reason="test says stop")
    )
    events = await asyncio.wait_for(watch, 60)
    assert kinds(events)[-1] == "cancelled", kinds(events)
    assert time.monotonic() - started < 15, "cancel waited for the wall limit"
    execution = await _get_when_projected(stub, execution_id, pb.EXECUTION_STATUS_CANCELLED)
    assert execution.status == pb.EXECUTION_STATUS_CANCELLED


# --- health, reflection, auth ------------------------------------------------------------------


async def test_health_and_reflection_answer(api: Settings) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "coderunner.v1.CodeRunner"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        names = await _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        services = {s.name for s in names.list_services_response.service}
        assert {"coderunner.v1.CodeRunner", "grpc.health.v1.Health"} <= services
        found = await _reflect(
            channel,
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="coderunner.v1.CodeRunner"
            ),
        )
        assert found.file_descriptor_response.file_descriptor_proto


async def _reflect(
    channel: grpc.aio.Channel, request: reflection_pb2.ServerReflectionRequest, **kwargs: Any
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    async for reply in stub.ServerReflectionInfo(iter([request]), **kwargs):
        return reply
    raise AssertionError("reflection sent no answer")


async def test_bearer_tokens_when_configured(stack: Settings, worker: WorkerProcess) -> None:
    settings = api_settings(stack, api_tokens=SecretStr(f"other-token, {TOKEN}"))
    async with (
        running_api(settings),
        grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel,
    ):
        stub = pb_grpc.CodeRunnerStub(channel)
        request = pb.ListLanguagesRequest()
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            code, _ = await status_code(stub.ListLanguages(request, metadata=metadata))
            assert code == grpc.StatusCode.UNAUTHENTICATED, metadata
        code, _ = await status_code(_collect(stub.WatchExecution(pb.WatchExecutionRequest())))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {TOKEN}"),)
        assert (await stub.ListLanguages(request, metadata=good)).languages
        health = health_pb2_grpc.HealthStub(channel)  # stays open
        reply = await health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        code, _ = await status_code(
            _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED
        reply_ = await _reflect(
            channel, reflection_pb2.ServerReflectionRequest(list_services=""), metadata=good
        )
        assert reply_.list_services_response.service


async def _collect(call: Any) -> list[Any]:
    return [item async for item in call]


# --- HTTP ---------------------------------------------------------------------------------------


async def test_health_and_metrics(api: Settings, stub: pb_grpc.CodeRunnerStub) -> None:
    await stub.SubmitExecution(factorial_request("python"))
    base = f"http://127.0.0.1:{api.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/health") as response:
            assert response.status == 200
        async with http.get(f"{base}/ready") as response:
            body = await response.json()
            assert response.status == 200, body
            assert body["failed"] == []
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    for name in (
        'coderunner_api_submissions_total{language="python",outcome="published"}',
        "coderunner_executions{",
        "coderunner_executions_in_flight{",
        'coderunner_execution_duration_seconds_bucket{language="python",le="+Inf"}',
        "coderunner_projection_lag{",
        "coderunner_dead_letters ",
        "coderunner_metrics_scrape_errors 0.0",
    ):
        assert name in text, f"{name} missing from /metrics:\n{text}"


class TcpRelay:
    """A port that forwards to PostgreSQL, which a test can close and reopen: "PostgreSQL
    unreachable" for one API without stopping the server other tests use."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_ready_turns_503_when_postgres_is_unreachable_and_200_when_back(
    stack: Settings,
) -> None:
    real = urlsplit(stack.postgres_dsn.get_secret_value())
    relay = TcpRelay(real.port or 5432)
    await relay.open()
    dsn = urlunsplit(
        real._replace(netloc=f"{real.username}:{real.password}@127.0.0.1:{relay.port}")
    )
    settings = api_settings(stack, postgres_dsn=SecretStr(dsn))
    url = f"http://127.0.0.1:{settings.http_port}/ready"
    async with running_api(settings), aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200, await response.text()
        await relay.close()
        async with http.get(url) as response:
            body = await response.json()
            assert response.status == 503, body
            assert body["failed"] == ["postgresql"]
            assert body["postgresql"].startswith("unavailable")
            assert "coderunner:coderunner" not in str(body), "the DSN's password leaked"
        await relay.open()
        async with http.get(url) as response:
            assert response.status == 200, await response.text()


async def test_tls_on_the_grpc_port(stack: Settings, worker: WorkerProcess) -> None:
    """With a certificate and key configured, the port speaks TLS only; a client that trusts
    the CA gets answers, a plaintext client does not. (The local stack's localhost certificate
    from scripts/stack/kafka.sh serves as a stand-in for a real one.)"""
    tls = LOCAL_STACK_DIR / "kafka" / "tls"
    settings = api_settings(
        stack, grpc_tls_cert_file=tls / "server.pem", grpc_tls_key_file=tls / "server.key"
    )
    credentials = grpc.ssl_channel_credentials(root_certificates=(tls / "ca.pem").read_bytes())
    async with running_api(settings):
        target = f"localhost:{settings.grpc_port}"
        async with grpc.aio.secure_channel(target, credentials) as channel:
            reply = await pb_grpc.CodeRunnerStub(channel).ListLanguages(
                pb.ListLanguagesRequest(), timeout=10
            )
            assert {lang.id for lang in reply.languages} >= {"python", "c"}
        async with grpc.aio.insecure_channel(target) as channel:
            code, _ = await status_code(
                pb_grpc.CodeRunnerStub(channel).ListLanguages(pb.ListLanguagesRequest(), timeout=5)
            )
            assert code is grpc.StatusCode.UNAVAILABLE
