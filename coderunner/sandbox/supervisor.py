"""The sandbox container's PID 1 and the protocol the host speaks with it, without any I/O.

The supervisor (`SUPERVISOR`, a bash script) reads commands from the container's attached
stdin and answers on its stdout and stderr:

    host -> stdin    F <nonce> <n>\\n <n bytes of tar>          put files into /work
                     R <nonce> <n> <wall s> <cpu s> <argv>\\n <n bytes of stdin>
                     Q\\n                                        exit (close)
    stdout, stderr   the program's output, then on both streams the reply line
                     \\x1e<nonce> <status> [<wall us> <cpu ns> <oom kills> <peak bytes>]\\n

It exits (and the container stops) on Q, at the end of its stdin — the engine closes it when
the host's attach connection ends, e.g. because the worker died — and at the latest when its
lifetime (its first argument, in seconds) has passed, checked whenever it waits for a command.
Exit status: 0 on Q or end of input, 3 past its lifetime, 2 on an unknown command.

Everything here is a plain function of its arguments: what to send, and what the bytes that
came back mean. `docker_sandbox` does the sending and receiving.
"""

from __future__ import annotations

import io
import math
import struct
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from coderunner.domain import AppliedLimits, Stream
from coderunner.errors import InvalidSubmission
from coderunner.handlers.ports import ProcessResult

WORK_DIR = "/work"
WORK_DIR_BYTES = 64 * 1024 * 1024  # tmpfs size; also the largest file a program may write
MIN_MEMORY_BYTES = 6 * 1024 * 1024  # the engine refuses less
REPLY_MARK = b"\x1e"
QUIT = b"Q\n"
SIGXCPU = 24
SIGKILL = 9

# PID 1 of every sandbox container. Kept fork-free where it matters: builtins only, except
# `timeout` (the run), and head/cat/tar (stdin and files, before any program runs).
#
# The kernel drops a signal to a PID namespace's init only while it has no handler for it; a
# timed `read` makes bash install handlers for every terminating signal, which would let a
# program kill PID 1. So they are all ignored (trap '') — and reset again for the program.
SUPERVISOR = r"""
sigs='INT HUP ILL TRAP ABRT FPE BUS SEGV SYS PIPE ALRM TERM XCPU XFSZ VTALRM USR2'
trap '' $sigs
trap 'hit=1; reap' USR1
deadline=$((EPOCHSECONDS + $1))
reap() { local i=0; while kill -9 -1 2>/dev/null && ((++i < 100000)); do :; done; }
drain() {
  local i=0; while ((i++ < 64)) && read -r -t 0; do read -r -N 65536 -t 0.05 _ || break; done
}
reply() { printf '\036%s %s\n' "$nonce" "$*"; printf '\036%s %s\n' "$nonce" "$*" >&2; }
field() { local k v; val=-; while read -r k v; do [[ $k == "$2" ]] && val=$v; done < "$1"; }
stats() {  # cgroup v1, else v2: CPU ns used, OOM kills, peak memory bytes ("-": unknown)
  local g=/sys/fs/cgroup m=/sys/fs/cgroup/memory; cpu=- oom=- peak=- val=-
  if [[ -r $g/cpuacct/cpuacct.usage ]]; then read -r cpu < $g/cpuacct/cpuacct.usage
  elif [[ -r $g/cpu.stat ]]; then
    field $g/cpu.stat usage_usec; [[ $val == - ]] || cpu=$((val * 1000))
  fi
  if [[ -r $m/memory.oom_control ]]; then field $m/memory.oom_control oom_kill; oom=$val
  elif [[ -r $g/memory.events ]]; then field $g/memory.events oom_kill; oom=$val; fi
  if [[ -r $m/memory.max_usage_in_bytes ]]; then read -r peak < $m/memory.max_usage_in_bytes
  elif [[ -r $g/memory.peak ]]; then read -r peak < $g/memory.peak; fi
}
run() {
  local n=$1 wall=$2 cpulim=$3 in=/dev/null st t0 t1 c0
  eval "set -- $4"
  if ((n > 0)); then
    in=/work/.coderunner-stdin
    # Always consume exactly n bytes, even when the file can't take them (the next command
    # follows on the same stream).
    if ! head -c "$n" | { cat > "$in"; s=$?; cat > /dev/null; exit $s; }; then
      rm -f -- "$in"; reply stdin; return
    fi
  fi
  exec 3< "$in"
  [[ $in == /dev/null ]] || rm -f -- "$in"
  stats; c0=$cpu
  t0=$EPOCHREALTIME
  (trap - $sigs; ulimit -S -t "$cpulim" && ulimit -H -t $((cpulim + 1)) || exit 125
   exec timeout -s KILL "$wall" "$@" <&3 3<&-) &
  job=$!
  exec 3<&-
  while :; do hit=0; wait "$job" 2>/dev/null; st=$?; ((hit)) || break; done
  t1=$EPOCHREALTIME
  reap; drain; stats
  if [[ $c0 == - || $cpu == - ]]; then cpu=-; else cpu=$((cpu - c0)); fi
  reply "$st" $((${t1/[.,]/} - ${t0/[.,]/})) "$cpu" "$oom" "$peak"
}
while :; do
  left=$((deadline - EPOCHSECONDS)); ((left > 0)) || exit 3
  # Past 128: interrupted by USR1 or timed out (the lifetime is checked above); else the end.
  read -r -t "$left" op nonce a b c rest || { (($? > 128)) && continue; exit 0; }
  case $op in
  R) run "$a" "$b" "$c" "$rest" ;;
  F) head -c "$a" | { tar -x -C /work -f -; s=$?; cat > /dev/null; exit $s; }; reply $? ;;
  Q) exit 0 ;;
  *) exit 2 ;;
  esac
done
"""

_SAFE_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%")
_STREAMS = {1: Stream.STDOUT, 2: Stream.STDERR}


def supervisor_command(lifetime_s: int) -> list[str]:
    """The container's command: the supervisor, which exits after lifetime_s at the latest."""
    if lifetime_s < 1:
        raise ValueError(f"the supervisor's lifetime must be at least 1 s, not {lifetime_s}")
    return ["bash", "-c", SUPERVISOR, "coderunner-supervisor", str(lifetime_s)]


def shell_word(arg: str) -> str:
    """One argv element as a bash word: plain when harmless, else $'\\xHH' bytes (no injection)."""
    raw = arg.encode()
    if b"\0" in raw:
        raise InvalidSubmission("argv", f"{arg!r} contains a NUL byte")
    if raw and all(b in _SAFE_BYTES for b in raw):
        return arg
    return "$'" + "".join(chr(b) if b in _SAFE_BYTES else f"\\x{b:02x}" for b in raw) + "'"


def run_command(nonce: str, argv: Sequence[str], stdin_bytes: int, limits: AppliedLimits) -> bytes:
    """The R line; the stdin bytes follow it on the stream."""
    if not argv:
        raise InvalidSubmission("argv", "must name a program")
    wall_s = f"{limits.wall_time_ms / 1000:.3f}"
    cpu_s = max(1, math.ceil(limits.cpu_time_ms / 1000))  # RLIMIT_CPU counts whole seconds
    words = " ".join(shell_word(a) for a in argv)
    return f"R {nonce} {stdin_bytes} {wall_s} {cpu_s} {words}\n".encode()


def files_command(nonce: str, archive: bytes) -> bytes:
    """The F line followed by the tar stream (see `tar_archive`)."""
    return f"F {nonce} {len(archive)}\n".encode() + archive


def tar_archive(files: Mapping[str, bytes]) -> bytes:
    """The files as a tar stream for `tar -x -C /work`; names must stay inside the work dir."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            path = PurePosixPath(name)
            if not name or "\0" in name or path.is_absolute() or ".." in path.parts:
                raise InvalidSubmission("files", f"{name!r} must be a relative path in {WORK_DIR}")
            info = tarfile.TarInfo(str(path))
            info.size, info.mode, info.mtime = len(data), 0o644, now
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ReplyReader:
    """Splits the attach stream into program output (within the cap) and the supervisor's reply.

    Feed it raw bytes as they arrive; it returns the output pieces to forward. A stream is done
    once the reply line with this run's nonce came through it; the run is done when both are.
    """

    def __init__(self, nonce: str, output_cap: int) -> None:
        self._marker = REPLY_MARK + nonce.encode() + b" "
        self._frames = bytearray()
        self._pending = {1: bytearray(), 2: bytearray()}
        self._replies: dict[int, bytes] = {}
        self._room = output_cap
        self.captured = {Stream.STDOUT: bytearray(), Stream.STDERR: bytearray()}
        self.cap_exceeded = False

    @property
    def done(self) -> bool:
        return len(self._replies) == 2

    @property
    def reply(self) -> list[str]:
        return self._replies.get(2, self._replies.get(1, b"")).decode(errors="replace").split()

    def said(self) -> str:
        """What came through so far, for an error message."""
        text = bytes(self.captured[Stream.STDERR] + self.captured[Stream.STDOUT])
        return text.decode(errors="replace").strip() or "(no output)"

    def feed(self, data: bytes) -> list[tuple[Stream, bytes]]:
        self._frames += data
        out: list[tuple[Stream, bytes]] = []
        while len(self._frames) >= 8:
            kind, size = struct.unpack_from(">BxxxL", self._frames)
            if len(self._frames) < 8 + size:
                break
            payload = bytes(self._frames[8 : 8 + size])
            del self._frames[: 8 + size]
            if kind in _STREAMS and kind not in self._replies:
                out.extend(self._admit(kind, self._scan(kind, payload)))
        return out

    def _scan(self, kind: int, payload: bytes) -> bytes:
        """Output that is certainly not part of the reply; keeps back a possible reply prefix."""
        pending = self._pending[kind]
        pending += payload
        at = pending.find(self._marker)
        if at >= 0:
            end = pending.find(b"\n", at)
            if end >= 0:
                self._replies[kind] = bytes(pending[at + len(self._marker) : end])
            keep = len(pending) - at
        else:
            keep = _marker_prefix_at_end(pending, self._marker)
        output = bytes(pending[: len(pending) - keep])
        del pending[: len(pending) - keep]
        return output

    def _admit(self, kind: int, data: bytes) -> list[tuple[Stream, bytes]]:
        if not data:
            return []
        taken = data[: self._room]
        self._room -= len(taken)
        self.cap_exceeded = self.cap_exceeded or len(taken) < len(data)
        if not taken:
            return []
        stream = _STREAMS[kind]
        self.captured[stream] += taken
        return [(stream, taken)]


def _marker_prefix_at_end(data: bytearray, marker: bytes) -> int:
    """Length of the longest tail of data that could be the start of the marker."""
    start = data.rfind(REPLY_MARK, max(0, len(data) - len(marker) + 1))
    if start >= 0 and marker.startswith(data[start:]):
        return len(data) - start
    return 0


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What the host saw of one run, besides the reply."""

    reply: list[str]  # empty when no reply came (the run was killed from outside)
    host_wall_ms: int
    cap_exceeded: bool
    backstop: bool  # the host had to kill the run past the wall-clock limit
    stdout: bytes
    stderr: bytes


def process_result(
    outcome: RunOutcome, limits: AppliedLimits, oom_kills_before: int
) -> tuple[ProcessResult, int]:
    """The run's result from the supervisor's reply; also returns the OOM-kill counter now."""
    status, wall_us, cpu_ns, oom_kills, peak = (_number(outcome.reply, i) for i in range(5))
    exit_code, signal = (None, SIGKILL) if status is None else _exit_status(status)
    wall_ms = outcome.host_wall_ms if wall_us is None else wall_us // 1000
    cpu_ms = None if cpu_ns is None else cpu_ns // 1_000_000
    killed = signal == SIGKILL
    timed_out = (
        outcome.backstop
        or signal == SIGXCPU
        or (cpu_ms is not None and cpu_ms >= limits.cpu_time_ms)
        or (killed and wall_ms >= limits.wall_time_ms)
    )
    oom_now = oom_kills_before if oom_kills is None else oom_kills
    result = ProcessResult(
        exit_code=exit_code,
        signal=signal,
        wall_time_ms=wall_ms,
        timed_out=timed_out,
        oom_killed=oom_now > oom_kills_before,
        output_limit_exceeded=outcome.cap_exceeded,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        peak_memory_kb=None if peak is None else peak // 1024,
    )
    return result, oom_now


def _exit_status(status: int) -> tuple[int | None, int | None]:
    """Shell convention: a status above 128 means killed by signal status-128."""
    return (None, status - 128) if status > 128 else (status, None)


def _number(fields: list[str], index: int) -> int | None:
    """A reply field; "-" (the engine did not say) and missing fields are None."""
    text = fields[index] if index < len(fields) else "-"
    return int(text) if text.isdigit() else None


def memory_bytes(memory_mb: int) -> int:
    return max(memory_mb * 1024 * 1024, MIN_MEMORY_BYTES)
