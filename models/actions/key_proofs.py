"""Proof that a revoked key is dead: the gateway's own answer, signed and kept on the finding.

After the invalidation the gateway is asked whether it would still accept each revoked key:
a proof cut-off (models/actions/cutoffs.py, `PROOF`), opened with the gateway's
acknowledgement and re-driven by the reaper with backoff until the gateway answers for the key;
one not answered within CUTOFF_DEADLINE raises the cut-off alarm.
Each answer becomes an entry ("denied at T", or "accepted at T") signed with HMAC-SHA256
under the secret key, so an auditor can tell a recorded answer from an edited one. A key the
gateway still accepts opens an urgent finding on the revocation's review and alerts managers
and admins, unless a later revoke or restore of the key was issued before the answer came (a
reactivation while the proof waited: the gateway rightly accepts the restored key); that
answer is kept and audited `api_key.proof_superseded`, with no finding and no alert.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from models import audit
from models.actions import cutoffs
from models.actions.reviews import (
    KIND_STILL_ACCEPTED,
    Desired,
    latest_review_about,
    open_access_review,
    open_revocation_review,
    raise_urgent_finding,
    record_on_command_findings,
    review_of,
)
from models.actor import Actor
from models.base import utcnow
from models.entities import KeyCutoff, RevocationReview, StoreCommand, VirtualApiKey
from models.enums import ReviewCause, Severity, StoreCommandType

GATEWAY_ACTOR = Actor.system("odock-gateway-proof")


def proof_entry(secret: str, *, key_id: uuid.UUID, accepted: bool, checked_at: datetime) -> dict:
    statement = f"{'accepted' if accepted else 'denied'} at {checked_at.isoformat()}"
    return {
        "key_id": str(key_id),
        "accepted": accepted,
        "checked_at": checked_at.isoformat(),
        "statement": statement,
        "signature": _sign(secret, key_id, statement),
    }


def proof_is_authentic(secret: str, entry: dict[str, Any]) -> bool:
    expected = _sign(secret, uuid.UUID(entry["key_id"]), entry["statement"])
    return hmac.compare_digest(expected, entry["signature"])


def _sign(secret: str, key_id: uuid.UUID, statement: str) -> str:
    message = f"odock-sync key proof|{key_id}|{statement}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def record_proofs(
    session: Session,
    *,
    key_ids: list[uuid.UUID],
    answers: dict[uuid.UUID, tuple[bool, datetime]],
    asked_at: datetime,
    error: str,
    secret: str,
    retry_base: float,
    retry_max: float,
    retry_after: float | None = None,
) -> list[uuid.UUID]:
    """The gateway's answers (key id -> accepted, checked at) to a status call made at
    `asked_at` for these keys, whose proof cut-offs the caller holds: the answered proofs are
    kept and done, the others wait for their next attempt (`error` says why; no sooner than
    the gateway's `retry_after`, capped at `retry_max`). The keys proven."""
    pending = cutoffs.proofs_pending(session, key_ids=key_ids)
    answered = {c: k for c, k in pending.items() if k in answers}
    record_key_status(session, command_ids=sorted(answered), answers=answers, secret=secret)
    proven = sorted(set(answered.values()))
    cutoffs.acknowledge(session, key_ids=proven, called_at=asked_at, at=utcnow(), proof=True)
    unanswered = sorted(set(key_ids) - set(proven))
    if unanswered:
        cutoffs.record_failure(
            session,
            key_ids=unanswered,
            error=error,
            retry_base=retry_base,
            retry_max=retry_max,
            proof=True,
            retry_after=retry_after,
        )
    return proven


def open_missing_proofs(session: Session, *, command_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Proof cut-offs for those of these revocations the gateway invalidated that have neither
    a proof nor one pending (a message queued before proofs were cut-offs); their keys."""
    pending_proof = (
        select(KeyCutoff.id)
        .where(
            KeyCutoff.command_id == StoreCommand.id,
            KeyCutoff.command == cutoffs.PROOF,
            KeyCutoff.acknowledged_at.is_(None),
        )
        .exists()
    )
    commands = list(
        session.scalars(
            select(StoreCommand)
            .where(
                StoreCommand.id.in_(command_ids),
                StoreCommand.command_type == StoreCommandType.REVOKE,
                StoreCommand.gateway_invalidated_at.is_not(None),
                StoreCommand.gateway_checked_at.is_(None),
                ~pending_proof,
            )
            .order_by(StoreCommand.id)
        )
    )
    cutoffs.open_proofs(session, commands=commands)
    return sorted({command.subject_id for command in commands})


def record_key_status(
    session: Session,
    *,
    command_ids: list[uuid.UUID],
    answers: dict[uuid.UUID, tuple[bool, datetime]],
    secret: str,
) -> list[uuid.UUID]:
    """Keep the gateway's answers (key id -> accepted, checked at); the keys still accepted."""
    commands = session.scalars(select(StoreCommand).where(StoreCommand.id.in_(command_ids))).all()
    answered = [command for command in commands if command.subject_id in answers]
    for command in answered:
        accepted, checked_at = answers[command.subject_id]
        command.gateway_accepted, command.gateway_checked_at = accepted, checked_at
        # Kept on the command too: a review opened after this answer copies it to its finding.
        command.gateway_proof = proof_entry(
            secret, key_id=command.subject_id, accepted=accepted, checked_at=checked_at
        )
    superseded = _superseded(session, [c for c in answered if c.gateway_accepted])
    still_accepted = [c for c in answered if c.gateway_accepted and c.id not in superseded]
    # First, as the review task does: a review opened here locks its revocation, then keys.
    for command in still_accepted:
        _raise_still_accepted(session, command.subject_id, command.gateway_proof or {})
    for command in answered:
        record_on_command_findings(session, commands=[command], gateway_proof=command.gateway_proof)
        later = superseded.get(command.id)
        audit.record(
            session,
            actor=GATEWAY_ACTOR,
            organisation_id=command.organisation_id,
            action="api_key.proof_superseded"
            if later is not None
            else "api_key.still_accepted"
            if command.gateway_accepted
            else "api_key.denied_at_gateway",
            target_type="api_key",
            target_id=command.subject_id,
            after={**(command.gateway_proof or {}), "superseded_by": str(later)}
            if later is not None
            else command.gateway_proof,
        )
    return [command.subject_id for command in still_accepted]


def _superseded(session: Session, commands: list[StoreCommand]) -> dict[uuid.UUID, uuid.UUID]:
    """Those of these revocations whose key has a later revoke or restore (command id -> the
    later command's id): the gateway's answer no longer tells whether this revocation held."""
    if not commands:
        return {}
    later = aliased(StoreCommand)
    rows = session.execute(
        select(StoreCommand.id, later.id)
        .join(
            later,
            and_(
                later.subject_id == StoreCommand.subject_id,
                later.issued_at > StoreCommand.issued_at,
                later.command_type.in_((StoreCommandType.REVOKE, StoreCommandType.RESTORE)),
            ),
        )
        .where(StoreCommand.id.in_([c.id for c in commands]))
        .order_by(later.issued_at.desc())
    ).all()
    return {command_id: later_id for command_id, later_id in rows}


def _raise_still_accepted(session: Session, key_id: uuid.UUID, entry: dict[str, Any]) -> None:
    key = session.get(VirtualApiKey, key_id)
    if key is None:
        return  # gone from odock-sync's view meanwhile; the answer is audited above
    detail = {"name": key.name, "masked_value": key.masked_value, "proof": entry}
    review = _review_for(session, key)
    if review is None:
        # Revoked by no revocation with a review (a single key's revocation): a review of
        # its own, so the urgent finding and its alert have a home.
        desired = Desired(
            KIND_STILL_ACCEPTED, "api_key", key_id, Severity.URGENT, "investigate", detail=detail
        )
        open_access_review(
            session,
            organisation_id=key.organisation_id,
            cause=ReviewCause.KEY_STILL_ACCEPTED,
            desired=[desired],
            actor=GATEWAY_ACTOR,
            context={"key_id": str(key_id)},
        )
        return
    raise_urgent_finding(
        session,
        review=review,
        kind=KIND_STILL_ACCEPTED,
        subject_type="api_key",
        subject_id=key_id,
        detail=detail,
        actor=GATEWAY_ACTOR,
    )


def _review_for(session: Session, key: VirtualApiKey) -> RevocationReview | None:
    """The review of the revocation that disabled the key (opened now if the worker has not
    yet), else the newest review about the key."""
    if key.revoked_by_revocation_id is not None:
        review = review_of(session, key.revoked_by_revocation_id) or open_revocation_review(
            session, revocation_id=key.revoked_by_revocation_id, actor=GATEWAY_ACTOR
        )
        if review is not None:
            return review
    return latest_review_about(session, key.id)
