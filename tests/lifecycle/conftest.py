"""The lifecycle tests run the command line in-process as tests/cli does, and drive LDAP
syncs against a slapd of their own as tests/ldap does."""

from tests.cli.conftest import cli_env, run  # noqa: F401
from tests.invitations.conftest import enroll_settings  # noqa: F401
from tests.ldap.conftest import directory, make_connector, slapd, sync  # noqa: F401
