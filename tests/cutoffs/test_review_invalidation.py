"""A gateway invalidation resolves a review's key finding only when it follows the store's
acknowledgement of the command that review's revocation issued: a re-invalidation planned for
an older revocation's command, or a newer revocation's calls, leave the other's findings alone."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from models.actions import key_proofs, lifecycle, reviews, store_commands
from models.actor import Actor
from models.base import utcnow
from models.db import make_session_factory
from models.entities import ReviewFinding, Revocation, RevocationReview, StoreCommand
from models.enums import FindingState, ReviewStatus, StoreCommandType
from tests.support import factories as f
from tests.support.sql_events import statements_sent

REVIEWER = Actor.system("reviews")
DONE = reviews.INVALIDATION_ACKNOWLEDGED


def _person_with_key(session):
    """A person of a new organisation with one key of their own, committed."""
    org = f.make_org(session)
    person = f.make_user(session, org)
    key = f.make_key(session, org, owner=person)
    session.commit()
    return person, key


def _revoke_and_review(session, person) -> RevocationReview:
    revocation: Revocation = lifecycle.revoke(session, user=person, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=REVIEWER)
    assert review is not None
    return review


def _acknowledge_late(session, *commands: StoreCommand) -> None:
    """The store failed once, then applied these commands: a re-invalidation is planned."""
    for command in commands:
        for _attempt in range(2):
            store_commands.record_attempt(session, command_id=command.id)
    store_commands.record_acknowledgements(
        session, acknowledged={c.id: utcnow() for c in commands}, reinvalidate_after=0
    )
    session.flush()


def _commands(session, key_id) -> list[StoreCommand]:
    return list(
        session.scalars(
            select(StoreCommand)
            .where(StoreCommand.subject_id == key_id)
            .order_by(StoreCommand.issued_at, StoreCommand.id)
        )
    )


def _key_finding(session, review: RevocationReview, key_id) -> ReviewFinding:
    session.expire_all()
    return session.scalars(
        select(ReviewFinding).where(
            ReviewFinding.review_id == review.id, ReviewFinding.subject_id == key_id
        )
    ).one()


@pytest.mark.parametrize("review_opens", ["before", "after"])
def test_an_older_commands_reinvalidation_leaves_the_new_reviews_key_finding_pending(
    session, engine, review_opens
):
    """Revoked, the store late (a re-invalidation planned ODOCK_REINVALIDATE_AFTER on), then
    reactivated and revoked again while the store fails: the re-invalidation's gateway call
    (the gateway-only caller's) came before the store had the new revoke, so the new review's
    key finding stays pending and the review open, whether the review opened before the call
    or after it (reading the key's last gateway acknowledgement)."""
    person, key = _person_with_key(session)
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        person = bridged.merge(person)
        first = _revoke_and_review(bridged, person)
        (revoke,) = _commands(bridged, key.id)
        _acknowledge_late(bridged, revoke)
        store_commands.record_gateway_invalidation(bridged, key_ids=[key.id], called_at=utcnow())
        assert _key_finding(bridged, first, key.id).state is FindingState.RESOLVED

        lifecycle.reactivate(bridged, user=person, actor=f.SETUP)
        bridged.flush()
        if review_opens == "before":
            second = _revoke_and_review(bridged, person)
        else:
            lifecycle.revoke(bridged, user=person, actor=f.SETUP)
            bridged.flush()
        # the store fails: the restore and the new revoke are not acknowledged
        reviews.record_invalidation(
            bridged, key_ids=[key.id], reason="late store acknowledgement", called_at=utcnow()
        )
        bridged.flush()
        if review_opens == "after":
            revocation = lifecycle.latest_revocation(bridged, person.id)
            second = reviews.open_revocation_review(
                bridged, revocation_id=revocation.id, actor=REVIEWER
            )

        finding = _key_finding(bridged, second, key.id)
        assert (finding.state, finding.invalidation_status) == (FindingState.OPEN, "pending")
        assert finding.invalidated_at is None
        assert bridged.get_one(RevocationReview, second.id).status is ReviewStatus.OPEN

        # the store applies the restore and the new revoke; their own caller calls the gateway
        _acknowledge_late(bridged, *_commands(bridged, key.id)[1:])
        store_commands.record_gateway_invalidation(bridged, key_ids=[key.id], called_at=utcnow())
        bridged.flush()
        finding = _key_finding(bridged, second, key.id)
        assert (finding.state, finding.invalidation_status) == (FindingState.RESOLVED, DONE)
        assert bridged.get_one(RevocationReview, second.id).status is ReviewStatus.RESOLVED
        bridged.rollback()


def test_a_newer_revocations_invalidation_leaves_the_older_reviews_key_finding(session, engine):
    """Revoked while the store fails, reactivated and revoked again before the review sweep
    closed the first review as undone: the store then applies all three commands and the
    gateway forgets the key. That completes the second revocation, not the first (undone):
    its review's key finding keeps waiting for the sweep, the review is not resolved."""
    person, key = _person_with_key(session)
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        person = bridged.merge(person)
        first = _revoke_and_review(bridged, person)
        lifecycle.reactivate(bridged, user=person, actor=f.SETUP)
        bridged.flush()
        second = _revoke_and_review(bridged, person)
        commands = _commands(bridged, key.id)
        assert [c.command_type for c in commands] == [
            StoreCommandType.REVOKE,
            StoreCommandType.RESTORE,
            StoreCommandType.REVOKE,
        ]
        _acknowledge_late(bridged, *commands)
        store_commands.record_gateway_invalidation(bridged, key_ids=[key.id], called_at=utcnow())
        bridged.flush()

        older = _key_finding(bridged, first, key.id)
        assert (older.invalidation_status, older.invalidated_at) == ("pending", None)
        assert bridged.get_one(RevocationReview, first.id).status is ReviewStatus.OPEN
        newer = _key_finding(bridged, second, key.id)
        assert (newer.state, newer.invalidation_status) == (FindingState.RESOLVED, DONE)
        bridged.rollback()


def _acknowledge(session, *commands: StoreCommand) -> None:
    store_commands.record_acknowledgements(
        session, acknowledged={c.id: utcnow() for c in commands}, reinvalidate_after=0
    )
    session.flush()


def _revoked_twice(bridged, person) -> tuple[RevocationReview, RevocationReview]:
    """Revoked, reactivated and revoked again: a review for each revocation."""
    first = _revoke_and_review(bridged, person)
    lifecycle.reactivate(bridged, user=person, actor=f.SETUP)
    bridged.flush()
    return first, _revoke_and_review(bridged, person)


@pytest.mark.parametrize("store_answer", ["applied", "no such key"])
def test_an_older_commands_answers_stay_off_the_new_reviews_key_finding(
    session, engine, store_answer
):
    """The store answers the first revocation's command late, after the person was reactivated
    and revoked again, and the gateway answers for it: the new review's key finding shows no
    store acknowledgement, no store answer and no proof until its own command has them."""
    person, key = _person_with_key(session)
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        person = bridged.merge(person)
        _first, second = _revoked_twice(bridged, person)
        old_revoke, _restore, new_revoke = _commands(bridged, key.id)
        if store_answer == "applied":
            _acknowledge(bridged, old_revoke)
        else:
            store_commands.record_unknown_keys(bridged, command_ids=[old_revoke.id])
        key_proofs.record_key_status(
            bridged,
            command_ids=[old_revoke.id],
            answers={key.id: (False, utcnow())},
            secret="proof-secret",
        )
        bridged.flush()

        finding = _key_finding(bridged, second, key.id)
        assert (finding.store_acknowledged_at, finding.gateway_proof) == (None, None)
        assert "store" not in finding.detail

        _acknowledge(bridged, _restore, new_revoke)
        finding = _key_finding(bridged, second, key.id)
        assert (
            finding.store_acknowledged_at
            == bridged.get_one(StoreCommand, new_revoke.id).acknowledged_at
        )
        bridged.rollback()


def test_a_newer_commands_answers_leave_the_older_reviews_key_finding(session, engine):
    """The first revocation's command acknowledged, then the person reactivated and revoked
    again: the new command's acknowledgement and the gateway's proof of it are the new
    review's, not written over the first review's finding."""
    person, key = _person_with_key(session)
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        person = bridged.merge(person)
        first = _revoke_and_review(bridged, person)
        (old_revoke,) = _commands(bridged, key.id)
        _acknowledge(bridged, old_revoke)
        acknowledged_at = _key_finding(bridged, first, key.id).store_acknowledged_at
        assert acknowledged_at is not None
        lifecycle.reactivate(bridged, user=person, actor=f.SETUP)
        bridged.flush()
        second = _revoke_and_review(bridged, person)
        _old, restore, new_revoke = _commands(bridged, key.id)
        _acknowledge(bridged, restore, new_revoke)
        key_proofs.record_key_status(
            bridged,
            command_ids=[new_revoke.id],
            answers={key.id: (False, utcnow())},
            secret="proof-secret",
        )
        bridged.flush()

        older = _key_finding(bridged, first, key.id)
        assert older.store_acknowledged_at == acknowledged_at
        assert older.gateway_proof is None
        newer = _key_finding(bridged, second, key.id)
        new_acknowledged_at = bridged.get_one(StoreCommand, new_revoke.id).acknowledged_at
        assert (newer.store_acknowledged_at, newer.gateway_proof is None) == (
            new_acknowledged_at,
            False,
        )
        bridged.rollback()


def _statements_to_record_answers(session, engine, keys: int) -> int:
    """A leaver with `keys` keys, bridged: the statements of recording the store's
    acknowledgement of their revokes, then the gateway's invalidation of them."""
    org = f.make_org(session)
    person = f.make_user(session, org)
    key_ids = [f.make_key(session, org, owner=person).id for _ in range(keys)]
    session.commit()
    with make_session_factory(engine, odock_mode="bridged")() as bridged:
        _revoke_and_review(bridged, bridged.merge(person))
        commands = [c for key_id in key_ids for c in _commands(bridged, key_id)]
        bridged.flush()
        with statements_sent(engine) as sent:
            store_commands.record_acknowledgements(
                bridged, acknowledged={c.id: utcnow() for c in commands}, reinvalidate_after=0
            )
            store_commands.record_gateway_invalidation(bridged, key_ids=key_ids, called_at=utcnow())
            bridged.flush()
        bridged.rollback()
    # Reads of the commands only: a statement the process makes once, or once a minute, may
    # fall into either recording (one more on SQLite in a full run).
    return sum(
        1 for statement in sent if re.match(r"SELECT\b.*\bFROM store_commands\b", statement, re.S)
    )


def test_recording_a_leavers_answers_reads_their_commands_once_not_per_key(session, engine):
    """Which command is each key's current revoke was read key by key (one SELECT for each of
    a leaver's hundreds of keys, twice: the store's acknowledgement and the gateway's); it is
    one read for all of them, so twelve keys take the reads of store_commands two do."""
    assert _statements_to_record_answers(session, engine, 12) == _statements_to_record_answers(
        session, engine, 2
    )
