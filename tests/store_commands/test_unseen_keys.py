"""A key that a complete listing lacks is not forgotten on that listing's word: the stand-in's
management plane pages by offset, and a key deleted in Odock between two page reads shifts the
leaver's key out of the listing. The reconcile deleted it from odock-sync's view, so revoking
its owner sent no command and the leaver kept a working key."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from models.actions.odock_reconcile import reconcile_from_management_plane
from models.entities import AuditEvent, OdockTombstone, VirtualApiKey
from tests.store_commands.conftest import KeyHolder, deactivate, provision_key_holder
from tests.support.odock import OdockStandIn
from tests.support.odock.adapter import push_keys
from tests.support.odock.store import delete_key
from tests.support.reaper import wait_reaping

ACCEPTED, REJECTED = 200, 401


def around_the_holders_key(client, odock: OdockStandIn, holder: KeyHolder) -> tuple[uuid.UUID, ...]:
    """Two organisation keys, one listed before the holder's key (ids in order) and one after,
    pushed to odock-sync with it."""
    first, _ = odock.store.create_key(holder.org.id, key_id=_id_with_prefix("00000000"))
    last, _ = odock.store.create_key(holder.org.id, key_id=_id_with_prefix("ffffffff"))
    push_keys(client, holder.odock_token, odock, holder.org.id)
    return first, last


def _id_with_prefix(prefix: str) -> uuid.UUID:
    return uuid.UUID(prefix + uuid.uuid4().hex[8:])


def held_key(sessions, key_id: uuid.UUID) -> VirtualApiKey | None:
    with sessions() as fresh:
        return fresh.get(VirtualApiKey, key_id)


def actions(sessions) -> list[str]:
    with sessions() as fresh:
        return list(
            fresh.scalars(select(AuditEvent.action).where(AuditEvent.action.like("odock.keys.%")))
        )


def test_a_key_an_offset_listing_skipped_is_kept_and_revoked_with_its_owner(
    bridged_session,
    bridged_sessions,
    bridged_client,
    bridged_worker,
    bridged_settings,
    engine,
    odock,
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    first, _last = around_the_holders_key(bridged_client, odock, holder)
    # One key a page; the first key is deleted in Odock (its deletion's push lost) once the
    # first page is read: the holder's key moves to offset 0 and page 2 starts past it.
    odock.store_faults.offset_page = 1
    odock.store_faults.after_first_page = lambda: delete_key(odock.store, first)

    run = reconcile_from_management_plane(engine, bridged_settings, holder.org.id)

    assert run.status == "succeeded" and run.summary["key"]["seen"] == 2
    assert run.summary["key"]["deleted"] == 0 and run.summary["key"]["unseen"] == 1
    kept = held_key(bridged_sessions, holder.key_id)
    assert kept is not None and not kept.revoked
    assert kept.unseen_listings == 1 and kept.unseen_since is not None
    assert run.started_at <= kept.unseen_since <= run.finished_at
    assert "odock.keys.unseen" in actions(bridged_sessions)

    deactivate(bridged_client, holder)

    wait_reaping(
        lambda: odock.call(holder.key_value) == REJECTED, timeout=30, what="the key rejected"
    )
    revokes = [c for c in odock.commands_seen.for_key(holder.key_id) if c.type == "key.revoke"]
    assert revokes and revokes[-1].status == 200

    # The next listing (no deletion meanwhile) shows the key again: no longer unseen.
    again = reconcile_from_management_plane(engine, bridged_settings, holder.org.id)
    assert again.summary["key"]["seen_again"] == 1
    seen = held_key(bridged_sessions, holder.key_id)
    assert seen is not None and (seen.unseen_listings, seen.unseen_since) == (0, None)
    assert "odock.keys.seen_again" in actions(bridged_sessions)


def test_a_key_deleted_in_odock_is_forgotten_after_enough_complete_listings_lack_it(
    bridged_session, bridged_sessions, bridged_client, bridged_settings, engine, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    first, last = around_the_holders_key(bridged_client, odock, holder)
    delete_key(odock.store, first)  # in Odock's own UI; the push of the deletion is lost
    forget_after = bridged_settings.odock_forget_after_listings

    for listing in range(1, forget_after):
        run = reconcile_from_management_plane(engine, bridged_settings, holder.org.id)
        assert run.summary["key"]["unseen"] == 1 and run.summary["key"]["deleted"] == 0
        gone = held_key(bridged_sessions, first)
        assert gone is not None and gone.unseen_listings == listing

    run = reconcile_from_management_plane(engine, bridged_settings, holder.org.id)

    assert run.summary["key"]["deleted"] == 1
    assert run.summary["key"]["ids"]["deleted"] == [str(first)]
    assert held_key(bridged_sessions, first) is None
    for key_id in (holder.key_id, last):
        listed = held_key(bridged_sessions, key_id)
        assert listed is not None and listed.unseen_listings == 0
    with bridged_sessions() as fresh:
        buried = fresh.scalars(select(OdockTombstone.object_id)).all()
    assert buried == [first]
    marks = actions(bridged_sessions)
    assert marks.count("odock.keys.unseen") == forget_after
    assert marks.count("odock.keys.deleted") == 1
