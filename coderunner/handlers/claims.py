"""The claim port: who runs an execution, and as which attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Claim:
    run: bool  # False: a duplicate submission, or a redelivery of finished work
    attempt: int
    cancelled: str | None = None  # a client cancelled it before it ran: the reason


class ClaimStore(Protocol):
    async def claim(self, execution_id: str, submission_event_id: str) -> Claim:
        """First sight: attempt 1. The same submission again, unfinished: the next attempt.
        A different submission with the same id, or finished work: do not run."""
        ...

    async def next_attempt(self, execution_id: str, attempt: int) -> None: ...

    async def finish(self, execution_id: str) -> None: ...

    async def cancel(self, execution_id: str, reason: str) -> None:
        """Mark an execution that is not running here as cancelled, unless it has finished."""
        ...
