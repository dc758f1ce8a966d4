"""The `coderunner` command: run the service, submit programs, manage the database."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from coderunner.settings import Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is _submit:
        logging.getLogger("aiokafka").setLevel(logging.WARNING)  # keep the program's output clean
    result: int = args.command(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coderunner", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the whole service in the foreground (Ctrl-C stops)")
    serve.set_defaults(command=_serve, with_api=True)
    worker = sub.add_parser("worker", help="run only the execution worker")
    worker.set_defaults(command=_serve, with_api=False)
    api = sub.add_parser("api", help="run only the API: gRPC and HTTP (/health /ready /metrics)")
    api.set_defaults(command=_api)

    submit = sub.add_parser("submit", help="publish a submission; --wait follows it to the verdict")
    submit.add_argument("file", type=Path, help="the source file ('-' reads standard input)")
    submit.add_argument(
        "--language", "-l", required=True, help="language id, see `coderunner languages`"
    )
    submit.add_argument("--stdin", default="", help="text given to the program on standard input")
    submit.add_argument(
        "--test",
        nargs=2,
        action="append",
        default=[],
        metavar=("INPUT", "EXPECTED"),
        help="a test case (repeatable)",
    )
    submit.add_argument("--id", dest="execution_id", help="your own execution id (idempotency key)")
    submit.add_argument(
        "--wait", action="store_true", help="show progress and end with the verdict"
    )
    submit.add_argument("--json", action="store_true", help="print the final result as JSON")
    submit.set_defaults(command=_submit)

    langs = sub.add_parser("languages", help="list the languages the sandbox runs")
    langs.set_defaults(command=_languages)

    projector = sub.add_parser("projector", help="run only the projection (events -> tables)")
    projector.set_defaults(command=_projector)
    projections = sub.add_parser("projections", help="read-model maintenance")
    proj_sub = projections.add_subparsers(required=True, metavar="ACTION")
    rebuild = proj_sub.add_parser(
        "rebuild", help="rebuild the read models into fresh tables, then swap them in"
    )
    rebuild.add_argument(
        "--from",
        dest="source",
        choices=("kafka", "archive"),
        default="kafka",
        help="replay the topics from offset 0, or the events archive table (default: kafka)",
    )
    rebuild.set_defaults(command=_rebuild)
    proj_sub.add_parser(
        "checksum", help="print a digest of the read models' contents"
    ).set_defaults(command=_checksum)
    proj_sub.add_parser("lag", help="events not projected yet, per topic-partition").set_defaults(
        command=_lag
    )

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        command=_migrate
    )
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    from coderunner.projections.database import describe_dsn
    from coderunner.streams.topics import ensure_topics
    from coderunner.streams.worker import build_worker

    asyncio.run(ensure_topics(settings))
    app, service = build_worker(settings)
    services: list[Any] = [service]
    if args.with_api:
        from coderunner.api.server import ApiService

        services.append(ApiService(settings))
    print(
        "coderunner: starting\n"
        f"  Kafka bootstrap : {settings.kafka_bootstrap_servers}"
        f" ({settings.kafka_security_protocol.value})\n"
        f"  topics          : {settings.kafka_topic_submissions} -> {settings.kafka_topic_events}"
        f" (dead letters: {settings.kafka_topic_deadletter})\n"
        f"  PostgreSQL      : {describe_dsn(settings)}\n"
        f"  Docker engine   : {settings.docker_host or 'local socket'}"
        f" (images: {settings.sandbox_image_set.value})\n"
        f"  executions      : up to {settings.sandbox_max_in_flight} at once\n"
        + (_api_lines(settings) if args.with_api else "")
        + "  Ctrl-C stops the service.",
        flush=True,
    )
    worker = faust.Worker(app, *services, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0


def _api_lines(settings: Settings) -> str:
    scheme = "TLS" if settings.grpc_tls_cert_file else "plaintext"
    auth = "bearer tokens" if settings.api_token_set() else "no auth"
    return (
        f"  gRPC            : {settings.api_host}:{settings.grpc_port} ({scheme}, {auth})\n"
        f"  HTTP            : http://{settings.api_host}:{settings.http_port}"
        " (/health /ready /metrics)\n"
    )


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.api.server import run_api
    from coderunner.streams.probe import ping_kafka

    asyncio.run(ping_kafka(settings))  # a clear message (and exit) when Kafka is not there
    asyncio.run(run_api(settings))
    return 0


def _projector(settings: Settings, args: argparse.Namespace) -> int:
    import faust
    import mode

    from coderunner.streams.projector import build_projector
    from coderunner.streams.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    app, service = build_projector(settings)
    if app is None:  # the plain-consumer reader needs no Faust app
        mode.Worker(service, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    else:
        faust.Worker(
            app, service, loglevel=settings.log_level, quiet=True
        ).execute_from_commandline()
    return 0


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections.database import connect
    from coderunner.projections.migrations import migrate
    from coderunner.projections.replay import checksum, rebuild
    from coderunner.streams.projector import replay_from_kafka

    async def run() -> tuple[dict[str, int], str]:
        conn = await connect(settings)
        try:
            await migrate(conn)
            source = None if args.source == "archive" else replay_from_kafka(settings)
            totals = await rebuild(conn, source, settings.kafka_topic_submissions)
            return totals, (await checksum(conn))[0]
        finally:
            await conn.close()

    totals, digest = asyncio.run(run())
    print(
        f"projections: rebuilt from {args.source}: {totals['messages']} messages,"
        f" {totals['applied']} applied, {totals['parked']} parked; checksum {digest}"
    )
    return 0


def _checksum(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections.database import connect
    from coderunner.projections.replay import checksum

    async def run() -> tuple[str, dict[str, int]]:
        conn = await connect(settings)
        try:
            return await checksum(conn)
        finally:
            await conn.close()

    digest, counts = asyncio.run(run())
    print(digest)
    for table, n in counts.items():
        print(f"  {table:<16} {n} rows", file=sys.stderr)
    return 0


def _lag(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections.database import connect
    from coderunner.projections.replay import positions, projection_lag
    from coderunner.streams.projector import end_offsets

    async def run() -> dict[tuple[str, int], int]:
        conn = await connect(settings)
        try:
            reached = await positions(conn)
        finally:
            await conn.close()
        return projection_lag(reached, await end_offsets(settings))

    for (topic, partition), behind in asyncio.run(run()).items():
        print(f"{topic}[{partition}] {behind}")
    return 0


def _languages(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.languages import languages

    for lang in languages().values():
        kind = "compiled" if lang.compiled else "interpreted"
        print(
            f"{lang.id:<11} {lang.name} {lang.version} ({kind})"
            f" image {lang.image(settings.sandbox_image_set)}"
        )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections.database import connect
    from coderunner.projections.migrations import migrate

    async def run() -> list[str]:
        conn = await connect(settings)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(run())
    print(f"db: applied {', '.join(applied)}" if applied else "db: schema is up to date")
    return 0


def _submit(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.streams.client import ExecutionClient, new_submission

    source = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    submission = new_submission(
        args.language,
        source,
        execution_id=args.execution_id,
        stdin=args.stdin,
        tests=[{"input": i, "expected_output": e} for i, e in args.test],
    )

    async def run() -> Any:
        async with ExecutionClient(settings) as client:
            execution_id = await client.submit(submission)
            if not args.wait:
                return execution_id
            terminal = None
            async for event in client.events(execution_id):
                terminal = event
                if not args.json:
                    _show_progress(event)
            return terminal

    outcome = asyncio.run(run())
    if not args.wait:
        print(json.dumps({"execution_id": outcome}) if args.json else outcome)
        return 0
    if args.json:
        print(json.dumps(outcome.model_dump(mode="json"), indent=2))
    return 0 if getattr(outcome, "verdict", None) == "ACCEPTED" else 1


def _show_progress(event: Any) -> None:
    kind = type(event).__name__
    if kind == "LogChunk":
        stream = sys.stderr if event.stream == "STDERR" else sys.stdout
        stream.write(event.content)
        stream.flush()
    elif kind == "StepStarted":
        print(f"--> {event.step}", file=sys.stderr)
    elif kind == "StepCompleted":
        detail = f": {event.message}" if event.message else ""
        print(
            f"<-- {event.step} {event.status.value.lower()}"
            f" in {event.duration_us // 1000} ms{detail}",
            file=sys.stderr,
        )
    elif kind == "TestCompleted":
        print(
            f"    test {event.test_index + 1}: {event.verdict.value} ({event.time_ms} ms)",
            file=sys.stderr,
        )
    elif kind == "ExecutionRejected":
        print(f"rejected: {event.field}: {event.reason}", file=sys.stderr)
    elif kind == "ExecutionCompleted":
        print(f"verdict: {event.verdict.value}" + (f" — {event.message}" if event.message else ""))


if __name__ == "__main__":
    sys.exit(main())
