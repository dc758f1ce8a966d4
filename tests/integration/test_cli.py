"""`coderunner submit` as a user runs it: progress, live output, verdict, JSON, exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coderunner.settings import Settings
from tests.integration.workers import REPO, WorkerProcess, isolated_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker(
    kafka: Settings,
    postgres: Settings,
    docker_engine: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        isolated_settings(), tmp_path_factory.mktemp("cli") / "worker.log"
    ).start()
    yield process
    process.stop()


def submit(worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coderunner.cli", "submit", *args],
        env=worker.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_submit_wait_shows_steps_output_and_verdict(worker: WorkerProcess, tmp_path: Path) -> None:
    program = tmp_path / "fact.c"
    program.write_text(
        '#include <stdio.h>\nint main(void) { long n, f = 1; scanf("%ld", &n);\n'
        '  for (long i = 2; i <= n; i++) f *= i; printf("%ld\\n", f); return 0; }'
    )
    done = submit(
        worker, str(program), "-l", "c", "--test", "5", "120", "--test", "6", "720", "--wait"
    )
    assert done.returncode == 0, done.stderr
    assert "--> compile" in done.stderr and "test 2: ACCEPTED" in done.stderr
    assert (
        done.stdout.splitlines()[-1] == "verdict: ACCEPTED — ok"
        or "verdict: ACCEPTED" in done.stdout
    )
    assert "120\n" in done.stdout  # the program's own output, shown live


def test_submit_json_reports_a_failure_with_a_non_zero_exit(
    worker: WorkerProcess, tmp_path: Path
) -> None:
    program = tmp_path / "wrong.py"
    program.write_text("print(int(input()) + 1)")
    done = submit(worker, str(program), "-l", "python", "--test", "1", "3", "--wait", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert (result["verdict"], result["tests_passed"], result["tests_total"]) == (
        "WRONG_ANSWER",
        0,
        1,
    )


def test_submit_without_wait_prints_the_execution_id(worker: WorkerProcess, tmp_path: Path) -> None:
    program = tmp_path / "hi.rb"
    program.write_text('puts "hi"')
    chosen = f"cli-{uuid.uuid4()}"
    done = submit(worker, str(program), "-l", "ruby", "--id", chosen, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"execution_id": chosen}
