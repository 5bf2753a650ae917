"""An Active Directory account expiry (`accountExpires`) read from a real slapd becomes the
person's end date, and the schedule revokes them at that moment, once, through real workers
and beats whose clocks run ahead; an expiry moved later cancels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.actions import access_end, lifecycle
from models.actor import Actor
from models.entities import User
from models.enums import Source, UserStatus
from tests.access_end.conftest import (  # noqa: F401 (fixtures)
    LEAD,
    assert_revoked_once_on_time,
    audited,
    clocked_settings,
    run_ahead,
)
from tests.ldap.conftest import AD_CONNECTOR, ad_filetime, as_ad_accounts, linked_users


def test_account_expiry_revokes_on_time_once_and_a_later_expiry_cancels(
    make_connector,
    sync,
    session,
    sessions,
    directory,
    run_ahead,  # noqa: F811
) -> None:
    ends = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    as_ad_accounts(directory, ("alice", "bob", "carol", "dave"))
    # alice's expiry comes in with the first import; bob's and carol's with a later sync.
    directory.replace(directory.person_dn("alice"), "accountExpires", ad_filetime(ends))
    connector = make_connector(**AD_CONNECTOR)
    assert sync(connector).status == "succeeded"
    directory.replace(directory.person_dn("bob"), "accountExpires", ad_filetime(ends))
    directory.replace(directory.person_dn("carol"), "accountExpires", ad_filetime(ends))
    assert sync(connector).status == "succeeded"
    directory.replace(
        directory.person_dn("carol"), "accountExpires", ad_filetime(ends + timedelta(days=1))
    )
    assert sync(connector).status == "succeeded"
    users = linked_users(sessions, connector)
    assert users["alice"].access_ends_at == users["bob"].access_ends_at == ends
    assert users["alice"].access_ends_source is Source.LDAP
    assert users["carol"].access_ends_at == ends + timedelta(days=1)
    due = [users["alice"].id, users["bob"].id]
    kept = [users["carol"].id, users["dave"].id]

    run_ahead(ends - LEAD)

    assert_revoked_once_on_time(session, sessions, due, ends)
    for user_id in kept:
        assert session.get_one(User, user_id).status is UserStatus.ACTIVE
    assert audited(session, "user.access_end_changed", kept[0]) == 1


def test_a_renewed_account_expiry_brings_back_whom_the_schedule_revoked(
    make_connector, sync, session, sessions, directory
) -> None:
    """accountExpires passed between syncs and the schedule revoked the person; the
    directory then moves it later (a renewed contract): the next sync brings them back,
    audited. A sync that reads the passed date again does not."""
    ends = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    as_ad_accounts(directory, ("alice",))
    directory.replace(directory.person_dn("alice"), "accountExpires", ad_filetime(ends))
    connector = make_connector(**AD_CONNECTOR)
    assert sync(connector).status == "succeeded"
    user_id = linked_users(sessions, connector)["alice"].id
    schedule = Actor(Source.SCHEDULE, "access-end schedule")
    # The beat at the date (its clock ahead of the directory's, which has not looked since).
    ended = access_end.end_access(session, user_id=user_id, now=ends, actor=schedule)
    assert ended is lifecycle.Outcome.APPLIED
    session.commit()

    assert sync(connector).status == "succeeded"
    assert linked_users(sessions, connector)["alice"].status is UserStatus.REVOKED

    renewed = ends + timedelta(days=90)
    directory.replace(directory.person_dn("alice"), "accountExpires", ad_filetime(renewed))
    assert sync(connector).status == "succeeded"
    alice = linked_users(sessions, connector)["alice"]
    assert alice.status is UserStatus.ACTIVE
    assert alice.access_ends_at == renewed
    session.expire_all()
    assert audited(session, "user.reactivated", user_id) == 1
