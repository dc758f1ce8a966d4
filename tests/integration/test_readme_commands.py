"""Every command the README shows is run: here, literally as written, or by the test named for it.

The README's command lines are read from the file; a line this module does not know fails the
first test, so a new command in the README needs a test before it lands. The local-service
lines run here in order, as a newcomer would type them: `make run` in one terminal (a background
process here, on topics and ports of its own), then `coderunner submit …` against it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderunner.settings import Settings
from tests.integration.workers import REPO, base_env, free_port, isolated_settings, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

README = REPO / "README.md"

# README lines run by another test (the line -> the test file that runs it).
RUN_ELSEWHERE = {
    "make test": ".ci/run (CI runs the README's test command)",
    "make check": "Makefile (`make test` runs it first)",
    "make env": "tests/integration/test_operations.py",
    "make up / down / restart": "tests/integration/test_operations.py",
    "make status / health / logs": "tests/integration/test_operations.py",
    "make validate": "tests/integration/test_operations.py",
    "make db-migrate": "tests/integration/test_operations.py",
    "make db-shell": "tests/integration/test_operations.py",
    "make db-backup": "tests/integration/test_operations.py",
    "make db-restore BACKUP=backups/coderunner-....dump": "tests/integration/test_operations.py",
    "make replay": "tests/integration/test_operations.py",
    "make stack-down": "tests/integration/test_operations.py (`make down`)",
    "make help": "tests/integration/test_operations.py",
    ".venv/bin/coderunner db migrate": "tests/integration/test_postgres_tls.py",
    "make up DEPLOY=compose": "tests/integration/test_compose_deployment.py",
    "docker compose up -d --scale worker=4": "tests/integration/test_compose_deployment.py",
    "make health DEPLOY=compose": "tests/integration/test_compose_deployment.py",
}
# Run by this module, in this order (files the submit lines name are created first).
RUN_HERE = [
    "make run",
    ".venv/bin/coderunner submit hello.py --language python --wait",
    ".venv/bin/coderunner submit fact.c -l c --test 5 120 --test 10 3628800 --wait --json",
    ".venv/bin/coderunner submit prog.rb -l ruby --id my-own-id",
    ".venv/bin/coderunner languages",
    ".venv/bin/coderunner projections checksum",
    ".venv/bin/coderunner projections rebuild --from kafka",
    ".venv/bin/coderunner projections lag",
    "make stack-up",
    "make stack-status",
    "make test-unit",
    "make build",
    "make bench",
    "make bench-dind",
]
PROGRAMS = {
    "hello.py": "print('hello from the README')\n",
    "fact.c": '#include <stdio.h>\nint main(void) { long n, f = 1; scanf("%ld", &n);\n'
    '  for (long i = 2; i <= n; i++) f *= i; printf("%ld\\n", f); return 0; }\n',
    "prog.rb": "puts 'ruby from the README'\n",
}


def readme_commands() -> list[str]:
    """The command lines of the README's code blocks, without their comments."""
    commands = []
    for line in README.read_text().splitlines():
        if not line.startswith("    ") or line.startswith("     "):
            continue
        command = line[4:].split(" #")[0].rstrip()
        if re.match(r"(make|docker|\.venv/bin/coderunner)\b", command):
            commands.append(command)
    return commands


def test_every_readme_command_is_run_by_some_test() -> None:
    known = set(RUN_ELSEWHERE) | set(RUN_HERE)
    unknown = [c for c in readme_commands() if c not in known]
    assert not unknown, f"README commands no test runs: {unknown}"
    stale = sorted(known - set(readme_commands()))
    assert not stale, f"no longer in the README (drop them here): {stale}"
    for command, where in RUN_ELSEWHERE.items():
        path = REPO / where.split(" ")[0]
        assert path.exists(), f"{command}: {path} does not exist"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory like the repository's root for the README's relative paths."""
    work = tmp_path_factory.mktemp("readme")
    (work / ".venv").symlink_to(REPO / ".venv")
    for name, text in PROGRAMS.items():
        (work / name).write_text(text)
    return work


@pytest.fixture(scope="module")
def env(kafka: Settings, postgres: Settings, docker_engine: Settings) -> Iterator[dict[str, str]]:
    yield base_env(
        **settings_env(isolated_settings()),
        GRPC_PORT=str(free_port()),
        HTTP_PORT=str(free_port()),
    )


@pytest.fixture(scope="module")
def make_run(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run`, in its own process group, until it is ready; Ctrl-C (SIGINT) at the end."""
    log = tmp_path_factory.mktemp("make-run") / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            shlex.split(RUN_HERE[0]), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            health = subprocess.run(
                [str(REPO / ".venv/bin/coderunner"), "health", "--timeout", "3"],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if health.returncode == 0:
                break
            assert process.poll() is None, f"`make run` exited:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        else:
            pytest.fail(f"`make run` not ready in 300 s:\n{log.read_text()[-3000:]}")
        yield log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert "gRPC" in log.read_text(), "`make run` did not say where the API listens"


def run(command: str, env: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    done = subprocess.run(
        shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"`{command}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout + done.stderr


def test_make_run_then_the_submit_lines(make_run: str, env: dict[str, str], workdir: Path) -> None:
    assert "Ctrl-C stops the service" in make_run
    hello = run(RUN_HERE[1], env, workdir)
    assert "hello from the README" in hello and "verdict: ACCEPTED" in hello
    fact = run(RUN_HERE[2], env, workdir)
    final = json.loads(fact[: fact.rindex("}") + 1])  # --json: the final event on stdout
    assert final["verdict"] == "ACCEPTED", final
    ruby = run(RUN_HERE[3], env, workdir)
    assert "my-own-id" in ruby


def test_the_read_model_lines(make_run: str, env: dict[str, str], workdir: Path) -> None:
    assert "python" in run(RUN_HERE[4], env, workdir)
    assert re.search(r"executions\s+\d+ rows", run(RUN_HERE[5], env, workdir))
    rebuilt = run(RUN_HERE[6], env, workdir)
    assert re.search(r"rebuilt from kafka: \d+ messages, \d+ applied", rebuilt), rebuilt
    run(RUN_HERE[7], env, workdir)


def test_the_stack_and_development_lines(env: dict[str, str], workdir: Path) -> None:
    assert "stack: up" in run(RUN_HERE[8], env, REPO)
    assert "kafka:" in run(RUN_HERE[9], env, REPO)
    assert "passed" in run(RUN_HERE[10], env, REPO)
    built = run(RUN_HERE[11], env, REPO, timeout=900)
    assert "coderunner:local" in built


def test_make_bench_reports_ratios_against_its_baselines(env: dict[str, str]) -> None:
    small = env | {
        "BENCH_EXECUTION_ARGS": "--runs 3 --total 4 --workers 2 --rounds 1",
        "BENCH_PROJECTION_ARGS": "--events 3000",
    }
    report = run(RUN_HERE[12], small, REPO, timeout=900)
    assert "bare docker SDK" in report and "throughput" in report
    assert "bare aiokafka+fastavro+COPY" in report and "events/s" in report


def test_make_bench_dind_runs_the_executions_in_a_dind_daemon(env: dict[str, str]) -> None:
    small = env | {"BENCH_EXECUTION_ARGS": "--runs 3 --total 4 --workers 2 --rounds 1"}
    report = run(RUN_HERE[13], small, REPO, timeout=900)
    assert "sandbox engine: DinD at tcp://" in report
    assert "bare docker SDK" in report and "throughput" in report
