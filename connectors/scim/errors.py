"""One exception per RFC 7644 section 3.12 scimType, each with its HTTP status."""

from __future__ import annotations


class ScimError(Exception):
    """An error the SCIM protocol names; the web layer renders it as SCIM error JSON."""

    status = 400
    scim_type: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class TooMany(ScimError):
    scim_type = "tooMany"


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class Mutability(ScimError):
    scim_type = "mutability"


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class InvalidVersion(ScimError):
    scim_type = "invalidVersion"


class Sensitive(ScimError):
    scim_type = "sensitive"
