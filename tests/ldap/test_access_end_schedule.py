"""An Active Directory account expiry (`accountExpires`) read from a real slapd becomes the
person's end date, and the schedule revokes them at that moment, once, through real workers
and beats whose clocks run ahead; an expiry moved later cancels."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from models.entities import User
from models.enums import Source, UserStatus
from tests.access_end.conftest import (  # noqa: F401 (fixtures)
    TICK,
    audited,
    clocked_settings,
    on_time,
    revocations,
    revocations_of,
    run_ahead,
)
from tests.ldap.conftest import linked_users
from tests.support.wait import wait_until

NEVER = str(0x7FFFFFFFFFFFFFFF).encode()


def _filetime(moment: datetime) -> bytes:
    delta = moment - datetime(1601, 1, 1, tzinfo=UTC)
    return str((delta.days * 86400 + delta.seconds) * 10_000_000).encode()


def test_account_expiry_revokes_on_time_once_and_a_later_expiry_cancels(
    make_connector,
    sync,
    session,
    sessions,
    directory,
    run_ahead,  # noqa: F811
) -> None:
    ends = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    for uid in ("alice", "bob", "carol", "dave"):
        dn = directory.person_dn(uid)
        directory.add_values(dn, "objectClass", b"odockTestAccount")
        directory.replace(dn, "objectGUID", uuid.uuid4().bytes_le)
        directory.replace(dn, "userAccountControl", b"512")
        directory.replace(dn, "sAMAccountName", uid.upper().encode())
        directory.replace(dn, "accountExpires", NEVER)
    # alice's expiry comes in with the first import; bob's and carol's with a later sync.
    directory.replace(directory.person_dn("alice"), "accountExpires", _filetime(ends))
    connector = make_connector(
        preset="active_directory",
        attribute_mapping={"change_attribute": "modifyTimestamp", "change_kind": "timestamp"},
        user_filter="(&(objectClass=inetOrgPerson)(objectGUID=*))",
    )
    assert sync(connector).status == "succeeded"
    directory.replace(directory.person_dn("bob"), "accountExpires", _filetime(ends))
    directory.replace(directory.person_dn("carol"), "accountExpires", _filetime(ends))
    assert sync(connector).status == "succeeded"
    directory.replace(
        directory.person_dn("carol"), "accountExpires", _filetime(ends + timedelta(days=1))
    )
    assert sync(connector).status == "succeeded"
    users = linked_users(sessions, connector)
    assert users["alice"].access_ends_at == users["bob"].access_ends_at == ends
    assert users["alice"].access_ends_source is Source.LDAP
    assert users["carol"].access_ends_at == ends + timedelta(days=1)
    due = [users["alice"].id, users["bob"].id]
    kept = [users["carol"].id, users["dave"].id]

    run_ahead(ends - timedelta(seconds=15))

    for user_id in due:
        wait_until(lambda u=user_id: revocations_of(sessions, u), timeout=90, what="revoked")
    time.sleep(5 * TICK)
    for user_id in due:
        (revocation,) = revocations(session, user_id)
        assert revocation.source is Source.SCHEDULE
        assert on_time(revocation.revoked_at, ends), (revocation.revoked_at, ends)
        assert audited(session, "user.revoked", user_id) == 1
        assert session.get_one(User, user_id).status is UserStatus.REVOKED
    for user_id in kept:
        assert session.get_one(User, user_id).status is UserStatus.ACTIVE
    assert audited(session, "user.access_end_changed", kept[0]) == 1
