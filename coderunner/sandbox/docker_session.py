"""One execution's container: the host side of the supervisor protocol (see `supervisor`).

`DockerSandbox` (docker_sandbox.py) creates and starts the container; a session then delivers
the files, runs one program at a time over the attached stream, enforces the host-side limits
(output cap, wall-clock backstop) and removes the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from docker.errors import DockerException, NotFound

from coderunner.domain import AppliedLimits, Stream
from coderunner.errors import InvalidSubmission, SandboxError
from coderunner.handlers.ports import OutputSink, ProcessResult, SandboxInfo
from coderunner.sandbox.supervisor import (
    QUIT,
    SIGKILL,
    WORK_DIR,
    WORK_DIR_BYTES,
    ReplyReader,
    RunOutcome,
    files_command,
    memory_bytes,
    process_result,
    run_command,
)

log = logging.getLogger(__name__)


if TYPE_CHECKING:
    from coderunner.sandbox.docker_sandbox import DockerSandbox

BACKSTOP_GRACE_S = 1.0  # past the wall limit: ask PID 1 (SIGUSR1) to kill the run
REMOVE_GRACE_S = 2.0  # past that: remove the container
SETUP_TIMEOUT_S = 30.0  # start-up and file delivery
QUIT_TIMEOUT_S = 2.0
_RECV_BYTES = 64 * 1024
_CONTROL_OUTPUT_BYTES = 64 * 1024
_WRECKED = "an earlier run broke out of its limits and the sandbox was torn down"


@dataclass(frozen=True, slots=True)
class StartedContainer:
    id: str
    sock: Any  # the attach connection's socket (plain or TLS)
    info: SandboxInfo
    execution_id: str


def close_socket(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


# --- One execution's container ------------------------------------------------------------------


class DockerSandboxSession:
    """One container: its supervisor runs one program at a time (see the module docstring)."""

    def __init__(self, sandbox: DockerSandbox, container: StartedContainer, limits: AppliedLimits):
        self._sandbox = sandbox
        self._sock = container.sock
        self.container_id = container.id
        self.execution_id = container.execution_id
        self.info = container.info
        self._memory = memory_bytes(limits.memory_mb)
        self._opened_at = time.time()
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
        await self._send(files_command(nonce, archive))
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while not reader.done:
            data = await self._read(deadline - time.monotonic())
            if not data:
                self._lost = "the container did not finish receiving the files"
                raise SandboxError(f"{self._lost}: {reader.said()}")
            reader.feed(data)
        if reader.reply != ["0"]:
            raise SandboxError(f"could not put the files into {WORK_DIR}: {reader.said()}")

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
        try:
            oom = await self._sandbox.call(self._oom_killed)
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(f"the Docker engine failed during a run: {exc}") from exc
        if not (result.timed_out or oom):
            raise SandboxError(f"sandbox {self.container_id[:12]}: {self._lost}")
        self._wrecked = True
        return dataclasses.replace(result, oom_killed=result.oom_killed or oom)

    def _oom_killed(self) -> bool:
        """Whether the memory limit killed a process of the container: from its state, or from
        its events once the engine removed it (auto-remove races with the inspection)."""
        try:
            return bool(
                self._sandbox.api.inspect_container(self.container_id)["State"]["OOMKilled"]
            )
        except NotFound:
            pass
        events = self._sandbox.api.events(
            since=int(self._opened_at) - 1,
            until=f"{time.time():.6f}",  # in the past: the engine answers from its history
            filters={"container": self.container_id, "event": "oom"},
            decode=True,
        )
        try:
            return any(True for _ in events)
        finally:
            events.close()

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
            if not (graceful and self._quit()):
                self._sandbox.remove_container(self.container_id)
        finally:
            if not graceful:
                _shutdown(self._sock)
            close_socket(self._sock)

    def _quit(self) -> bool:
        """True when the supervisor exited and the engine removed the container (auto-remove)."""
        try:
            self._sock.sendall(QUIT)
            wait = self._sandbox.api.wait
            wait(self.container_id, timeout=QUIT_TIMEOUT_S, condition="removed")
        except (OSError, DockerException, requests.RequestException):
            return False  # the forced removal handles it
        return True


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
