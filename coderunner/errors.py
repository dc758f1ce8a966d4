"""Every error the service raises on purpose, and the policy that goes with each.

CoderunnerError                  base; `retriable` says whether trying again can help
├── ServiceUnavailable           Kafka, PostgreSQL or Docker cannot be reached (retriable)
├── InvalidSubmission            a submission broke a rule; `field` names what was wrong
├── UndecodableEvent             bytes on a topic that are not one of our events
└── SandboxError                 the sandbox itself failed (not the user's program; retriable)
"""

from __future__ import annotations


class CoderunnerError(Exception):
    """Base of the service's own errors."""

    retriable = False


class ServiceUnavailable(CoderunnerError):
    """A backing service (Kafka, PostgreSQL, Docker) did not answer."""

    retriable = True

    def __init__(self, service: str, where: str, reason: str, how_to_start: str) -> None:
        self.service = service
        self.where = where
        self.reason = reason
        self.how_to_start = how_to_start
        super().__init__(f"{service} is not reachable at {where}: {reason}. {how_to_start}")


class InvalidSubmission(CoderunnerError):
    """A submission that can never run as sent: the client must change it."""

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class UndecodableEvent(CoderunnerError):
    """Bytes that do not decode as any known event schema."""


class SandboxError(CoderunnerError):
    """The container engine failed while running a program: infrastructure, not a verdict."""

    retriable = True


LOCAL_STACK_HINT = "Start the local stack with `make stack-up` (or `bash scripts/stack.sh up`)."
