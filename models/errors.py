"""The domain's own errors; each protocol (problem JSON, SCIM, HTML) renders them its way."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a domain operation raises on purpose."""

    code = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class InvalidInput(DomainError):
    code = "invalid_input"


class UnknownReference(InvalidInput):
    """The request names an object (a user by id or email, a team) that does not exist here."""

    code = "unknown_reference"


class Conflict(DomainError):
    """The request clashes with the current state (a duplicate, a finished invitation)."""

    code = "conflict"


class InvalidTransition(Conflict):
    """The object's state does not allow this change (approving an ACTIVE user)."""

    code = "invalid_transition"


class AuditedRefusal(DomainError):
    """A refusal whose audit event the operation wrote in the caller's transaction, having
    changed nothing else: the caller commits that event as it answers (models.audit.
    keeping_refusals), instead of rolling it back with the request. A marker: the refusal's
    kind (and so its status and code) is the other base it is raised with."""


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class PreconditionFailed(DomainError):
    """The caller's version of the object is stale (an If-Match that no longer matches)."""

    code = "precondition_failed"


class Unavailable(DomainError):
    """A system the operation depends on (a directory server) cannot be reached now."""

    code = "unavailable"


class Busy(Unavailable):
    """The database could not serve the request in time (other writers held the lock too
    long, a deadlock chose this request, the connection dropped): the same request may succeed
    when sent again."""

    code = "busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after
