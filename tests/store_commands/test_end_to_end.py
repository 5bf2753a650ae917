"""Revocations carried to the stand-in Odock by a real worker: store first, then the gateway."""

from __future__ import annotations

from sqlalchemy import select

from models.actions.key_proofs import proof_is_authentic
from models.entities import (
    AuditEvent,
    KeyCutoff,
    NotificationDelivery,
    ReviewFinding,
    StoreCommand,
)
from models.enums import FindingState, Severity
from tests.store_commands.conftest import deactivate, provision_key_holder, reactivate
from tests.support.reaper import wait_reaping
from tests.support.relay import wait_as_beat
from tests.support.wait import wait_until

ACCEPTED, REJECTED = 200, 401


def finding_of(sessions, key_id, kind="user_key"):
    with sessions() as fresh:
        return fresh.scalar(
            select(ReviewFinding).where(
                ReviewFinding.subject_id == key_id, ReviewFinding.kind == kind
            )
        )


def command_of(sessions, key_id):
    with sessions() as fresh:
        return fresh.scalars(select(StoreCommand).where(StoreCommand.subject_id == key_id)).one()


def cutoff_of(sessions, key_id):
    with sessions() as fresh:
        return fresh.scalars(
            select(KeyCutoff).where(KeyCutoff.key_id == key_id, KeyCutoff.via_store.is_(True))
        ).one()


def test_revoking_a_person_via_scim_makes_the_gateway_reject_their_key(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, bridged_settings, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED  # now in the gateway's cache

    deactivate(bridged_client, holder)

    wait_as_beat(lambda: odock.call(holder.key_value) == REJECTED, what="rejection")
    assert odock.store.key(holder.key_id)["revoked"] is True
    command = command_of(bridged_sessions, holder.key_id)
    assert command.command_type == "key.revoke" and command.applied_at is not None
    [acknowledgement] = [c for c in odock.commands_seen.for_key(holder.key_id) if c.status == 200]
    assert min(odock.invalidations.times_for(str(holder.key_id))) >= acknowledgement.at

    def proven():
        found = finding_of(bridged_sessions, holder.key_id)
        return found if found is not None and found.gateway_proof else None

    finding = wait_until(proven, what="the gateway's proof on the finding")
    assert finding.store_acknowledged_at is not None and finding.invalidated_at is not None
    assert finding.store_acknowledged_at <= finding.invalidated_at
    proof = finding.gateway_proof
    assert proof["accepted"] is False and proof["statement"].startswith("denied at ")
    assert proof_is_authentic(bridged_settings.secret_key, proof)
    assert not proof_is_authentic(
        bridged_settings.secret_key, {**proof, "statement": "denied at 1999"}
    )
    assert finding_of(bridged_sessions, holder.key_id, "key_still_accepted") is None


def test_a_store_that_answers_500_delays_the_invalidation_until_it_acknowledges(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    """The cut-off reaper re-sends the command, with backoff, until the store recovers; no
    Celery retry chain carries it."""
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED
    odock.store_faults.fail = True

    deactivate(bridged_client, holder)

    wait_reaping(
        lambda: len(odock.commands_seen.for_key(holder.key_id)) >= 3,
        timeout=30,
        what="the command re-sent by the reaper to a failing store",
    )
    assert odock.invalidations.times_for(str(holder.key_id)) == []
    assert odock.store.key(holder.key_id)["revoked"] is False
    assert command_of(bridged_sessions, holder.key_id).acknowledged_at is None
    waiting = cutoff_of(bridged_sessions, holder.key_id)
    assert waiting.acknowledged_at is None and "500" in waiting.last_error
    assert waiting.attempts >= 3 and waiting.next_attempt_at > waiting.requested_at

    odock.store_faults.heal()

    wait_reaping(lambda: odock.call(holder.key_value) == REJECTED, what="rejection")
    seen = odock.commands_seen.for_key(holder.key_id)
    acknowledged_at = min(c.at for c in seen if c.status == 200)
    assert all(c.status == 500 for c in seen if c.at < acknowledged_at)
    assert min(odock.invalidations.times_for(str(holder.key_id))) >= acknowledged_at
    wait_until(
        lambda: cutoff_of(bridged_sessions, holder.key_id).acknowledged_at,
        what="the cut-off done, with the gateway's acknowledgement recorded",
    )
    command = command_of(bridged_sessions, holder.key_id)
    assert command.attempts >= 4 and command.last_error is None
    assert "Retry in" not in bridged_worker.log()  # no Celery retry chain


def test_a_hanging_store_delays_the_invalidation_and_its_late_acknowledgement_sends_it_twice(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED
    odock.store_faults.hang_after_apply = True  # applies, then never answers in time

    deactivate(bridged_client, holder)

    wait_until(lambda: odock.store.key(holder.key_id)["revoked"], what="applied")
    wait_reaping(
        lambda: command_of(bridged_sessions, holder.key_id).attempts >= 2,
        timeout=30,
        what="two attempts timed out",
    )
    # The store has revoked the key, but without its acknowledgement nothing was invalidated:
    # the gateway still serves its cached entry rather than re-reading a half-applied store.
    assert odock.invalidations.times_for(str(holder.key_id)) == []
    assert odock.call(holder.key_value) == ACCEPTED

    odock.store_faults.heal()

    wait_reaping(
        lambda: len(odock.invalidations.times_for(str(holder.key_id))) >= 2,
        timeout=30,
        what="the invalidation, and the second one after the late acknowledgement",
    )
    command = command_of(bridged_sessions, holder.key_id)
    first, second = odock.invalidations.times_for(str(holder.key_id))[:2]
    assert command.acknowledged_at.timestamp() <= first < second
    assert odock.call(holder.key_value) == REJECTED


def test_a_gateway_that_still_accepts_the_key_raises_an_urgent_finding_and_an_alert(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    assert odock.call(holder.key_value) == ACCEPTED
    odock.gateway_faults.ignore_invalidations = True

    deactivate(bridged_client, holder)

    urgent = wait_until(
        lambda: finding_of(bridged_sessions, holder.key_id, "key_still_accepted"),
        timeout=30,
        what="the urgent finding",
    )
    assert urgent.severity is Severity.URGENT and urgent.state is FindingState.OPEN
    assert urgent.detail["proof"]["accepted"] is True
    assert urgent.detail["proof"]["statement"].startswith("accepted at ")
    assert odock.call(holder.key_value) == ACCEPTED

    def alerts():
        with bridged_sessions() as fresh:
            return fresh.scalars(
                select(NotificationDelivery).where(
                    NotificationDelivery.event == "finding.urgent",
                    NotificationDelivery.recipient_user_id == holder.admin.id,
                )
            ).all()

    [alert] = wait_until(alerts, what="the admin alerted")
    assert "key_still_accepted" in str(alert.payload)


def test_a_proof_answered_after_the_key_was_restored_raises_no_alarm(
    bridged_session, bridged_sessions, bridged_client, bridged_worker, odock
):
    """The revoke's proof could not be given (gateway status down) until after an admin had
    reactivated the person: the gateway then rightly accepted the restored key, and that answer
    to a superseded question opened an urgent key_still_accepted finding and alerted the
    admins and managers."""
    holder = provision_key_holder(bridged_session, bridged_client, odock)
    odock.gateway_faults.status_unavailable = True
    deactivate(bridged_client, holder)
    wait_until(lambda: odock.call(holder.key_value) == REJECTED, what="rejection")
    reactivate(bridged_session, bridged_client, holder)
    wait_until(lambda: odock.call(holder.key_value) == ACCEPTED, what="restored")

    odock.gateway_faults.heal()  # the revoke's proof is answered now: accepted, since restored

    def revoke_proven():
        with bridged_sessions() as fresh:
            return fresh.scalars(
                select(StoreCommand).where(
                    StoreCommand.subject_id == holder.key_id,
                    StoreCommand.command_type == "key.revoke",
                    StoreCommand.gateway_checked_at.is_not(None),
                )
            ).one_or_none()

    revoke = wait_reaping(revoke_proven, what="the revoke's proof answered")
    assert revoke.gateway_accepted is True
    assert finding_of(bridged_sessions, holder.key_id, "key_still_accepted") is None
    with bridged_sessions() as fresh:
        assert not fresh.scalars(
            select(NotificationDelivery).where(NotificationDelivery.event == "finding.urgent")
        ).all()
        [superseded] = fresh.scalars(
            select(AuditEvent).where(AuditEvent.action == "api_key.proof_superseded")
        ).all()
    assert superseded.after["accepted"] is True and superseded.after["superseded_by"]
