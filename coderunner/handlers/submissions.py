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
        # execution id -> resolved with the reason when a client cancels it while it runs here
        self._cancels: dict[str, asyncio.Future[str]] = {}

    async def handle(self, key: bytes | None, value: bytes, outbox: Outbox) -> None:
        """Returns once the message's effects are durable (events delivered, claim stored)."""
        try:
            message = self._registry.decode(value)
        except UndecodableEvent as exc:
            await outbox.dead_letter(key, value, f"undecodable: {exc}")
            return
        if not isinstance(message, ev.ExecutionSubmitted | ev.ExecutionCancelRequested):
            reason = f"not a submission: {type(message).__name__} on the submissions topic"
            await outbox.dead_letter(key, value, reason)
            return
        if key is not None and key != message.execution_id.encode():
            # A wrong key puts the execution's events in a partition it does not own.
            await outbox.dead_letter(key, value, "key must be the execution id in UTF-8")
            return
        if isinstance(message, ev.ExecutionCancelRequested):
            await self._cancel(message)
            return
        cancel = self._cancels.setdefault(message.execution_id, asyncio.Future())
        try:
            await self._submission(message, key, value, outbox, cancel)
        finally:
            self._cancels.pop(message.execution_id, None)

    async def _submission(
        self,
        submission: ev.ExecutionSubmitted,
        key: bytes | None,
        value: bytes,
        outbox: Outbox,
        cancel: asyncio.Future[str],
    ) -> None:
        execution_id = submission.execution_id
        claim = await _until_available(
            lambda: self._claims.claim(execution_id, submission.event_id)
        )
        attempt = _Attempt(AttemptEmitter(execution_id, claim.attempt, outbox.publish))
        if claim.cancelled is not None:
            await attempt.emit(ev.ExecutionCancelled, reason=claim.cancelled)
        elif not claim.run:
            log.info("execution %s: duplicate submission ignored", execution_id)
            return
        else:
            await self._run_until_cancelled(submission, attempt, outbox, cancel, key, value)
        await outbox.flush()
        await _until_available(lambda: self._claims.finish(execution_id))

    async def _run_until_cancelled(
        self,
        submission: ev.ExecutionSubmitted,
        attempt: _Attempt,
        outbox: Outbox,
        cancel: asyncio.Future[str],
        key: bytes | None,
        value: bytes,
    ) -> None:
        run = asyncio.ensure_future(self._run_attempts(submission, attempt, outbox))
        try:
            either: set[asyncio.Future[Any]] = {run, cancel}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not run.done():  # cancelled by a client, or the worker is shutting down
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)  # the container is removed
        if not run.cancelled():
            if (exc := run.exception()) is not None:  # a bug: end it visibly, keep the evidence
                log.error("execution %s: internal error", submission.execution_id, exc_info=exc)
                message = f"internal error: {type(exc).__name__}"
                await self._internal_error(submission, attempt, message)
                await outbox.dead_letter(key, value, f"{message}: {exc}")
            return
        await attempt.emit(ev.ExecutionCancelled, reason=cancel.result())

    async def _cancel(self, request: ev.ExecutionCancelRequested) -> None:
        """Stop it if it runs here; otherwise remember, so a later delivery does not run it."""
        reason = request.reason or "cancelled"
        running = self._cancels.get(request.execution_id)
        if running is not None:
            if not running.done():
                running.set_result(reason)
            return
        await _until_available(lambda: self._claims.cancel(request.execution_id, reason))

    async def _run_attempts(
        self, submission: ev.ExecutionSubmitted, attempt: _Attempt, outbox: Outbox
    ) -> None:
        failures = 0
        execution_id = submission.execution_id
        while True:
            try:
                await self._pipeline.run(submission, attempt.emit, self._worker)
                return
            except ServiceUnavailable as exc:
                log.warning("execution %s: %s; retrying", execution_id, exc)
            except SandboxError as exc:
                failures += 1
                number = attempt.emit.attempt
                log.warning("execution %s attempt %d: %s", execution_id, number, exc)
                if failures >= self._max_attempts:
                    await self._internal_error(submission, attempt, f"sandbox failed: {exc}")
                    return
            await asyncio.sleep(self._retry_delay * min(2**failures, 30))
            number = attempt.emit.attempt + 1
            await _until_available(
                functools.partial(self._claims.next_attempt, execution_id, number)
            )
            attempt.emit = AttemptEmitter(execution_id, number, outbox.publish)

    async def _internal_error(
        self, submission: ev.ExecutionSubmitted, attempt: _Attempt, message: str
    ) -> None:
        await attempt.emit(
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


class _Attempt:
    """The emitter of the attempt in progress: a retry swaps in the next attempt's, and a
    cancellation or internal error continues the sequence of whichever attempt is current."""

    def __init__(self, emit: AttemptEmitter) -> None:
        self.emit = emit


async def _until_available(call: Callable[[], Awaitable[Any]], delay: float = 1.0) -> Any:
    """Infrastructure errors are waited out, never turned into a lost submission."""
    while True:
        try:
            return await call()
        except (ServiceUnavailable, OSError) as exc:
            log.warning("waiting for a backing service: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
