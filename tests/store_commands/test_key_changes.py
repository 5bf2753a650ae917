"""carry_out_key_change: one path for every key change, embedded and bridged."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from click.testing import CliRunner
from sqlalchemy import select, text

from cli.main import main
from models import base, key_changes
from models.actions import lifecycle, store_commands
from models.actions.key_rotations import request_key_rotation
from models.db import make_session_factory
from models.entities import AuditEvent, OutboxMessage, StoreCommand, VirtualApiKey
from models.enums import BUDGET_COMMANDS, KeyPolicy, KeyType, StoreCommandType
from models.key_changes import KeyChange, carry_out_key_change, keys_with_pending_commands
from tests.reviews.conftest import build_leaver, revoke_and_review
from tests.support import factories as f
from tests.support.parallel import in_parallel
from tests.support.wait import wait_until


def outbox_tasks(session):
    return [m.task for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def test_embedded_revocation_marks_keys_and_invalidates_without_commands(session):
    world = build_leaver(session)

    lifecycle.revoke(session, user=world.person, actor=f.SETUP)
    session.flush()

    assert session.get(VirtualApiKey, world.key_a.id).revoked
    assert "gateway.invalidate_keys" in outbox_tasks(session)
    assert session.scalars(select(StoreCommand)).all() == []


def test_bridged_revocation_writes_a_command_per_key_and_no_invalidation(bridged_session):
    world = build_leaver(bridged_session)

    lifecycle.revoke(bridged_session, user=world.person, actor=f.SETUP)
    bridged_session.flush()

    commands = bridged_session.scalars(
        select(StoreCommand).where(StoreCommand.command_type.not_in(BUDGET_COMMANDS))
    ).all()
    assert {c.subject_id for c in commands} == {world.key_a.id, world.key_b.id}
    assert {c.command_type for c in commands} == {StoreCommandType.REVOKE}
    [freeze] = bridged_session.scalars(
        select(StoreCommand).where(StoreCommand.command_type.in_(BUDGET_COMMANDS))
    ).all()
    assert freeze.command_type is StoreCommandType.BUDGET_FREEZE  # the person's budget, too
    tasks = outbox_tasks(bridged_session)
    assert "odock.send_store_commands" in tasks and "gateway.invalidate_keys" not in tasks
    # odock-sync's view shows the decision at once; the store follows when it acknowledges
    assert bridged_session.get(VirtualApiKey, world.key_a.id).revoked
    assert keys_with_pending_commands(bridged_session, [world.key_a.id, world.other_key.id]) == {
        world.key_a.id
    }
    audited = bridged_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.revoked")
    ).all()
    assert {a.target_id for a in audited} == {str(world.key_a.id), str(world.key_b.id)}


def test_a_rolled_back_revocation_leaves_no_command(bridged_session):
    world = build_leaver(bridged_session)
    bridged_session.commit()

    lifecycle.revoke(bridged_session, user=world.person, actor=f.SETUP)
    bridged_session.rollback()

    assert bridged_session.scalars(select(StoreCommand)).all() == []


def test_bridged_reactivation_restores_through_commands_sent_after_the_revocation(
    bridged_session,
):
    world = build_leaver(bridged_session)
    review = revoke_and_review(bridged_session, world.person)
    assert review is not None
    lifecycle.reactivate(bridged_session, user=world.person, actor=f.SETUP)
    bridged_session.flush()

    restores = bridged_session.scalars(
        select(StoreCommand).where(StoreCommand.command_type == StoreCommandType.RESTORE)
    ).all()
    assert {c.subject_id for c in restores} == {world.key_a.id, world.key_b.id}
    outgoing = store_commands.unsettled_by_key(
        bridged_session, key_ids=[world.key_a.id, world.key_b.id]
    )
    # each key's restore goes after its unacknowledged revoke: a key's commands keep order
    for key_id in (world.key_a.id, world.key_b.id):
        assert [c.body["type"] for c in outgoing[key_id]] == ["key.revoke", "key.restore"]


def test_a_restore_issued_on_a_clock_behind_the_revokes_still_goes_after_it(bridged_session):
    """The revoke was issued on a clock an hour ahead (another host's, or this one's before
    it was stepped back): the restore's issued_at came out earlier, so the key's commands were
    sent restore first, and the store ended with the key revoked while odock-sync, and the
    person, had it restored."""
    world = build_leaver(bridged_session)
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1), tick=True):
        review = revoke_and_review(bridged_session, world.person)
    assert review is not None
    lifecycle.reactivate(bridged_session, user=world.person, actor=f.SETUP)
    bridged_session.flush()

    outgoing = store_commands.unsettled_by_key(
        bridged_session, key_ids=[world.key_a.id, world.key_b.id]
    )
    for key_id in (world.key_a.id, world.key_b.id):
        revoke, restore = outgoing[key_id]
        assert [revoke.body["type"], restore.body["type"]] == ["key.revoke", "key.restore"]
        assert restore.body["issued_at"] > revoke.body["issued_at"]


def test_two_transactions_issuing_commands_for_one_key_at_once_keep_its_order(
    bridged_session, engine, monkeypatch
):
    """A revocation of a key decided on a host whose clock runs an hour ahead and, while its
    transaction is open, a rotation request for the same key on a host whose clock is right.
    The rotation waits for the revocation's transaction, reads its command and is issued
    after it. Before, the rotation read the key's commands unlocked, found none, and was
    issued an hour before the revocation it came after: the store got them the wrong way."""
    org = f.make_org(bridged_session)
    key = f.make_key(bridged_session, org, owner=f.make_user(bridged_session, org))
    bridged_session.commit()
    clock = threading.local()
    monkeypatch.setattr(
        key_changes, "utcnow", lambda: base.utcnow() + getattr(clock, "ahead", timedelta())
    )
    revoked, rotating, rotated, committed = (threading.Event() for _ in range(4))
    # No relay after commit: on SQLite it would wait for the rotation's transaction.
    bridged_sessions = make_session_factory(engine, odock_mode="bridged")

    def waiting_on_a_lock() -> bool:
        if bridged_session.get_bind().dialect.name != "postgresql":
            return True  # SQLite: the rotation cannot even begin while the revocation writes
        bridged_session.execute(text("SELECT pg_stat_clear_snapshot()"))
        waiting = bridged_session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
        bridged_session.rollback()
        return bool(waiting)

    def revoke() -> None:
        clock.ahead = timedelta(hours=1)
        with bridged_sessions() as own:
            change = KeyChange(
                command=StoreCommandType.REVOKE,
                organisation_id=org.id,
                scope=VirtualApiKey.id == key.id,
                actor=f.SETUP,
                reason="left",
            )
            assert carry_out_key_change(own, change) == [key.id]
            revoked.set()
            assert rotating.wait(30)
            wait_until(lambda: rotated.is_set() or waiting_on_a_lock(), timeout=30)
            own.commit()
        committed.set()

    def rotate() -> None:
        assert revoked.wait(30)
        with bridged_sessions() as own:
            rotating.set()
            request_key_rotation(
                own, organisation_id=org.id, key_id=key.id, actor=f.SETUP, reason="rotate"
            )
            rotated.set()
            assert committed.wait(30)  # committed after the revocation, whichever way
            own.commit()

    in_parallel([revoke, rotate])

    commands = bridged_session.execute(
        select(StoreCommand.command_type, StoreCommand.issued_at)
        .where(StoreCommand.subject_id == key.id)
        .order_by(StoreCommand.issued_at)
    ).all()
    assert [command for command, _ in commands] == [
        StoreCommandType.REVOKE,
        StoreCommandType.ROTATE_REQUEST,
    ]


def test_a_revoke_held_for_review_then_revoked_by_the_review_goes_through_commands(
    bridged_session,
):
    world = build_leaver(bridged_session)
    world.org.settings.team_key_policy = world.org.settings.user_key_policy
    bridged_session.flush()

    revoke_and_review(bridged_session, world.person)

    team_commands = bridged_session.scalars(
        select(StoreCommand).where(StoreCommand.subject_id == world.team_key.id)
    ).all()
    assert [c.command_type for c in team_commands] == [StoreCommandType.REVOKE]


@pytest.fixture
def cli_env(monkeypatch, settings, clean_db):
    def use(**changes):
        for name, value in settings.model_copy(update=changes).model_dump().items():
            monkeypatch.setenv(name.upper(), str(value))

    yield use
    from worker.celery_app import configure_celery
    from worker.runtime import init_runtime

    configure_celery(settings)  # the CLI configured this process with its own settings
    init_runtime(settings)


def test_rotate_request_from_the_cli_is_a_command_when_bridged(cli_env, bridged_session):
    org = f.make_org(bridged_session)
    key = f.make_key(bridged_session, org, owner=f.make_user(bridged_session, org))
    bridged_session.commit()
    cli_env(odock_mode="bridged", odock_management_url="")

    result = CliRunner().invoke(
        main, ["keys", "rotate-request", "--org", org.slug, str(key.id), "--reason", "leaked"]
    )

    assert result.exit_code == 0, result.output
    assert "sent to Odock's store" in result.output
    bridged_session.expire_all()
    [command] = bridged_session.scalars(select(StoreCommand)).all()
    assert (command.subject_id, command.command_type, command.reason) == (
        key.id,
        StoreCommandType.ROTATE_REQUEST,
        "leaked",
    )
    assert not bridged_session.get(VirtualApiKey, key.id).revoked


def test_rotate_request_embedded_is_audited_and_an_unknown_key_is_a_clean_error(cli_env, session):
    org, other = f.make_org(session), f.make_org(session)
    key = f.make_key(session, org, owner=f.make_user(session, org))
    session.commit()
    cli_env()
    runner = CliRunner()

    done = runner.invoke(main, ["keys", "rotate-request", "--org", org.slug, str(key.id)])
    elsewhere = runner.invoke(main, ["keys", "rotate-request", "--org", other.slug, str(key.id)])
    unknown = runner.invoke(main, ["keys", "rotate-request", "--org", org.slug, str(uuid.uuid4())])
    malformed = runner.invoke(main, ["keys", "rotate-request", "--org", org.slug, "not-a-uuid"])

    assert done.exit_code == 0, done.output
    assert "recorded" in done.output
    for refused in (elsewhere, unknown, malformed):
        assert refused.exit_code != 0 and "Traceback" not in refused.output
        assert isinstance(refused.exception, SystemExit)
    assert "no API key" in unknown.output
    session.expire_all()
    assert session.scalars(select(StoreCommand)).all() == []
    rotations = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_key.rotation_requested")
    ).all()
    assert [r.target_id for r in rotations] == [str(key.id)]


def _key_a_reassigned_to_team_a(session):  # type: ignore[no-untyped-def]
    """The leaver's key_a, held by the policy, handed to team_a by its review's finding."""
    from models.actions import reviews
    from tests.reviews.conftest import REVIEWER

    world = build_leaver(session)
    world.org.settings.user_key_policy = KeyPolicy.HOLD
    session.flush()
    review = revoke_and_review(session, world.person)
    finding = next(f for f in review.findings if f.subject_id == world.key_a.id)
    reviews.reassign_finding(session, finding=finding, actor=REVIEWER, to_team=world.team_a)
    session.flush()
    return world


def test_a_key_reassigned_in_review_is_a_reassign_command_when_bridged(bridged_session):
    world = _key_a_reassigned_to_team_a(bridged_session)

    [command] = bridged_session.scalars(
        select(StoreCommand).where(StoreCommand.command_type == StoreCommandType.REASSIGN)
    ).all()
    assert (command.subject_id, command.owner_user_id, command.owner_team_id) == (
        world.key_a.id,
        None,
        world.team_a.id,
    )
    key = bridged_session.get(VirtualApiKey, world.key_a.id)
    assert (key.key_type, key.owner_user_id, key.owner_team_id) == (
        KeyType.TEAM,
        None,
        world.team_a.id,
    )


def test_a_push_while_a_reassignment_is_on_its_way_keeps_it_and_checks_the_holder(
    bridged_session,
):
    """Odock pushes the leaver's key as it still knows it (a USER key of theirs) while the
    review's REASSIGN to a team is unacknowledged: the reassignment stands (owner and type),
    and the leaver check reads the key as it will be. Before, the check read an owner the
    pending decision had taken out of the push (KeyError: a 500 to Odock)."""
    from models.actions import odock_objects
    from models.actor import Actor
    from models.enums import Source

    world = _key_a_reassigned_to_team_a(bridged_session)
    key = bridged_session.get_one(VirtualApiKey, world.key_a.id)
    stale = odock_objects.KeyIn(
        version=key.version + 1,
        type=KeyType.USER,
        name=key.name,
        owner_user_id=world.person.id,
    )

    applied = odock_objects.upsert_key(
        bridged_session,
        organisation_id=world.org.id,
        key_id=key.id,
        key=stale,
        actor=Actor(Source.ODOCK, "odock"),
    )

    assert applied.applied
    bridged_session.flush()
    bridged_session.refresh(key)
    assert (key.key_type, key.owner_user_id, key.owner_team_id) == (
        KeyType.TEAM,
        None,
        world.team_a.id,
    )
