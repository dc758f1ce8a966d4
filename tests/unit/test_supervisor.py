"""The sandbox supervisor's protocol without an engine: framing, quoting, results, and the
script's own ways of ending (run here by the local bash)."""

from __future__ import annotations

import struct
import subprocess
import time

import pytest

from coderunner.domain import AppliedLimits, Stream
from coderunner.errors import InvalidSubmission
from coderunner.handlers.ports import ProcessResult
from coderunner.sandbox.supervisor import (
    QUIT,
    ReplyReader,
    RunOutcome,
    process_result,
    shell_word,
    supervisor_command,
    tar_archive,
)

SMALL = AppliedLimits(
    wall_time_ms=2000, cpu_time_ms=1000, memory_mb=64, processes=16, output_bytes=64 * 1024
)


def _frame(kind: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(data)) + data


def test_reply_reader_finds_the_reply_wherever_the_stream_is_cut() -> None:
    reply = b"\x1eabc 0 1500 2000000 0 4096\n"
    stream = (
        _frame(1, b"out\x1e")  # looks like the start of a reply, is output
        + _frame(2, b"err\x1eab")
        + _frame(1, b"put" + reply[:5])
        + _frame(1, reply[5:])
        + _frame(2, b"x\n" + reply)
    )
    reader = ReplyReader("abc", output_cap=100)
    forwarded: list[tuple[Stream, bytes]] = []
    for i in range(len(stream)):  # one byte at a time: the worst split
        forwarded += reader.feed(stream[i : i + 1])
    assert reader.done and reader.reply == ["0", "1500", "2000000", "0", "4096"]
    assert b"".join(d for s, d in forwarded if s is Stream.STDOUT) == b"out\x1eput"
    assert b"".join(d for s, d in forwarded if s is Stream.STDERR) == b"err\x1eabx\n"


def test_reply_reader_stops_forwarding_at_the_output_cap() -> None:
    reader = ReplyReader("n", output_cap=10)
    forwarded = reader.feed(_frame(1, b"123456") + _frame(2, b"789abc") + _frame(1, b"def"))
    assert b"".join(d for _, d in forwarded) == b"123456789a"
    assert reader.cap_exceeded and not reader.done


def test_shell_words_survive_bash_unchanged() -> None:
    argv = ["plain", "", "a b", "it's", "$(id)", "`id`", "\\", "é\n\t*?", "-", "x=1;y"]
    words = " ".join(shell_word(a) for a in argv)
    script = 'eval "set -- $1"; printf "%s\\0" "$@"'
    done = subprocess.run(["bash", "-c", script, "_", words], capture_output=True, check=True)
    assert done.stdout.split(b"\0")[:-1] == [a.encode() for a in argv]


def test_file_names_must_stay_in_the_work_dir() -> None:
    assert tar_archive({"main.py": b"print()", "src/lib.c": b""})
    for name in ("../etc/passwd", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(InvalidSubmission, match="relative path"):
            tar_archive({name: b"x"})


def test_process_result_reads_signals_and_limits() -> None:
    def result(reply: list[str], **seen: object) -> ProcessResult:
        outcome = {"host_wall_ms": 50, "cap_exceeded": False, "backstop": False, **seen}
        run = RunOutcome(reply=reply, stdout=b"", stderr=b"", **outcome)  # type: ignore[arg-type]
        return process_result(run, SMALL, oom_kills_before=1)[0]

    assert result(["0", "1000", "5", "1", "2048"]).succeeded
    segv = result(["139", "1000", "5", "1", "2048"])
    assert (segv.exit_code, segv.signal, segv.timed_out) == (None, 11, False)
    wall = result(["137", "2001000", "5", "1", "-"])
    assert wall.timed_out and wall.peak_memory_kb is None
    cpu = result(["152", "1100000", "1000000000", "1", "0"])
    assert cpu.timed_out and cpu.signal == 24
    oom = result(["137", "300000", "5", "2", "65536"])
    assert oom.oom_killed and not oom.timed_out and oom.peak_memory_kb == 64
    lost = result([], backstop=True)
    assert lost.timed_out and lost.signal == 9 and lost.wall_time_ms == 50


# --- How the supervisor ends: it must never outlive the worker that talks to it ------------------


def _supervisor(lifetime_s: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(supervisor_command(lifetime_s), stdin=subprocess.PIPE)


@pytest.mark.timeout(10)
def test_the_supervisor_exits_at_the_end_of_its_input() -> None:
    # In a container the engine closes stdin when the worker's attach connection ends.
    supervisor = _supervisor(600)
    assert supervisor.stdin is not None
    supervisor.stdin.close()
    assert supervisor.wait(timeout=5) == 0


@pytest.mark.timeout(10)
def test_the_supervisor_exits_on_quit_and_on_nonsense() -> None:
    quitting, confused = _supervisor(600), _supervisor(600)
    assert quitting.communicate(QUIT, timeout=5) == (None, None)
    assert quitting.returncode == 0
    confused.communicate(b"X\n", timeout=5)
    assert confused.returncode == 2


@pytest.mark.timeout(10)
def test_the_supervisor_exits_after_its_lifetime_even_if_input_stays_open() -> None:
    started = time.monotonic()
    supervisor = _supervisor(2)  # stdin is our pipe, open until the end of this test
    try:
        status = supervisor.wait(timeout=5)
    finally:
        supervisor.kill()
        supervisor.wait()
    assert status == 3
    assert 1 <= time.monotonic() - started < 3.5  # whole seconds of the wall clock


def test_the_supervisor_lives_at_least_a_second() -> None:
    with pytest.raises(ValueError, match="at least 1 s"):
        supervisor_command(0)
