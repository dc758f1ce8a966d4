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
    serve.set_defaults(command=_serve)
    worker = sub.add_parser("worker", help="run only the execution worker")
    worker.set_defaults(command=_serve)

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
        "  Ctrl-C stops the service.",
        flush=True,
    )
    worker = faust.Worker(app, service, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
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
