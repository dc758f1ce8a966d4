"""The boundaries the pipeline talks through: the sandbox that runs programs, and where events go.

The pipeline only knows these protocols; the Docker sandbox and the Kafka publisher implement
them (and tests of the pipeline logic can hand in simple fakes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from coderunner.domain import AppliedLimits, Stream
from coderunner.languages import Language

# Called with each piece of output as the program produces it (already within the output cap).
OutputSink = Callable[[Stream, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What one process run inside the sandbox did."""

    exit_code: int | None  # None when killed by a signal or by the service
    signal: int | None  # e.g. 9 (SIGKILL), 11 (SIGSEGV), 8 (SIGFPE)
    wall_time_ms: int
    timed_out: bool  # wall-clock or CPU-time limit hit
    oom_killed: bool  # the memory limit killed it
    output_limit_exceeded: bool  # stdout+stderr went past the output cap; the run was stopped
    stdout: bytes  # captured, at most the output cap
    stderr: bytes
    peak_memory_kb: int | None = None  # container peak so far, where the engine reports it

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not (
            self.timed_out or self.oom_killed or self.output_limit_exceeded
        )


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    """What a user needs to trust a result: the image that ran it and the limits applied."""

    image: str
    image_digest: str | None


class SandboxSession(Protocol):
    """One fresh, locked-down container holding one execution's files."""

    info: SandboxInfo

    async def execute(
        self,
        argv: Sequence[str],
        stdin: bytes,
        limits: AppliedLimits,
        on_output: OutputSink,
    ) -> ProcessResult:
        """Run argv in the work dir with stdin; stream output to on_output; enforce limits."""
        ...

    async def close(self) -> None:
        """Kill and remove the container. Safe to call twice; never raises for a gone container."""
        ...


class Sandbox(Protocol):
    async def open(
        self,
        language: Language,
        files: dict[str, bytes],
        limits: AppliedLimits,
        *,
        execution_id: str | None = None,
    ) -> SandboxSession:
        """Create and start a fresh container for this language with files in its work dir.

        `limits` sizes the container itself (memory, processes) — the largest of the
        compile and run limits.
        """
        ...
