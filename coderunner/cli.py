"""The `coderunner` command: run the service, submit programs, manage the database."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.config
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coderunner.config_check import Problem, settings_problems, validation_problems
from coderunner.errors import MissingTopics, ServiceUnavailable, ToolFailed
from coderunner.log_format import logging_config
from coderunner.settings import Settings, load_settings

EXIT_CONFIG = 2  # bad settings, or a service that cannot be reached or used


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.without_settings:  # `config docs` documents the settings: it needs none
        return _config_docs(None, args)
    try:
        settings = load_settings()
    except ValidationError as exc:
        # pydantic's own message would echo the input values, secrets included
        return _print_problems(validation_problems(exc))
    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    if args.command is _submit:
        logging.getLogger("aiokafka").setLevel(logging.WARNING)  # keep the program's output clean
    try:
        result: int = args.command(settings, args)
    except (ServiceUnavailable, MissingTopics) as exc:
        print(f"coderunner: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ToolFailed as exc:
        print(f"coderunner: {exc}", file=sys.stderr)
        return 1
    return result


def _print_problems(problems: list[Problem]) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    return EXIT_CONFIG if problems else 0


def _worker_logging(settings: Settings) -> dict[str, Any]:
    """mode.Worker keyword arguments: its own (coloured) text logs, or our JSON lines."""
    if settings.log_format == "json":
        return {"logging_config": logging_config(settings.log_level, "json")}
    return {}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coderunner", description=__doc__)
    parser.set_defaults(without_settings=False)
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

    config = sub.add_parser("config", help="check and document the settings")
    config_sub = config.add_subparsers(required=True, metavar="ACTION")
    validate = config_sub.add_parser(
        "validate", help="print each problem in the settings with its fix; exit 2 if any"
    )
    validate.add_argument(
        "--check-connectivity",
        action="store_true",
        help="also reach Kafka, PostgreSQL and the Docker engine",
    )
    validate.set_defaults(command=_config_validate)
    config_sub.add_parser(
        "docs", help="regenerate docs/configuration.md and .env.example from the settings"
    ).set_defaults(command=_config_docs, without_settings=True)

    topics = sub.add_parser("topics", help="Kafka topic maintenance")
    topics_sub = topics.add_subparsers(required=True, metavar="ACTION")
    topics_sub.add_parser(
        "create", help="create the missing topics where the broker allows it (also Event Hubs)"
    ).set_defaults(command=_topics_create)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        command=_migrate
    )
    db_sub.add_parser("shell", help="psql on the service's database").set_defaults(
        command=_db_shell
    )
    backup = db_sub.add_parser("backup", help="pg_dump the database (custom format)")
    backup.add_argument(
        "--output", "-o", type=Path, help="file to write (default backups/coderunner-TIME.dump)"
    )
    backup.set_defaults(command=_db_backup)
    restore = db_sub.add_parser(
        "restore", help="replace the database's contents with a backup, in one transaction"
    )
    restore.add_argument("dump", type=Path, help="a file written by `coderunner db backup`")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.set_defaults(command=_db_restore)

    health = sub.add_parser(
        "health", help="ask a running service's /health and /ready; exit 1 unless ready"
    )
    health.add_argument(
        "--url", help="the service's HTTP base URL (default http://127.0.0.1:HTTP_PORT)"
    )
    health.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    health.add_argument(
        "--heartbeat",
        type=Path,
        metavar="FILE",
        help="instead: check that a worker's or projector's HEARTBEAT_FILE is fresh",
    )
    health.set_defaults(command=_health)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    from coderunner.projections.database import describe_dsn
    from coderunner.streams.probe import ping_kafka
    from coderunner.streams.topics import ensure_topics
    from coderunner.streams.worker import build_worker

    asyncio.run(ping_kafka(settings))  # a wrong key or host fails here, with a clear message
    asyncio.run(ensure_topics(settings))
    app, service = build_worker(settings)
    services: list[Any] = [service, *_heartbeat(settings)]
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
    worker = faust.Worker(
        app, *services, loglevel=settings.log_level, quiet=True, **_worker_logging(settings)
    )
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
    services = [service, *_heartbeat(settings)]
    if app is None:  # the plain-consumer reader needs no Faust app
        mode.Worker(
            *services, loglevel=settings.log_level, quiet=True, **_worker_logging(settings)
        ).execute_from_commandline()
    else:
        faust.Worker(
            app, *services, loglevel=settings.log_level, quiet=True, **_worker_logging(settings)
        ).execute_from_commandline()
    return 0


def _heartbeat(settings: Settings) -> list[Any]:
    """The liveness file service, when HEARTBEAT_FILE is set."""
    if settings.heartbeat_file is None:
        return []
    from coderunner.streams.heartbeat import Heartbeat

    return [Heartbeat(settings.heartbeat_file)]


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections.database import connection
    from coderunner.projections.migrations import migrate
    from coderunner.projections.replay import checksum, rebuild
    from coderunner.streams.projector import replay_from_kafka

    progress = _Progress(every_s=2.0)

    async def run() -> tuple[dict[str, int], str]:
        async with connection(settings) as conn:
            await migrate(conn)
            source = None if args.source == "archive" else replay_from_kafka(settings)
            totals = await rebuild(
                conn, source, settings.kafka_topic_submissions, on_progress=progress
            )
            return totals, (await checksum(conn))[0]

    totals, digest = asyncio.run(run())
    print(
        f"projections: rebuilt from {args.source}: {totals['messages']} messages,"
        f" {totals['applied']} applied, {totals['parked']} parked; checksum {digest}"
    )
    return 0


class _Progress:
    """A line on stderr every `every_s` seconds of a long replay: how far, and how fast."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.started = self.last = time.monotonic()

    def __call__(self, totals: dict[str, int]) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        rate = totals["messages"] / (now - self.started)
        print(
            f"projections: {totals['messages']:,} messages replayed ({rate:,.0f}/s)",
            file=sys.stderr,
            flush=True,
        )


def _checksum(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections.database import connection
    from coderunner.projections.replay import checksum

    async def run() -> tuple[str, dict[str, int]]:
        async with connection(settings) as conn:
            return await checksum(conn)

    digest, counts = asyncio.run(run())
    print(digest)
    for table, n in counts.items():
        print(f"  {table:<16} {n} rows", file=sys.stderr)
    return 0


def _lag(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections.database import connection
    from coderunner.projections.replay import positions, projection_lag
    from coderunner.streams.projector import end_offsets

    async def run() -> dict[tuple[str, int], int]:
        async with connection(settings) as conn:
            reached = await positions(conn)
        return projection_lag(reached, await end_offsets(settings))

    for (topic, partition), behind in asyncio.run(run()).items():
        print(f"{topic}[{partition}] {behind}")
    return 0


def _config_validate(settings: Settings, args: argparse.Namespace) -> int:
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # only the problems, please
    problems = settings_problems(settings)
    if args.check_connectivity:
        problems += _connectivity_problems(settings)
    if not problems:
        print("config: OK" + (" (Kafka, PostgreSQL and Docker reached)" * args.check_connectivity))
    return _print_problems(problems)


def _connectivity_problems(settings: Settings) -> list[Problem]:
    from coderunner.projections.database import ping_postgres
    from coderunner.sandbox.docker_engine import ping_docker
    from coderunner.streams.probe import ping_kafka

    checks: list[tuple[str, Any]] = [
        ("KAFKA_BOOTSTRAP_SERVERS", lambda: asyncio.run(ping_kafka(settings))),
        ("POSTGRES_DSN", lambda: asyncio.run(ping_postgres(settings))),
        ("DOCKER_HOST", lambda: ping_docker(settings)),
    ]
    problems = []
    for variable, check in checks:
        try:
            check()
        except ServiceUnavailable as exc:
            problems.append(
                Problem(variable, exc.reason, f"check {variable} and that {exc.service} is up")
            )
    return problems


def _config_docs(settings: Settings | None, args: argparse.Namespace) -> int:
    from coderunner.settings import REPO_ROOT
    from coderunner.settings_docs import write

    changed = write()
    for path in changed:
        print(f"config: wrote {path.relative_to(REPO_ROOT)}")
    if not changed:
        print("config: docs/configuration.md and .env.example are up to date")
    return 0


def _topics_create(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.streams.topics import ensure_topics, topic_names

    created = asyncio.run(ensure_topics(settings, create=True))
    print(
        f"topics: created {', '.join(created)}"
        if created
        else f"topics: all present ({', '.join(topic_names(settings))})"
    )
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
    from coderunner.projections.database import connection
    from coderunner.projections.migrations import migrate

    async def run() -> list[str]:
        async with connection(settings) as conn:
            return await migrate(conn)

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


def _db_shell(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections import pgtools

    return pgtools.shell(settings)


def _db_backup(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections import pgtools

    output = args.output or pgtools.default_backup_path()
    pgtools.backup(settings, output)
    print(f"db: backup written to {output} ({output.stat().st_size:,} bytes)")
    return 0


def _db_restore(settings: Settings, args: argparse.Namespace) -> int:
    from coderunner.projections import pgtools
    from coderunner.projections.database import describe_dsn

    target = describe_dsn(settings)
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                "coderunner: restore replaces the database's contents: add --yes", file=sys.stderr
            )
            return 1
        answer = input(f"Replace everything in {target} with {args.dump}? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("db: restore cancelled")
            return 1
    pgtools.restore(settings, args.dump)
    print(f"db: {target} restored from {args.dump}")
    return 0


def _health(settings: Settings, args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    if args.heartbeat is not None:
        return _heartbeat_health(args.heartbeat)
    base = (args.url or f"http://127.0.0.1:{settings.http_port}").rstrip("/")
    if not base.startswith(("http://", "https://")):
        print(f"coderunner: --url must start with http:// or https://, not {base!r}")
        return EXIT_CONFIG
    for path in ("/health", "/ready"):
        try:
            with urllib.request.urlopen(base + path, timeout=args.timeout) as response:  # noqa: S310 (scheme checked)
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:  # /ready answers 503 naming what is down
            status, body = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            print(f"{path}: no answer from {base} ({reason}); is the service running?")
            return 1
        print(f"{path}: {status} {body.decode(errors='replace').strip()}")
        if status != 200:
            return 1
    return 0


def _heartbeat_health(path: Path) -> int:
    from coderunner.streams.heartbeat import STALE_AFTER_S, heartbeat_age

    age = heartbeat_age(path)
    if age is None:
        print(f"heartbeat: no {path} (not started yet, or stopped)")
        return 1
    if age > STALE_AFTER_S:
        print(f"heartbeat: {path} is {age:.0f} s old (more than {STALE_AFTER_S:.0f} s): stuck")
        return 1
    print(f"heartbeat: {age:.1f} s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
