"""The Docker sandbox against the real engine: every language runs, and every hostile program
meets a limit that holds — after which a fresh sandbox still works and no container is left."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import docker
import pytest
import pytest_asyncio

from coderunner.domain import AppliedLimits, Stream
from coderunner.errors import SandboxError
from coderunner.handlers.ports import ProcessResult
from coderunner.languages import Language, languages
from coderunner.sandbox.docker_sandbox import (
    LABEL_EXECUTION,
    LABEL_MANAGED,
    LABEL_WORKER_HOST,
    LABEL_WORKER_PID,
    DockerSandbox,
    DockerSandboxSession,
)
from coderunner.settings import Settings
from tests.integration.programs import HELLO

pytestmark = pytest.mark.integration

SMALL = AppliedLimits(
    wall_time_ms=2000, cpu_time_ms=1000, memory_mb=64, processes=16, output_bytes=64 * 1024
)
PYTHON = languages()["python"]
GCC = languages()["c"]


@pytest.fixture(scope="module")
def engine(docker_engine: Settings) -> Iterator[docker.DockerClient]:
    """The engine answers, or the test fails saying how to start it (see tests/conftest.py)."""
    client = docker.from_env()
    yield client
    client.close()


@pytest_asyncio.fixture(scope="module")
async def sandbox(docker_engine: Settings) -> AsyncIterator[DockerSandbox]:
    box = DockerSandbox(docker_engine)
    yield box
    await box.aclose()


class Output:
    """An OutputSink that remembers each piece and when it came."""

    def __init__(self) -> None:
        self.pieces: list[tuple[Stream, bytes, float]] = []

    async def __call__(self, stream: Stream, data: bytes) -> None:
        self.pieces.append((stream, data, time.monotonic()))

    def total(self) -> int:
        return sum(len(data) for _, data, _ in self.pieces)


def limits(**changes: int) -> AppliedLimits:
    return SMALL.model_copy(update=changes)


def leftovers(engine: docker.DockerClient, execution_id: str) -> list[object]:
    label = f"{LABEL_EXECUTION}={execution_id}"
    return list(engine.containers.list(all=True, filters={"label": label}, ignore_removed=True))


async def until_gone(engine: docker.DockerClient, execution_id: str, within_s: float) -> float:
    """Seconds until the execution's containers are gone (the engine removes them itself)."""
    started = time.monotonic()
    for _ in range(int(within_s / 0.05)):
        if not leftovers(engine, execution_id):
            break
        await asyncio.sleep(0.05)
    assert leftovers(engine, execution_id) == [], f"still there after {within_s} s"
    return time.monotonic() - started


async def run_once(
    sandbox: DockerSandbox,
    engine: docker.DockerClient,
    argv: list[str],
    files: dict[str, bytes] | None = None,
    stdin: bytes = b"",
    run_limits: AppliedLimits = SMALL,
    language: Language = PYTHON,
) -> ProcessResult:
    """Open a fresh sandbox, run argv once, close it; check nothing is left behind."""
    execution_id = f"test-{uuid.uuid4().hex}"
    session = await sandbox.open(language, files or {}, run_limits, execution_id=execution_id)
    try:
        result = await session.execute(argv, stdin, run_limits, Output())
    finally:
        await session.close()
    assert leftovers(engine, execution_id) == []
    return result


async def still_healthy(sandbox: DockerSandbox, engine: docker.DockerClient) -> None:
    """After a hostile program: a fresh sandbox runs hello world."""
    result = await run_once(sandbox, engine, ["python3", "-c", "print('hello')"])
    assert result.succeeded, result
    assert result.stdout == b"hello\n"


async def python(
    sandbox: DockerSandbox,
    engine: docker.DockerClient,
    source: str,
    run_limits: AppliedLimits = SMALL,
    stdin: bytes = b"",
) -> ProcessResult:
    files = {"main.py": source.encode()}
    return await run_once(sandbox, engine, ["python3", "main.py"], files, stdin, run_limits)


async def gcc(sandbox: DockerSandbox, engine: docker.DockerClient, source: str) -> ProcessResult:
    """Compile C with the catalogue's argv and limits, then run it under SMALL limits."""
    execution_id = f"test-{uuid.uuid4().hex}"
    files = {GCC.file: source.encode()}
    session = await sandbox.open(GCC, files, GCC.compile_limits, execution_id=execution_id)
    try:
        assert GCC.compile is not None
        built = await session.execute(GCC.compile, b"", GCC.compile_limits, Output())
        assert built.succeeded, built.stderr.decode()
        return await session.execute(GCC.run, b"", SMALL, Output())
    finally:
        await session.close()
        assert leftovers(engine, execution_id) == []


# --- Programs that behave ------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("language_id", sorted(HELLO))
async def test_hello_world_in_every_language(
    sandbox: DockerSandbox, engine: docker.DockerClient, docker_engine: Settings, language_id: str
) -> None:
    language = languages()[language_id]
    container = language.compile_limits if language.compiled else language.limits
    execution_id = f"test-{uuid.uuid4().hex}"
    files = {language.file: HELLO[language_id].encode()}
    session = await sandbox.open(language, files, container, execution_id=execution_id)
    try:
        assert session.info.image == language.image(docker_engine.sandbox_image_set)
        assert session.info.image_digest and session.info.image_digest.startswith("sha256:")
        if language.compile is not None:
            built = await session.execute(language.compile, b"", language.compile_limits, Output())
            assert built.succeeded, built.stderr.decode()
        result = await session.execute(language.run, b"", language.limits, Output())
    finally:
        await session.close()
    assert result.succeeded, result
    assert result.stdout == b"Hello, World!\n"
    assert result.peak_memory_kb and result.peak_memory_kb > 0
    assert leftovers(engine, execution_id) == []


@pytest.mark.timeout(30)
async def test_stdin_reaches_the_program_byte_for_byte(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    # Binary, larger than any pipe or socket buffer, and full of what looks like our protocol.
    stdin = os.urandom(1024 * 1024) + b"\nQ\n\x1eR x 0 1 1 true\n\x00" * 100
    echo = "import sys\nsys.stdout.buffer.write(sys.stdin.buffer.read())"
    result = await python(sandbox, engine, echo, limits(output_bytes=4 * 1024 * 1024), stdin)
    assert result.succeeded, result.stderr
    assert result.stdout == stdin
    empty = await python(sandbox, engine, "import sys\nprint(len(sys.stdin.read()))")
    assert empty.stdout == b"0\n"


@pytest.mark.timeout(30)
async def test_output_streams_while_the_program_runs(sandbox: DockerSandbox) -> None:
    source = (
        "import sys, time\nprint('first', flush=True)\ntime.sleep(0.5)\n"
        "print('oops', file=sys.stderr, flush=True)\nprint('last')"
    )
    session = await sandbox.open(PYTHON, {"main.py": source.encode()}, SMALL)
    try:
        output = Output()
        result = await session.execute(["python3", "main.py"], b"", SMALL, output)
        finished = time.monotonic()
    finally:
        await session.close()
    assert result.stdout == b"first\nlast\n" and result.stderr == b"oops\n"
    first = next(at for stream, data, at in output.pieces if data == b"first\n")
    assert finished - first > 0.4  # forwarded while the program still slept
    # Order across the two streams is not kept (the engine copies two pipes); within one it is.
    assert {(s, d) for s, d, _ in output.pieces} == {
        (Stream.STDOUT, b"first\n"),
        (Stream.STDOUT, b"last\n"),
        (Stream.STDERR, b"oops\n"),
    }


@pytest.mark.timeout(30)
async def test_exit_codes_and_arguments_pass_through(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    weird = ["", "a b", "it's", '"$HOME"', "`id`", "$(id)", "é\n\t*", "--", ";exit 1"]
    argv = ["python3", "-c", "import sys; print(sys.argv[1:]); sys.exit(3)", *weird]
    result = await run_once(sandbox, engine, argv)
    assert (result.exit_code, result.signal) == (3, None)
    assert result.stdout.decode() == f"{weird}\n"


@pytest.mark.timeout(30)
async def test_sandboxes_run_side_by_side(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    programs = [f"import time\ntime.sleep(1)\nprint({i})" for i in range(4)]
    started = time.monotonic()
    results = await asyncio.gather(*(python(sandbox, engine, p) for p in programs))
    assert [r.stdout for r in results] == [b"0\n", b"1\n", b"2\n", b"3\n"]
    assert time.monotonic() - started < 3  # together, not one after the other (4 s)


@pytest.mark.timeout(30)
async def test_a_forged_reply_is_just_output(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    fake = b"\x1e0123456789abcdef 0 1 1 0 1\n"
    source = f"import sys\nsys.stdout.buffer.write({fake!r})\nsys.stderr.buffer.write({fake!r})"
    result = await python(sandbox, engine, source)
    assert result.succeeded
    assert result.stdout == fake and result.stderr == fake


# --- Hostile programs ------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_segfault_and_division_by_zero_are_signals(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    segv = await gcc(sandbox, engine, "int main(void) { volatile int *p = 0; *p = 1; return 0; }")
    assert (segv.exit_code, segv.signal) == (None, 11)
    # Both operands volatile: gcc turns a constant `1 / z` into a compare, with no division.
    fpe = await gcc(sandbox, engine, "int main(void) { volatile int n = 7, z = 0; return n / z; }")
    assert (fpe.exit_code, fpe.signal) == (None, 8)
    py_segv = await python(sandbox, engine, "import ctypes\nctypes.string_at(0)")
    assert (py_segv.exit_code, py_segv.signal) == (None, 11)
    assert not (segv.timed_out or segv.oom_killed or fpe.timed_out or py_segv.timed_out)
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_busy_loop_hits_the_cpu_limit(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    started = time.monotonic()
    result = await python(sandbox, engine, "while True: pass", limits(wall_time_ms=5000))
    assert result.timed_out and result.signal == 24  # SIGXCPU at the 1 s CPU limit
    assert time.monotonic() - started < 4
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_sleeping_program_is_killed_at_the_wall_limit(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    started = time.monotonic()
    result = await run_once(sandbox, engine, ["sleep", "100"], run_limits=limits(wall_time_ms=1000))
    assert result.timed_out and result.signal == 9
    assert 1000 <= result.wall_time_ms < 1500
    assert time.monotonic() - started < 3
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_memory_bomb_is_oom_killed(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    bomb = "x = bytearray(b'x') * (1 << 30)\nprint('survived')"
    result = await python(sandbox, engine, bomb)
    assert result.oom_killed and result.signal == 9 and not result.timed_out
    assert result.stdout == b""
    assert result.peak_memory_kb is not None and result.peak_memory_kb <= 64 * 1024
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(60)
async def test_each_run_gets_its_own_memory_limit(sandbox: DockerSandbox) -> None:
    # The container is sized for the biggest step (e.g. a compiler); a run's limit still holds.
    grab = ["python3", "-c", "x = bytearray(b'x') * (160 << 20); print('ok')"]
    session = await sandbox.open(PYTHON, {}, limits(memory_mb=512))
    try:
        small = await session.execute(grab, b"", limits(memory_mb=64), Output())
        large = await session.execute(grab, b"", limits(memory_mb=512), Output())
    finally:
        await session.close()
    assert small.oom_killed
    assert large.succeeded and large.stdout == b"ok\n" and not large.oom_killed


@pytest.mark.timeout(60)
async def test_fork_bomb_is_contained(sandbox: DockerSandbox, engine: docker.DockerClient) -> None:
    count_forks = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        "            time.sleep(60)\n            os._exit(0)\n        n += 1\n"
        "except OSError as e:\n    print(n, e.errno, flush=True)\n"
    )
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    files = {"count.py": count_forks.encode(), "bomb.py": bomb.encode()}
    session = await sandbox.open(PYTHON, files, SMALL)
    try:
        counted = await session.execute(["python3", "count.py"], b"", SMALL, Output())
        forks, errno = map(int, counted.stdout.split())
        # EAGAIN once the program and its children are `processes` processes: the limit held.
        assert errno == 11 and forks == SMALL.processes - 1
        started = time.monotonic()
        bombed = await session.execute(["python3", "bomb.py"], b"", SMALL, Output())
        assert bombed.timed_out and time.monotonic() - started < 5
        shell = ["bash", "-c", ":(){ :|:& };:; wait"]
        await session.execute(shell, b"", limits(wall_time_ms=1000), Output())
        after = await session.execute(["ls", "/proc"], b"", SMALL, Output())
        assert after.succeeded
        assert _pids(after.stdout) <= 3  # PID 1, timeout and ls: every bomb process is gone
    finally:
        await session.close()
    await still_healthy(sandbox, engine)


def _pids(listing: bytes) -> int:
    return sum(1 for name in listing.split() if name.isdigit())


@pytest.mark.timeout(30)
async def test_output_flood_is_capped(sandbox: DockerSandbox, engine: docker.DockerClient) -> None:
    session = await sandbox.open(PYTHON, {}, SMALL)
    output = Output()
    started = time.monotonic()
    try:
        result = await session.execute(["yes"], b"", SMALL, output)
        again = await session.execute(["echo", "after"], b"", SMALL, Output())
    finally:
        await session.close()
    assert result.output_limit_exceeded and result.signal == 9
    assert len(result.stdout) == SMALL.output_bytes == output.total()
    assert time.monotonic() - started < 2
    assert again.stdout == b"after\n"
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_no_network(sandbox: DockerSandbox, engine: docker.DockerClient) -> None:
    source = (
        "import os, socket\nprint(sorted(os.listdir('/sys/class/net')))\n"
        "for address in [('1.1.1.1', 53), ('8.8.8.8', 443), ('172.17.0.1', 2375)]:\n"
        "    s = socket.socket()\n    s.settimeout(2)\n    try:\n"
        "        s.connect(address)\n        print('connected', address)\n"
        "    except OSError as e:\n        print('failed', e.errno)\n"
    )
    result = await python(sandbox, engine, source)
    assert result.succeeded, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "['lo']"
    assert lines[1:] == ["failed 101"] * 3  # ENETUNREACH: there is no route anywhere


@pytest.mark.timeout(30)
async def test_nothing_outside_work_is_writable(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    source = (
        "import os\n"
        "for path in ['/etc/passwd', '/tmp/x', '/x', '/usr/bin/python3', '/var/tmp/x']:\n"
        "    try:\n        open(path, 'a').close()\n        print('wrote', path)\n"
        "    except OSError as e:\n        print(e.errno)\n"
        "open('/work/ok', 'w').write('fine')\nprint(os.getuid(), os.getgid())\n"
    )
    result = await python(sandbox, engine, source)
    assert result.succeeded, result.stderr
    *errors, ids = result.stdout.decode().splitlines()
    assert set(errors) <= {"30", "13"}, errors  # EROFS or EACCES, never "wrote"
    assert ids == "65534 65534"


@pytest.mark.timeout(60)
async def test_filling_the_work_dir_fails_the_program_not_the_sandbox(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    fill = (
        "import itertools\nblock = b'x' * (1 << 20)\n"
        "for i in itertools.count():\n    with open(f'f{i}', 'wb') as f:\n"
        "        for _ in range(16):\n            f.write(block)\n"
    )
    roomy = limits(memory_mb=256, wall_time_ms=10_000, cpu_time_ms=5000)
    session = await sandbox.open(PYTHON, {"fill.py": fill.encode()}, roomy)
    try:
        filled = await session.execute(["python3", "fill.py"], b"", roomy, Output())
        assert filled.exit_code == 1 and b"No space left on device" in filled.stderr
        one_file = ["dd", "if=/dev/zero", "of=/work/big", "bs=1M", "count=200"]
        big = await session.execute(one_file, b"", roomy, Output())
        assert big.exit_code == 1 or big.signal == 25  # ENOSPC, or SIGXFSZ at the file size limit
        hello = await session.execute(["echo", "still here"], b"", roomy, Output())
        assert hello.stdout == b"still here\n"
    finally:
        await session.close()
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_killing_timeout_does_not_free_the_program(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    escape = "import os\nos.kill(os.getppid(), 9)\nwhile True:\n    pass\n"
    everyone = "import os\nos.kill(-1, 9)\nwhile True:\n    pass\n"
    session = await sandbox.open(
        PYTHON, {"a.py": escape.encode(), "b.py": everyone.encode()}, SMALL
    )
    try:
        for program in ("a.py", "b.py"):
            started = time.monotonic()
            result = await session.execute(["python3", program], b"", SMALL, Output())
            assert result.signal == 9 and time.monotonic() - started < 3.5
            after = await session.execute(["ls", "/proc"], b"", SMALL, Output())
            assert _pids(after.stdout) <= 3, after.stdout
    finally:
        await session.close()
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_host_backstop_ends_a_run_whose_timeout_was_stopped(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    freeze = "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nwhile True:\n    pass\n"
    session = await sandbox.open(PYTHON, {"main.py": freeze.encode()}, SMALL)
    try:
        started = time.monotonic()
        result = await session.execute(
            ["python3", "main.py"], b"", limits(cpu_time_ms=10_000), Output()
        )
        took = time.monotonic() - started
        again = await session.execute(["echo", "after"], b"", SMALL, Output())
    finally:
        await session.close()
    assert result.timed_out and result.signal == 9
    assert 2 < took < 4  # wall limit 2 s + 1 s grace, not the CPU limit
    assert again.stdout == b"after\n"
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_a_program_that_hijacks_the_supervisor_loses_its_sandbox(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    # ptrace freezes PID 1 (same uid: allowed), then killing `timeout` leaves nobody inside
    # to stop the program: the host removes the whole container past wall + grace.
    hijack = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.ptrace(16, 1, 0, 0), flush=True)\n"  # PTRACE_ATTACH to PID 1
        "os.kill(os.getppid(), 9)\nwhile True:\n    pass\n"
    )
    execution_id = f"test-{uuid.uuid4().hex}"
    session = await sandbox.open(
        PYTHON, {"main.py": hijack.encode()}, SMALL, execution_id=execution_id
    )
    try:
        started = time.monotonic()
        result = await session.execute(["python3", "main.py"], b"", SMALL, Output())
        took = time.monotonic() - started
        later_output = Output()
        later = await session.execute(["echo", "hi"], b"", SMALL, later_output)
    finally:
        await session.close()
    assert result.stdout == b"0\n"  # the attach worked: this is the worst case
    assert result.timed_out and result.signal == 9 and took < 6
    assert later.signal == 9 and later.stdout == b""  # reported, not a retriable error
    assert later_output.pieces[0][0] is Stream.SYSTEM
    assert leftovers(engine, execution_id) == []
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_background_processes_are_gone_before_the_next_run(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    daemon = (
        "import os, subprocess, time\n"
        "subprocess.Popen(['sleep', '100'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        for fd in (0, 1, 2):\n            os.close(fd)\n"
        "        while True:\n            open('/work/ticks', 'a').write('x')\n"
        "            time.sleep(0.01)\n    os._exit(0)\n"
        "time.sleep(0.2)\nprint('main done')\n"
    )
    check = (
        "import os, time\nn = os.path.getsize('/work/ticks')\ntime.sleep(0.3)\n"
        "pids = sorted(p for p in os.listdir('/proc') if p.isdigit())\n"
        "print(n == os.path.getsize('/work/ticks'), pids)"
    )
    files = {"daemon.py": daemon.encode(), "check.py": check.encode()}
    session = await sandbox.open(PYTHON, files, SMALL)
    try:
        started = time.monotonic()
        ran = await session.execute(["python3", "daemon.py"], b"", SMALL, Output())
        assert ran.succeeded and ran.stdout == b"main done\n"
        assert time.monotonic() - started < 1.5  # the run ends with main, not with the daemon
        checked = await session.execute(["python3", "check.py"], b"", SMALL, Output())
    finally:
        await session.close()
    still, pids = checked.stdout.decode().split(" ", 1)
    assert still == "True"  # nobody writes the file any more
    assert len(ast.literal_eval(pids)) <= 3  # PID 1, timeout, python
    await still_healthy(sandbox, engine)


@pytest.mark.timeout(30)
async def test_the_supervisor_shrugs_off_signals_and_forged_commands(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    attack = (
        # (USR1 is how the service asks PID 1 to stop a run: a program may only stop itself.)
        "for s in {1..9} {11..31} {34..64}; do kill -s $s 1; done\n"
        "printf 'Q\\nR x 0 1 1 1 touch /work/pwned\\n' > /proc/1/fd/0\necho sent\n"
    )
    session = await sandbox.open(PYTHON, {"attack.sh": attack.encode()}, SMALL)
    try:
        first = await session.execute(["bash", "attack.sh"], b"", SMALL, Output())
        # PID 1 drained the forged lines with a timed read, after which bash would handle (and
        # die of) terminating signals unless they are ignored: the same attack again.
        again = await session.execute(["bash", "attack.sh"], b"", SMALL, Output())
        second = await session.execute(["ls", "-A", "/work"], b"", SMALL, Output())
    finally:
        await session.close()
    assert b"sent\n" in first.stdout and b"sent\n" in again.stdout
    assert second.succeeded and second.stdout == b"attack.sh\n"
    await still_healthy(sandbox, engine)


# --- Engine-side failures and clean-up -----------------------------------------------------------


@pytest.mark.timeout(30)
async def test_missing_image_is_a_clear_sandbox_error(sandbox: DockerSandbox) -> None:
    ghost = languages()["go"]
    images = {key: "coderunner/runtime-ghost:bookworm" for key in ghost.images}
    missing = dataclasses.replace(ghost, images=images)
    with pytest.raises(SandboxError, match=r"runtime-ghost:bookworm not found .*make stack-up"):
        await sandbox.open(missing, {}, SMALL)


@pytest.mark.timeout(30)
async def test_leftovers_are_removed_and_close_tolerates_it(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    execution_id = f"test-{uuid.uuid4().hex}"
    session: DockerSandboxSession = await sandbox.open(PYTHON, {}, SMALL, execution_id=execution_id)
    assert len(leftovers(engine, execution_id)) == 1
    assert await sandbox.remove_leftovers(execution_id) == 1
    assert leftovers(engine, execution_id) == []
    with pytest.raises(SandboxError):
        await session.execute(["true"], b"", SMALL, Output())
    await session.close()
    await session.close()


@pytest.mark.timeout(30)
async def test_cancelled_open_and_run_leave_no_container(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    execution_id = f"test-{uuid.uuid4().hex}"
    opening = asyncio.ensure_future(sandbox.open(PYTHON, {}, SMALL, execution_id=execution_id))
    await asyncio.sleep(0.02)  # the engine is creating the container
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    session = await sandbox.open(PYTHON, {}, SMALL, execution_id=execution_id)
    running = asyncio.ensure_future(session.execute(["sleep", "100"], b"", SMALL, Output()))
    await asyncio.sleep(0.3)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await session.close()
    for _ in range(50):  # the abandoned open's container is removed in the background
        if not leftovers(engine, execution_id):
            break
        await asyncio.sleep(0.1)
    assert leftovers(engine, execution_id) == []


@pytest.mark.timeout(30)
async def test_session_labels_and_hardening(
    sandbox: DockerSandbox, engine: docker.DockerClient, docker_engine: Settings
) -> None:
    execution_id = f"test-{uuid.uuid4().hex}"
    session = await sandbox.open(PYTHON, {}, SMALL, execution_id=execution_id)
    try:
        attrs = engine.containers.get(session.container_id).attrs
    finally:
        await session.close()
    host, labels = attrs["HostConfig"], attrs["Config"]["Labels"]
    assert labels[LABEL_MANAGED] == "true" and labels[LABEL_EXECUTION] == execution_id
    assert labels[LABEL_WORKER_HOST] == docker_engine.worker_name
    assert labels[LABEL_WORKER_PID] == str(os.getpid())
    assert attrs["Config"]["StdinOnce"] is True and host["AutoRemove"] is True
    assert attrs["Config"]["Cmd"][-1] == str(sandbox.lifetime_s(SMALL))
    assert attrs["Config"]["User"] == "65534:65534"
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == host["MemorySwap"] == 64 * 1024 * 1024
    assert host["PidsLimit"] >= SMALL.processes and host["NanoCpus"] == 1_000_000_000
    assert {u["Name"] for u in host["Ulimits"]} == {"fsize", "nofile", "core"}
    assert leftovers(engine, execution_id) == []


@pytest.mark.timeout(30)
async def test_filling_work_under_a_small_memory_limit_fails_as_a_full_disk(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    # tmpfs pages count against the memory limit, so the work dir is at most half of it: the
    # write hits the file-size limit (SIGXFSZ) long before the OOM killer could take PID 1.
    tiny = limits(memory_mb=16)
    execution_id = f"test-{uuid.uuid4().hex}"
    session = await sandbox.open(PYTHON, {}, tiny, execution_id=execution_id)
    try:
        fill = ["dd", "if=/dev/zero", "of=/work/big", "bs=1M", "count=100"]
        result = await session.execute(fill, b"", tiny, Output())
        assert (result.signal, result.oom_killed) == (25, False)
        after = await session.execute(["sh", "-c", "rm big; echo ok"], b"", tiny, Output())
        assert after.stdout == b"ok\n"
    finally:
        await session.close()


@pytest.mark.timeout(30)
async def test_the_supervisor_exits_after_its_lifetime_and_the_engine_removes_it(
    sandbox: DockerSandbox, engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "lifetime_s", lambda _limits: 3)
    execution_id = f"test-{uuid.uuid4().hex}"
    session = await sandbox.open(PYTHON, {}, SMALL, execution_id=execution_id)
    try:
        ran = await session.execute(["echo", "in time"], b"", SMALL, Output())
        assert ran.stdout == b"in time\n"
        await until_gone(engine, execution_id, within_s=6)
        with pytest.raises(SandboxError):
            await session.execute(["true"], b"", SMALL, Output())
    finally:
        await session.close()
        await session.close()


# --- Workers that die, and workers that share the engine -----------------------------------------

# A worker process in miniature: opens a session, says which container, then waits to be killed.
# "busy": it is in the middle of a run and has stopped reading the output (a full socket buffer,
# so the kernel resets the connection instead of closing it).
_DOOMED_WORKER = """
import asyncio, sys
from coderunner.domain import AppliedLimits
from coderunner.languages import languages
from coderunner.sandbox.docker_sandbox import DockerSandbox
from coderunner.settings import Settings

async def stuck(stream, data):
    await asyncio.Event().wait()

async def main(execution_id, mode):
    limits = AppliedLimits(
        wall_time_ms=2000, cpu_time_ms=1000, memory_mb=64, processes=16, output_bytes=1 << 24
    )
    sandbox = DockerSandbox(Settings(_env_file=None))
    session = await sandbox.open(languages()["python"], {}, limits, execution_id=execution_id)
    if mode == "busy":
        asyncio.ensure_future(session.execute(["yes"], b"", limits, stuck))
        await asyncio.sleep(0.5)
    print(session.container_id, flush=True)
    await asyncio.sleep(600)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("mode", "within_s"), [("idle", 2.0), ("busy", 5.0)])
async def test_a_killed_workers_container_is_gone_within_seconds(
    engine: docker.DockerClient, docker_engine: Settings, mode: str, within_s: float
) -> None:
    execution_id = f"test-{uuid.uuid4().hex}"
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DOOMED_WORKER, execution_id, mode, stdout=subprocess.PIPE
    )
    try:
        assert worker.stdout is not None
        container_id = (await asyncio.wait_for(worker.stdout.readline(), 30)).decode().strip()
        assert [c.id for c in leftovers(engine, execution_id)] == [container_id]
    finally:
        worker.send_signal(signal.SIGKILL)  # no close(), no clean-up: the worker just dies
        await worker.wait()
    took = await until_gone(engine, execution_id, within_s)
    print(f"{mode}: container gone {took:.2f} s after the worker's kill -9")


def _stray_container(
    engine: docker.DockerClient, image: str, execution_id: str, host: str, pid: int
) -> str:
    """A running managed container made by worker `pid` on `host` (never closed by it)."""
    labels = {
        LABEL_MANAGED: "true",
        LABEL_EXECUTION: execution_id,
        LABEL_WORKER_HOST: host,
        LABEL_WORKER_PID: str(pid),
    }
    host_config = engine.api.create_host_config(network_mode="none")
    created = engine.api.create_container(
        image, command=["sleep", "120"], labels=labels, host_config=host_config
    )
    engine.api.start(created["Id"])
    return str(created["Id"])


@pytest.mark.timeout(60)
async def test_remove_leftovers_takes_only_containers_of_dead_workers_of_this_host(
    sandbox: DockerSandbox, engine: docker.DockerClient, docker_engine: Settings
) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    alive = await asyncio.create_subprocess_exec("sleep", "60")
    here = docker_engine.worker_name
    owners = {
        "dead worker": (here, gone.pid),
        "live worker": (here, alive.pid),  # e.g. a sibling worker process on this machine
        "this worker": (here, os.getpid()),
        "other host": (f"not-{here}", gone.pid),  # pid means nothing across hosts
    }
    execution_id = f"test-{uuid.uuid4().hex}"
    image = PYTHON.image(docker_engine.sandbox_image_set)
    made: dict[str, str] = {}
    try:
        for owner, (host, pid) in owners.items():
            made[owner] = _stray_container(engine, image, execution_id, host, pid)
        await sandbox.remove_leftovers()
        remaining = {c.id for c in leftovers(engine, execution_id)}
        assert {owner for owner, cid in made.items() if cid in remaining} == {
            "live worker",
            "this worker",
            "other host",
        }
    finally:
        alive.kill()
        await alive.wait()
        await sandbox.remove_leftovers(execution_id)
    assert leftovers(engine, execution_id) == []
