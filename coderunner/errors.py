"""Every error the service raises on purpose, and the policy that goes with each.

CoderunnerError                  base; `retriable` says whether trying again can help
├── ServiceUnavailable           Kafka, PostgreSQL or Docker cannot be reached (retriable)
├── MissingTopics                the Event Hubs profile found topics not created (no auto-create)
├── InvalidSubmission            a submission broke a rule; `field` names what was wrong
├── InvalidRequest               an API request broke a rule (bad filter, page token, id)
├── ExecutionNotFound            the read models hold no execution with that id
├── ExecutionEnded               the execution already ended (it cannot be cancelled)
├── UndecodableEvent             bytes on a topic that are not one of our events
└── SandboxError                 the sandbox itself failed (not the user's program; retriable)
"""

from __future__ import annotations


class CoderunnerError(Exception):
    """Base of the service's own errors.

    `grpc_status` names the grpc.StatusCode the API answers with (the API translates it; no
    gRPC import here).
    """

    retriable = False
    grpc_status = "INTERNAL"


class ServiceUnavailable(CoderunnerError):
    """A backing service (Kafka, PostgreSQL, Docker) did not answer."""

    retriable = True
    grpc_status = "UNAVAILABLE"

    def __init__(self, service: str, where: str, reason: str, how_to_start: str) -> None:
        self.service = service
        self.where = where
        self.reason = reason
        self.how_to_start = how_to_start
        super().__init__(f"{service} is not reachable at {where}: {reason}. {how_to_start}")


class ToolFailed(CoderunnerError):
    """An external program (pg_dump, psql...) is missing or failed; the message says the fix."""


class MissingTopics(CoderunnerError):
    """Topics the service needs do not exist, and this profile (Event Hubs) must not create them."""

    grpc_status = "FAILED_PRECONDITION"

    def __init__(self, topics: list[str], where: str) -> None:
        self.topics = topics
        super().__init__(
            f"topics missing at {where}: {', '.join(topics)}. The Event Hubs profile"
            " (KAFKA_CONNECTION_STRING set) does not create topics: create them as event hubs"
            " in Azure (see docs/event-hubs.md), or run `coderunner topics create` where the"
            " broker allows it"
        )


class InvalidSubmission(CoderunnerError):
    """A submission that can never run as sent: the client must change it."""

    grpc_status = "INVALID_ARGUMENT"

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class InvalidRequest(CoderunnerError):
    """An API request with a bad argument (not a submission rule): names the field and rule."""

    grpc_status = "INVALID_ARGUMENT"

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"{field}: {rule}")


class ExecutionNotFound(CoderunnerError):
    grpc_status = "NOT_FOUND"

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"no execution with id {execution_id!r}")


class ExecutionEnded(CoderunnerError):
    grpc_status = "FAILED_PRECONDITION"

    def __init__(self, execution_id: str, status: str) -> None:
        self.execution_id = execution_id
        self.status = status
        super().__init__(f"execution {execution_id!r} already ended: it is {status}")


class UndecodableEvent(CoderunnerError):
    """Bytes that do not decode as any known event schema."""


class SandboxError(CoderunnerError):
    """The container engine failed while running a program: infrastructure, not a verdict."""

    retriable = True


LOCAL_STACK_HINT = "Start the local stack with `make stack-up` (or `bash scripts/stack.sh up`)."
