"""The Sandbox port on a Docker engine: one fresh, locked-down container per execution.

Design (measured on Docker 20.10, cgroup v1): a `docker exec` costs ~55 ms (runc starts a
process in the container), about a third of a whole bare `docker run`. So the container's PID 1
is a small bash supervisor (`SUPERVISOR`) that the session talks to over the container's
attached stdin/stdout/stderr; files, stdin and every run go through that one stream and no
exec is needed at all:

    host -> stdin    F <nonce> <n>\\n <n bytes of tar>          put files into /work
                     R <nonce> <n> <wall s> <cpu s> <argv>\\n <n bytes of stdin>
                     Q\\n                                        exit (close)
    stdout, stderr   the program's output, then on both streams the reply line
                     \\x1e<nonce> <status> [<wall us> <cpu ns> <oom kills> <peak bytes>]\\n

PID 1 is immune to every signal a program can send it (the kernel drops signals to a PID
namespace's init that it has no handler for), so after each run it can always SIGKILL every
process the program left behind (`kill -9 -1`) and reap them. The host side enforces what a
program could still escape: the output cap and a wall-clock backstop (SIGUSR1 to PID 1 through
the engine, which makes the supervisor kill the run; then removing the container).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import io
import logging
import math
import secrets
import socket
import struct
import tarfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

import docker
import requests
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from coderunner.domain import AppliedLimits, Stream
from coderunner.errors import InvalidSubmission, SandboxError
from coderunner.handlers.ports import OutputSink, ProcessResult, SandboxInfo
from coderunner.languages import Language
from coderunner.sandbox.docker_engine import docker_client
from coderunner.settings import ImageSet, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

WORK_DIR = "/work"
WORK_DIR_BYTES = 64 * 1024 * 1024  # tmpfs size; also the largest file a program may write
SHM_BYTES = 16 * 1024 * 1024
OPEN_FILES = 256
SANDBOX_USER = "65534:65534"  # nobody:nogroup, owner of the /work tmpfs
MIN_MEMORY_BYTES = 6 * 1024 * 1024  # the engine refuses less
# During a run, PID 1 and `timeout` count against the pids limit besides the program; before
# it, storing stdin or files takes PID 1 and up to 4 helpers (head, a subshell, cat/tar, cat).
RUN_OVERHEAD_PROCESSES = 2
MIN_PIDS = 6
LABEL_MANAGED = "coderunner.managed"
LABEL_EXECUTION = "coderunner.execution"
BACKSTOP_GRACE_S = 1.0  # past the wall limit: ask PID 1 (SIGUSR1) to kill the run
REMOVE_GRACE_S = 2.0  # past that: remove the container
SETUP_TIMEOUT_S = 30.0  # start-up and file delivery
QUIT_TIMEOUT_S = 2.0
REPLY_MARK = b"\x1e"
SIGXCPU = 24
SIGKILL = 9
_RECV_BYTES = 64 * 1024
_CONTROL_OUTPUT_BYTES = 64 * 1024

# PID 1 of every sandbox container. Kept fork-free where it matters: builtins only, except
# `timeout` (the run), and head/cat/tar (stdin and files, before any program runs).
SUPERVISOR = r"""
trap '' INT
trap 'hit=1; reap' USR1
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
  (trap - INT; ulimit -S -t "$cpulim" && ulimit -H -t $((cpulim + 1)) || exit 125
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
  read -r op nonce a b c rest || { (($? > 128)) && continue; exit 0; }
  case $op in
  R) run "$a" "$b" "$c" "$rest" ;;
  F) head -c "$a" | { tar -x -C /work -f -; s=$?; cat > /dev/null; exit $s; }; reply $? ;;
  Q) exit 0 ;;
  *) exit 2 ;;
  esac
done
"""

_WRECKED = "an earlier run broke out of its limits and the sandbox was torn down"
_WORK_DIR_OWNER = "uid=65534,gid=65534,mode=0700"
_SAFE_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%")
_STREAMS = {1: Stream.STDOUT, 2: Stream.STDERR}


# --- The protocol, without I/O ------------------------------------------------------------------


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


# --- The engine ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Container:
    id: str
    sock: Any  # the attach connection's socket (plain or TLS)
    info: SandboxInfo
    execution_id: str


class DockerSandbox:
    """Opens sandbox sessions on the configured Docker engine. One per worker process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Each in-flight execution holds at most one blocked read plus one engine call.
        self._executor = ThreadPoolExecutor(
            max_workers=2 * settings.sandbox_max_in_flight + 2, thread_name_prefix="sandbox"
        )
        self._client = docker_client(settings)
        self.api: Any = self._client.api  # the low-level APIClient: no per-call reload/inspect

    async def open(
        self,
        language: Language,
        files: dict[str, bytes],
        limits: AppliedLimits,
        *,
        execution_id: str | None = None,
    ) -> DockerSandboxSession:
        """A started container with the files in /work (see `Sandbox.open`).

        `execution_id` labels the container (`coderunner.execution`); a random id otherwise.
        """
        image = language.image(self._settings.sandbox_image_set)
        archive = tar_archive(files)
        label = execution_id or uuid.uuid4().hex
        start = functools.partial(self._start_container, image, limits, label)
        container = await self.call(start, on_abandon=self._discard)
        session = DockerSandboxSession(self, container, limits)
        try:
            await session.deliver(archive)
        except BaseException:
            await session.close()
            raise
        return session

    async def remove_leftovers(self, execution_id: str | None = None) -> int:
        """Remove every container this service labelled (after a crash); returns how many."""
        labels = [f"{LABEL_MANAGED}=true"]
        if execution_id is not None:
            labels.append(f"{LABEL_EXECUTION}={execution_id}")
        found = await self.call(
            functools.partial(self.api.containers, all=True, quiet=True, filters={"label": labels})
        )
        for entry in found:
            await self.call(functools.partial(self.remove_container, entry["Id"]))
        if found:
            log.info("removed %d leftover sandbox container(s)", len(found))
        return len(found)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._client.close)

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """A blocking call in the pool, as a future the caller may leave pending."""
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def call(self, fn: Callable[[], T], on_abandon: Callable[[T], None] | None = None) -> T:
        """Run a blocking engine call in the pool. If the caller is cancelled meanwhile, the call
        still completes and `on_abandon` disposes of what it made (e.g. a created container)."""
        future = self.submit(fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if on_abandon is not None:
                future.add_done_callback(functools.partial(self._abandoned, on_abandon))
            raise

    def _abandoned(self, dispose: Callable[[T], None], future: asyncio.Future[T]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._executor.submit(dispose, future.result())

    # Blocking helpers, run in the pool ------------------------------------------------------

    def _start_container(self, image: str, limits: AppliedLimits, label: str) -> _Container:
        image_id, digest = self._resolve_image(image)
        try:
            created = self.api.create_container(
                image_id,
                command=["bash", "-c", SUPERVISOR, "coderunner-supervisor"],
                user=SANDBOX_USER,
                working_dir=WORK_DIR,
                environment={"HOME": WORK_DIR, "TMPDIR": WORK_DIR},
                stdin_open=True,
                network_disabled=True,
                labels={LABEL_MANAGED: "true", LABEL_EXECUTION: label},
                host_config=self._host_config(limits),
            )
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(
                f"the Docker engine could not create a container of {image}: {exc}"
            ) from exc
        container_id = created["Id"]
        try:
            sock = self.api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self.api.start(container_id)
        except BaseException as exc:
            self.remove_container(container_id)
            if isinstance(exc, DockerException | requests.RequestException):
                raise SandboxError(f"the Docker engine could not start {image}: {exc}") from exc
            raise
        raw = getattr(sock, "_sock", sock)  # a plain socket under the SDK's SocketIO; TLS as is
        raw.settimeout(None)  # runs are bounded by our own deadlines, not the client's timeout
        return _Container(container_id, raw, SandboxInfo(image, digest), label)

    def _resolve_image(self, image: str) -> tuple[str, str]:
        """The image id to create from (so the digest we report is what runs) and its digest."""
        try:
            attrs = self.api.inspect_image(image)
        except ImageNotFound:
            raise SandboxError(_missing_image_message(image, self._settings)) from None
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(f"the Docker engine could not inspect image {image}: {exc}") from exc
        digests = attrs.get("RepoDigests") or []
        return attrs["Id"], digests[0] if digests else attrs["Id"]

    def _host_config(self, limits: AppliedLimits) -> Any:
        memory = memory_bytes(limits.memory_mb)
        return self.api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={WORK_DIR: f"rw,exec,nosuid,nodev,size={WORK_DIR_BYTES},{_WORK_DIR_OWNER}"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=max(limits.processes + RUN_OVERHEAD_PROCESSES, MIN_PIDS),
            mem_limit=memory,
            memswap_limit=memory,  # no swap: the memory limit is the limit
            nano_cpus=1_000_000_000,
            shm_size=SHM_BYTES,
            ulimits=[
                Ulimit(name="fsize", soft=WORK_DIR_BYTES, hard=WORK_DIR_BYTES),
                Ulimit(name="nofile", soft=OPEN_FILES, hard=OPEN_FILES),
                Ulimit(name="core", soft=0, hard=0),
            ],
            log_config=LogConfig(type=LogConfig.types.NONE),  # output goes to us, not to disk
        )

    def remove_container(self, container_id: str) -> None:
        """Kill and remove; a container that is already gone is fine."""
        try:
            self.api.remove_container(container_id, v=True, force=True)
        except NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "in progress" in str(exc):
                return  # someone else is removing it right now
            raise SandboxError(
                f"could not remove sandbox container {container_id[:12]}: {exc}"
            ) from exc
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(
                f"could not remove sandbox container {container_id[:12]}: {exc}"
            ) from exc

    def _discard(self, container: _Container) -> None:
        _close_socket(container.sock)
        try:
            self.remove_container(container.id)
        except SandboxError:
            log.warning("could not remove abandoned container %s", container.id[:12], exc_info=True)


def _missing_image_message(image: str, settings: Settings) -> str:
    if settings.sandbox_image_set is ImageSet.LOCAL:
        how = "build it with `make stack-up` (scripts/stack/images.sh up)"
    else:
        how = f"pull it with `docker pull {image}`"
    return f"image {image} not found on the Docker engine — {how}"


def _close_socket(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


# --- One execution's container ------------------------------------------------------------------


class DockerSandboxSession:
    """One container: its supervisor runs one program at a time (see the module docstring)."""

    def __init__(self, sandbox: DockerSandbox, container: _Container, limits: AppliedLimits):
        self._sandbox = sandbox
        self._sock = container.sock
        self.container_id = container.id
        self.execution_id = container.execution_id
        self.info = container.info
        self._memory = memory_bytes(limits.memory_mb)
        self._oom_kills = 0
        self._recv: asyncio.Future[bytes] | None = None
        self._lost: str | None = None  # why the container can no longer run anything
        self._wrecked = False  # ... and it was a program's doing (not the engine's)
        self._closed = False
        self._lock = asyncio.Lock()

    async def deliver(self, archive: bytes) -> None:
        """Put the files into /work (the first thing the supervisor does)."""
        nonce = secrets.token_hex(8)
        reader = ReplyReader(nonce, _CONTROL_OUTPUT_BYTES)
        await self._send(f"F {nonce} {len(archive)}\n".encode() + archive)
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while not reader.done:
            data = await self._read(deadline - time.monotonic())
            if not data:
                self._lost = "the container did not finish receiving the files"
                raise SandboxError(f"{self._lost}: {_said(reader)}")
            reader.feed(data)
        if reader.reply != ["0"]:
            raise SandboxError(f"could not put the files into {WORK_DIR}: {_said(reader)}")

    async def execute(
        self, argv: Sequence[str], stdin: bytes, limits: AppliedLimits, on_output: OutputSink
    ) -> ProcessResult:
        """Run argv in /work as uid 65534; stream its output; enforce the limits."""
        nonce = secrets.token_hex(8)
        command = run_command(nonce, argv, len(stdin), limits)
        if len(stdin) >= WORK_DIR_BYTES:
            raise InvalidSubmission("stdin", f"must be smaller than {WORK_DIR_BYTES} bytes")
        async with self._lock:
            if self._wrecked:
                return await _not_run(on_output)
            if self._lost is not None or self._closed:
                raise SandboxError(f"sandbox {self.container_id[:12]} is gone: {self._lost}")
            await self._fit_memory(limits.memory_mb)
            try:
                outcome = await self._run(nonce, command + stdin, limits, on_output)
            except BaseException:
                # Cancelled, or the sink failed: the run's state in the container is unknown.
                self._lost = self._lost or "a run was interrupted"
                raise
        if outcome.reply[:1] == ["stdin"]:
            raise SandboxError(f"stdin ({len(stdin)} bytes) did not fit into {WORK_DIR}")
        result, self._oom_kills = process_result(outcome, limits, self._oom_kills)
        if not outcome.reply:
            result = await self._without_reply(result)
        return result

    async def close(self) -> None:
        """Kill and remove the container. Safe to call twice; a gone container is fine."""
        if self._closed:
            return
        self._closed = True
        graceful = self._lost is None and self._recv is None
        await self._sandbox.call(functools.partial(self._remove, graceful))

    # The run ----------------------------------------------------------------------------------

    async def _run(
        self, nonce: str, request: bytes, limits: AppliedLimits, on_output: OutputSink
    ) -> RunOutcome:
        reader = ReplyReader(nonce, limits.output_bytes)
        await self._send(request)
        started = time.monotonic()
        deadline = started + limits.wall_time_ms / 1000 + BACKSTOP_GRACE_S
        backstop = stopping = False
        while not reader.done:
            data = await self._read(deadline - time.monotonic())
            if data is None and not backstop:  # the program outlived `timeout`
                backstop, deadline = True, time.monotonic() + REMOVE_GRACE_S
                await self._stop_program()
                continue
            if data is None:
                await self._lose("a run outlived the wall-clock backstop; container killed")
                break
            if not data:
                self._lost = "the container ended during a run"
                break
            for stream, chunk in reader.feed(data):
                await on_output(stream, chunk)
            if reader.cap_exceeded and not stopping:
                stopping = True
                await self._stop_program()
        return RunOutcome(
            reply=reader.reply if reader.done else [],
            host_wall_ms=int((time.monotonic() - started) * 1000),
            cap_exceeded=reader.cap_exceeded,
            backstop=backstop,
            stdout=bytes(reader.captured[Stream.STDOUT]),
            stderr=bytes(reader.captured[Stream.STDERR]),
        )

    async def _fit_memory(self, memory_mb: int) -> None:
        """The container was sized for the largest step; each run gets its own memory limit."""
        wanted = memory_bytes(memory_mb)
        if wanted == self._memory:
            return
        update = functools.partial(
            self._sandbox.api.update_container,
            self.container_id,
            mem_limit=wanted,
            memswap_limit=wanted,
        )
        try:
            await self._sandbox.call(update)
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(f"could not set the memory limit to {memory_mb} MiB: {exc}") from exc
        self._memory = wanted

    async def _stop_program(self) -> None:
        """SIGUSR1 to PID 1 from outside: the supervisor kills every process of the run."""
        kill = functools.partial(self._sandbox.api.kill, self.container_id, signal="SIGUSR1")
        try:
            await self._sandbox.call(kill)
        except (DockerException, requests.RequestException) as exc:
            log.warning("could not signal sandbox %s: %s", self.container_id[:12], exc)

    async def _lose(self, why: str) -> None:
        """The supervisor did not stop the run: kill the container (close() removes it)."""
        self._lost = why
        try:
            await self._sandbox.call(functools.partial(self._sandbox.api.kill, self.container_id))
        except (DockerException, requests.RequestException) as exc:
            log.warning("could not kill sandbox %s: %s", self.container_id[:12], exc)

    async def _without_reply(self, result: ProcessResult) -> ProcessResult:
        """No reply: we killed the container (backstop) or it died. A program that wrecked its
        sandbox gets its verdict; an engine failure is a SandboxError (retried elsewhere)."""
        inspect = functools.partial(self._sandbox.api.inspect_container, self.container_id)
        try:
            oom = (await self._sandbox.call(inspect))["State"]["OOMKilled"]
        except NotFound:
            oom = False
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(f"the Docker engine failed during a run: {exc}") from exc
        if not (result.timed_out or oom):
            raise SandboxError(f"sandbox {self.container_id[:12]}: {self._lost}")
        self._wrecked = True
        return dataclasses.replace(result, oom_killed=result.oom_killed or oom)

    # Stream I/O -------------------------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        try:
            await self._sandbox.call(functools.partial(self._sock.sendall, data))
        except OSError as exc:
            self._lost = f"the container stopped taking input ({exc})"
            raise SandboxError(f"sandbox {self.container_id[:12]}: {self._lost}") from exc

    async def _read(self, within_s: float) -> bytes | None:
        """The next bytes; b"" at the end of the stream; None when within_s passed first.
        A read still waiting then is kept for the next call: no byte is lost."""
        if self._recv is None:
            self._recv = self._sandbox.submit(functools.partial(self._sock.recv, _RECV_BYTES))
        done, _ = await asyncio.wait({self._recv}, timeout=max(within_s, 0))
        if not done:
            return None
        future, self._recv = self._recv, None
        try:
            return future.result()
        except OSError:
            return b""

    def _remove(self, graceful: bool) -> None:
        """Ask the supervisor to exit (faster to remove than a running container), then remove."""
        try:
            if graceful:
                self._quit()
            self._sandbox.remove_container(self.container_id)
        finally:
            if not graceful:
                _shutdown(self._sock)
            _close_socket(self._sock)

    def _quit(self) -> None:
        try:
            self._sock.sendall(b"Q\n")
            self._sandbox.api.wait(self.container_id, timeout=QUIT_TIMEOUT_S)
        except (OSError, DockerException, requests.RequestException):
            pass  # the forced removal below handles it


async def _not_run(on_output: OutputSink) -> ProcessResult:
    """A run after an earlier one wrecked the sandbox: reported as killed, not retried."""
    await on_output(Stream.SYSTEM, f"not run: {_WRECKED}\n".encode())
    return ProcessResult(
        exit_code=None,
        signal=SIGKILL,
        wall_time_ms=0,
        timed_out=False,
        oom_killed=False,
        output_limit_exceeded=False,
        stdout=b"",
        stderr=b"",
    )


def _shutdown(sock: Any) -> None:
    """Wake a read blocked in another thread (closing alone does not)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _said(reader: ReplyReader) -> str:
    text = bytes(reader.captured[Stream.STDERR] + reader.captured[Stream.STDOUT])
    return text.decode(errors="replace").strip() or "(no output)"
