"""Handles one message from the submissions topic, whatever it holds, without losing it.

undecodable bytes / not a submission  -> dead-letter topic, with the reason
duplicate execution id                -> nothing (it already ran or is running)
valid or invalid submission           -> the pipeline (rejection is an event, not a crash)
Docker engine unreachable             -> wait and retry, for as long as it takes
other sandbox failure                 -> retried as a new attempt, then INTERNAL_ERROR
a bug in our code                     -> INTERNAL_ERROR for the execution + dead letter
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from coderunner.domain import Verdict
from coderunner.errors import SandboxError, ServiceUnavailable, UndecodableEvent
from coderunner.handlers.claims import ClaimStore
from coderunner.handlers.emitter import AttemptEmitter
from coderunner.handlers.pipeline import ExecutionPipeline
from coderunner.schemas import events as ev
from coderunner.schemas.codec import SchemaRegistry

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """Where the effects of handling one message go."""

    async def publish(self, event: Any) -> None: ...

    async def flush(self) -> None:
        """Wait until everything published is durably stored."""
        ...

    async def dead_letter(self, key: bytes | None, value: bytes, reason: str) -> None: ...


class SubmissionHandler:
    def __init__(
        self,
        registry: SchemaRegistry,
        pipeline: ExecutionPipeline,
        claims: ClaimStore,
        worker: str,
        max_attempts: int,
        retry_delay: float = 1.0,
    ) -> None:
        self._registry = registry
        self._pipeline = pipeline
        self._claims = claims
        self._worker = worker
        self._max_attempts = max_attempts
        self._retry_delay = retry_delay

    async def handle(self, key: bytes | None, value: bytes, outbox: Outbox) -> None:
        """Returns once the message's effects are durable (events delivered, claim stored)."""
        try:
            submission = self._registry.decode(value)
        except UndecodableEvent as exc:
            await outbox.dead_letter(key, value, f"undecodable: {exc}")
            return
        if not isinstance(submission, ev.ExecutionSubmitted):
            reason = f"not a submission: {type(submission).__name__} on the submissions topic"
            await outbox.dead_letter(key, value, reason)
            return
        if key is not None and key != submission.execution_id.encode():
            # A wrong key puts the execution's events in a partition it does not own.
            await outbox.dead_letter(key, value, "key must be the execution id in UTF-8")
            return
        claim = await _until_available(
            lambda: self._claims.claim(submission.execution_id, submission.event_id)
        )
        if not claim.run:
            log.info("execution %s: duplicate submission ignored", submission.execution_id)
            return
        try:
            await self._run_attempts(submission, claim.attempt, outbox)
        except Exception as exc:  # a bug: end the execution visibly and keep the evidence
            log.exception("execution %s: internal error", submission.execution_id)
            await self._internal_error(
                submission, claim.attempt, outbox, f"internal error: {type(exc).__name__}"
            )
            await outbox.dead_letter(key, value, f"internal error: {type(exc).__name__}: {exc}")
        await outbox.flush()
        await _until_available(lambda: self._claims.finish(submission.execution_id))

    async def _run_attempts(
        self, submission: ev.ExecutionSubmitted, attempt: int, outbox: Outbox
    ) -> None:
        failures = 0
        while True:
            emit = AttemptEmitter(submission.execution_id, attempt, outbox.publish)
            try:
                await self._pipeline.run(submission, emit, self._worker)
                return
            except ServiceUnavailable as exc:
                log.warning("execution %s: %s; retrying", submission.execution_id, exc)
            except SandboxError as exc:
                failures += 1
                log.warning("execution %s attempt %d: %s", submission.execution_id, attempt, exc)
                if failures >= self._max_attempts:
                    await self._internal_error(
                        submission, attempt, outbox, f"sandbox failed: {exc}"
                    )
                    return
            await asyncio.sleep(self._retry_delay * min(2**failures, 30))
            attempt += 1
            await _until_available(
                functools.partial(self._claims.next_attempt, submission.execution_id, attempt)
            )

    async def _internal_error(
        self, submission: ev.ExecutionSubmitted, attempt: int, outbox: Outbox, message: str
    ) -> None:
        emit = AttemptEmitter(submission.execution_id, attempt, outbox.publish)
        await emit(
            ev.ExecutionCompleted,
            verdict=Verdict.INTERNAL_ERROR,
            message=message,
            exit_code=None,
            signal=None,
            tests_passed=0,
            tests_total=len(submission.tests),
            duration_us=0,
            compile_time_us=None,
            run_time_us=0,
            peak_memory_kb=None,
            image="",
            image_digest=None,
        )


async def _until_available(call: Callable[[], Awaitable[Any]], delay: float = 1.0) -> Any:
    """Infrastructure errors are waited out, never turned into a lost submission."""
    while True:
        try:
            return await call()
        except (ServiceUnavailable, OSError) as exc:
            log.warning("waiting for a backing service: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
