"""One exception per RFC 7644 section 3.12 scimType, each with its HTTP status."""

from __future__ import annotations

from models.errors import DomainError


class ScimError(DomainError):
    """An error the SCIM protocol names; rendered as SCIM error JSON."""

    status = 400
    scim_type: str | None = None
    code = "scim_error"


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
