"""python-ldap's many exceptions folded into the few a sync needs to tell apart."""

from __future__ import annotations


class DirectoryError(Exception):
    """The directory could not be read completely; nothing may be deprovisioned."""

    code = "directory_error"
    transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DirectoryUnavailable(DirectoryError):
    """Server down, connection refused, a network or client timeout: worth retrying."""

    code = "directory_unavailable"
    transient = True


class DirectoryAuthError(DirectoryError):
    """The bind DN or password was refused."""

    code = "directory_auth_failed"


class DirectoryTlsError(DirectoryError):
    """TLS could not be set up or the server certificate did not verify."""

    code = "directory_tls_failed"


class DirectoryIncomplete(DirectoryError):
    """The search ended early: a size or time limit, a referral, a lost page cookie."""

    code = "directory_incomplete"


class DirectoryConfigError(DirectoryError):
    """The search itself is wrong: no such base DN, a bad filter, an unknown control."""

    code = "directory_config_error"
