"""Invitations: invite, resend, revoke, refresh, expire, deliver and accept.

Every operation takes a session, writes an audit event and never commits. The link token is
never stored: only its SHA-256 hash and a per-send random nonce are, and the token is
re-derived from (secret key, invitation id, send number, nonce) when the email is built.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, false, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import audit, membership_locks, outbox, retry_lease, unique_rows
from models.access import Viewer, managed_team_ids, require_can_handle_team_role
from models.actions import lifecycle, provider_accounts, sign_in_audit
from models.actions.identities import link_identity
from models.actions.organisations import update_settings
from models.actions.provider_accounts import ProviderAccount
from models.actions.sign_in_audit import SignInMethod, SignInRefused
from models.actions.users import (
    create_user,
    edit_user,
    find_user_by_email,
    validate_email,
    validate_name,
)
from models.actor import Actor
from models.base import new_id, utcnow
from models.entities import (
    Invitation,
    InvitationDelivery,
    Organisation,
    PendingInvitation,
    Team,
    User,
)
from models.entities.user import email_key, same_email
from models.enums import (
    InvitationStatus,
    LeaverInvitationPolicy,
    Role,
    SignInPlace,
    Source,
    TeamRole,
    UserStatus,
)
from models.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    RateLimited,
)
from models.secrets import hash_secret

TASK_DELIVER = "invitations.deliver"
TOKEN_PREFIX = "inv_"  # noqa: S105 (a format marker)
TOKEN_PATTERN = re.compile(r"^inv_[A-Za-z0-9_-]{43}$")
MIN_LIFETIME_HOURS = 1
MAX_LIFETIME_HOURS = 30 * 24
MAX_TEAMS = 50
RESEND_WINDOW = timedelta(hours=24)
SEND_LEASE = timedelta(minutes=5)  # well above the SMTP timeout

PENDING = InvitationStatus.PENDING
ACCEPTED = InvitationStatus.ACCEPTED
EXPIRED = InvitationStatus.EXPIRED
REVOKED = InvitationStatus.REVOKED
ACCEPT_REFUSED = "user.invitation_accept_refused"


class InvitationUnknown(NotFound):
    """No invitation has this token (never issued, mistyped, replaced by a resend)."""

    code = "invitation_unknown"


class InvitationRevoked(Conflict):
    code = "invitation_revoked"


class InvitationUsed(Conflict):
    code = "invitation_used"


class InvitationExpired(Conflict):
    code = "invitation_expired"


class AccountExists(Conflict):
    """The invited email is already an ACTIVE or REVOKED person of the organisation: the
    accept is refused, audited (user.invitation_accept_refused) and nothing else kept, so the
    caller commits the refusal's audit."""

    def __init__(self, invitation: Invitation, user: User) -> None:
        super().__init__(
            f"{invitation.email} already has an account here ({user.status}); ask an administrator",
            current_status=user.status.value,
        )
        self.user_id = user.id
        self.status = user.status


class WrongAccount(Forbidden):
    """The signed-in email is not the invited email."""

    code = "wrong_account"


@dataclass(frozen=True)
class TeamInvite:
    team_id: uuid.UUID
    role: TeamRole = TeamRole.MEMBER


@dataclass(frozen=True)
class Issued:
    """An invitation and the link token of its current send (shown nowhere but the email)."""

    invitation: Invitation
    token: str


@dataclass(frozen=True)
class Accepted:
    invitation: Invitation
    user: User
    created: bool


# --- tokens --------------------------------------------------------------------------------


def link_token(secret_key: str, invitation: Invitation) -> str:
    """The link token of the invitation's current send, re-derived from committed data."""
    key = hashlib.sha256(b"odock-sync/invitation-link\0" + secret_key.encode()).digest()
    message = f"{invitation.id}:{invitation.send_count}:{invitation.token_nonce}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_well_formed(token: str) -> bool:
    return bool(TOKEN_PATTERN.match(token))


def _issue_token(invitation: Invitation, secret_key: str) -> str:
    if not secret_key:
        raise InvalidInput("the service has no secret key; invitations cannot be signed")
    invitation.token_nonce = secrets.token_hex(16)  # 128 fresh random bits per send
    token = link_token(secret_key, invitation)
    invitation.token_hash = hash_secret(token)
    return token


# --- who may do what ------------------------------------------------------------------------


def visible_invitations(viewer: Viewer) -> ColumnElement[bool]:
    """Admins see the organisation's invitations; managers the ones they sent; users none."""
    in_org = Invitation.organisation_id == viewer.organisation_id
    if viewer.is_admin:
        return in_org
    if viewer.is_manager and viewer.user_id is not None:
        return and_(in_org, Invitation.invited_by_user_id == viewer.user_id)
    return false()


def require_can_invite(viewer: Viewer) -> None:
    if not (viewer.is_admin or viewer.is_manager):
        raise Forbidden("only Organisation Admins and Managers can invite people")


def get_invitation(
    session: Session, viewer: Viewer, invitation_id: uuid.UUID, *, lock: bool = False
) -> Invitation:
    require_can_invite(viewer)
    query = select(Invitation).where(Invitation.id == invitation_id, visible_invitations(viewer))
    if lock:  # and re-read: a set-based expiry may have changed the row under this session
        query = query.with_for_update().execution_options(populate_existing=True)
    invitation = session.scalar(query)
    if invitation is None:
        raise NotFound("invitation not found")
    return invitation


def _check_inviter(
    session: Session, viewer: Viewer, role: Role, teams: Sequence[TeamInvite]
) -> list[TeamInvite]:
    """Admins invite any role; managers only Users, as members of teams they manage."""
    require_can_invite(viewer)
    if role is Role.SUPER_ADMIN:
        raise InvalidInput("SUPER_ADMIN is a platform role, not an organisation role", field="role")
    unique = _distinct_teams(teams)
    if len(unique) > MAX_TEAMS:
        raise InvalidInput(f"at most {MAX_TEAMS} teams per invitation", field="teams")
    # A manager's teams are read before the teams named: a team deleted between the two reads
    # is then not found, as if the deletion came first, instead of "not managed" (a 403 no
    # serial order gives).
    managed = set() if viewer.is_admin else managed_team_ids(session, viewer)
    for team in unique:
        found = session.get(Team, team.team_id)
        if found is None or found.organisation_id != viewer.organisation_id:
            raise NotFound(f"team {team.team_id} not found", field="teams")
    if viewer.is_admin:
        return unique
    if role is not Role.USER:
        raise Forbidden("a Manager can invite only people with the User role", field="role")
    if not unique:
        raise Forbidden("a Manager invites people into teams they manage; name one", field="teams")
    for team in unique:
        if team.team_id not in managed:
            raise Forbidden(f"you do not manage team {team.team_id}", field="teams")
        require_can_handle_team_role(viewer, team.role)
    return unique


def _distinct_teams(teams: Sequence[TeamInvite]) -> list[TeamInvite]:
    """Each team once. The same team with the same role twice says one thing and is kept
    once; with two roles the request is ambiguous (keeping one silently could invite a
    manager as a member, or the reverse), so it is refused, naming the team."""
    chosen: dict[uuid.UUID, TeamInvite] = {}
    for team in teams:
        earlier = chosen.setdefault(team.team_id, team)
        if earlier.role is not team.role:
            raise InvalidInput(
                f"team {team.team_id} is listed twice, as {earlier.role.value} and as "
                f"{team.role.value}; name each team once",
                field="teams",
                team_id=str(team.team_id),
            )
    return list(chosen.values())


# --- invite, resend, revoke, refresh ----------------------------------------------------------


def invite(
    session: Session,
    *,
    viewer: Viewer,
    email: str,
    role: Role,
    actor: Actor,
    secret_key: str,
    teams: Sequence[TeamInvite] = (),
    expires_in_hours: int | None = None,
    now: datetime | None = None,
) -> Issued:
    """Invite an email with a role (and teams); the email goes out after commit."""
    now = now or utcnow()
    email = validate_email(email)
    chosen = _check_inviter(session, viewer, role, teams)
    organisation = viewer.organisation(session)
    lifetime = _lifetime(organisation, expires_in_hours)
    _check_invitable(session, organisation.id, email, now=now, actor=actor)
    invitation = Invitation(
        id=new_id(),
        organisation_id=organisation.id,
        email=email,
        email_key=email_key(email),
        role=role,
        teams=[{"team_id": str(t.team_id), "role": t.role.value} for t in chosen],
        status=PENDING,
        send_count=1,
        expires_at=now + lifetime,
        invited_by_user_id=viewer.user_id,
        invited_by_name=_inviter_name(session, viewer, actor),
        last_sent_at=now,
        resend_count=0,
        resends_in_window=0,
    )
    token = _issue_token(invitation, secret_key)
    # A concurrent invite of the same email may win meanwhile: then a Conflict.
    with unique_rows.claimed(
        session, lambda: Conflict(f"{email} already has a pending invitation", field="email")
    ):
        session.add(invitation)
        session.flush()
        _hold_email(session, invitation)
    _audit(session, invitation, actor, "invitation.created", before=None)
    outbox.enqueue(session, TASK_DELIVER, invitation_id=str(invitation.id), send_number=1)
    return Issued(invitation=invitation, token=token)


def resend(
    session: Session,
    *,
    viewer: Viewer,
    invitation_id: uuid.UUID,
    actor: Actor,
    secret_key: str,
    now: datetime | None = None,
) -> Issued:
    """A fresh token and expiry on the same row; the old link stops working at once."""
    invitation = get_invitation(session, viewer, invitation_id, lock=True)
    # The clock is read once the row is ours: read before, a resend that waited for another
    # found the invitation sent after its own "now" and was refused as too soon.
    now = now or utcnow()
    if invitation.status in (ACCEPTED, REVOKED):
        raise InvalidTransition(
            f"a {invitation.status} invitation cannot be resent",
            current_status=invitation.status.value,
        )
    organisation = session.get_one(Organisation, invitation.organisation_id)
    if effective_status(invitation, now) is EXPIRED:
        _check_invitable(
            session, organisation.id, invitation.email, now=now, actor=actor, ignore=invitation.id
        )
    _check_resend_rate(invitation, organisation, now)
    before = snapshot(invitation, now)
    reopened = invitation.status is EXPIRED
    invitation.status = PENDING
    invitation.send_count += 1
    invitation.resend_count += 1
    invitation.resends_in_window += 1
    invitation.last_sent_at = now
    invitation.expires_at = now + timedelta(hours=organisation.settings.invitation_lifetime_hours)
    invitation.updated_at = now
    token = _issue_token(invitation, secret_key)
    email = invitation.email
    with unique_rows.claimed(
        session, lambda: Conflict(f"{email} already has a pending invitation")
    ):
        if reopened:
            session.flush()
            _hold_email(session, invitation)
    _audit(session, invitation, actor, "invitation.resent", before=before)
    outbox.enqueue(
        session,
        TASK_DELIVER,
        invitation_id=str(invitation.id),
        send_number=invitation.send_count,
    )
    return Issued(invitation=invitation, token=token)


def revoke(
    session: Session,
    *,
    viewer: Viewer,
    invitation_id: uuid.UUID,
    actor: Actor,
    now: datetime | None = None,
) -> Invitation:
    """Kill the link for good; an accepted invitation is history and cannot be revoked."""
    invitation = get_invitation(session, viewer, invitation_id, lock=True)
    now = now or utcnow()
    if invitation.status in (ACCEPTED, REVOKED):
        raise InvalidTransition(
            f"a {invitation.status} invitation cannot be revoked",
            current_status=invitation.status.value,
        )
    before = snapshot(invitation, now)
    invitation.status = REVOKED
    invitation.revoked_at = now
    invitation.updated_at = now
    _release_emails(session, [invitation.id])
    _audit(session, invitation, actor, "invitation.revoked", before=before)
    return invitation


def set_leaver_policy(
    session: Session, *, organisation: Organisation, policy: LeaverInvitationPolicy, actor: Actor
) -> None:
    """Whether revoking a person also revokes the invitations they sent (the default)."""
    update_settings(
        session,
        organisation=organisation,
        changes={"leaver_invitation_policy": policy},
        actor=actor,
    )


def revoke_sent_by(
    session: Session, *, inviter: User, actor: Actor, now: datetime | None = None
) -> list[Invitation]:
    """Kill the links of every invitation this person sent that is still pending (a leaver
    cannot keep bringing people in); each one audited as a revocation."""
    now = now or utcnow()
    pending = session.scalars(
        select(Invitation)
        .where(Invitation.invited_by_user_id == inviter.id, Invitation.status == PENDING)
        .order_by(Invitation.created_at)
        .with_for_update()
    ).all()
    for invitation in pending:
        before = snapshot(invitation, now)
        invitation.status = REVOKED
        invitation.revoked_at = now
        invitation.updated_at = now
        _audit(
            session,
            invitation,
            actor,
            "invitation.revoked",
            before=before,
            extra={"reason": "the inviter's access was revoked"},
        )
    _release_emails(session, [invitation.id for invitation in pending])
    return list(pending)


def refresh(
    session: Session,
    *,
    viewer: Viewer,
    invitation_ids: Sequence[uuid.UUID],
    actor: Actor,
    now: datetime | None = None,
) -> list[Invitation]:
    """The current status of each invitation; overdue pending ones become expired now."""
    require_can_invite(viewer)
    now = now or utcnow()
    visible = list(
        session.scalars(
            select(Invitation.id).where(
                Invitation.id.in_(invitation_ids), visible_invitations(viewer)
            )
        )
    )
    if visible:
        expire_overdue(session, now=now, limit=len(visible), actor=actor, only_ids=visible)
    found = session.scalars(
        select(Invitation)
        .where(Invitation.id.in_(visible))
        .execution_options(populate_existing=True)
    )
    by_id = {invitation.id: invitation for invitation in found}
    return [by_id[i] for i in invitation_ids if i in by_id]


def expire_overdue(
    session: Session,
    *,
    now: datetime,
    limit: int,
    actor: Actor,
    only_ids: Sequence[uuid.UUID] | None = None,
) -> int:
    """Expire one batch of overdue pending invitations, set-based; how many it expired.

    One audit event per organisation in the batch lists the ids. The caller commits between
    batches so no lock is held for long. The UPDATE re-checks the status, so a row that a
    concurrent run (or an accept) changed first is left alone and not reported: each
    invitation is expired, and audited, exactly once.
    """
    candidates = (
        select(PendingInvitation.invitation_id)
        .join(Invitation, Invitation.id == PendingInvitation.invitation_id)
        .where(_overdue(now))
        .limit(limit)
    )
    if only_ids is not None:
        candidates = candidates.where(PendingInvitation.invitation_id.in_(only_ids))
    rows = session.execute(
        update(Invitation)
        .where(Invitation.id.in_(candidates.scalar_subquery()), _overdue(now))
        .values(status=EXPIRED, updated_at=now)
        .returning(Invitation.id, Invitation.organisation_id)
        .execution_options(synchronize_session=False)
    ).all()
    _release_emails(session, [invitation_id for invitation_id, _ in rows])
    by_organisation: dict[uuid.UUID, list[str]] = defaultdict(list)
    for invitation_id, organisation_id in rows:
        by_organisation[organisation_id].append(str(invitation_id))
    for organisation_id, ids in by_organisation.items():
        audit.record(
            session,
            actor=actor,
            organisation_id=organisation_id,
            action="invitation.expired",
            target_type="invitation_batch",
            target_id=new_id(),
            before={"status": PENDING.value},
            after={"status": EXPIRED.value, "count": len(ids), "ids": ids},
        )
    return len(rows)


# A pending_invitations row takes about 80 bytes: a page of 8 kB lists about a hundred.
PENDING_PER_PAGE = 100


def pending_pages(session: Session) -> int:
    """PostgreSQL: how many pages pending_invitations has (the expiry sweep walks them)."""
    return int(
        session.scalar(
            text(
                "SELECT pg_relation_size('pending_invitations') "
                "/ current_setting('block_size')::integer"
            )
        )
        or 0
    )


# One statement per batch on PostgreSQL: the pending rows stored on a range of pages (read in
# physical order, which is the order the invitations were written in, so each invitations page
# is rewritten once), their overdue invitations updated through the primary key (a join here
# lets the planner scan all of invitations per batch), the pending rows of those released, and
# one audit event per organisation written from the updated rows.
_EXPIRE_PAGES_SQL = text(
    """
    WITH listed AS MATERIALIZED (
        SELECT ctid AS pending_row, invitation_id AS id FROM pending_invitations
        WHERE ctid >= CAST(:first AS tid) AND ctid < CAST(:end AS tid)
    ), expired AS (
        UPDATE invitations SET status = 'expired', updated_at = :now
        WHERE id = ANY(ARRAY(SELECT id FROM listed))
          AND status = 'pending' AND expires_at <= :now
        RETURNING id, organisation_id
    ), released AS (
        DELETE FROM pending_invitations
        WHERE ctid = ANY(ARRAY(SELECT pending_row FROM listed JOIN expired USING (id)))
    ), audited AS (
        INSERT INTO audit_events (id, organisation_id, occurred_at, source, actor, action,
                                  target_type, target_id, before, after)
        SELECT gen_random_uuid(), organisation_id, :now, :source, :actor, 'invitation.expired',
               'invitation_batch', gen_random_uuid()::text, CAST('{"status": "pending"}' AS json),
               json_build_object('status', 'expired', 'count', count(*),
                                 'ids', json_agg(CAST(id AS text)))
        FROM expired GROUP BY organisation_id
        RETURNING CAST(after ->> 'count' AS integer) AS expired
    )
    SELECT COALESCE(SUM(expired), 0) FROM audited
    """
)


def expire_overdue_on_pages(
    session: Session, *, now: datetime, actor: Actor, first_page: int, pages: int
) -> int:
    """PostgreSQL: expire the overdue invitations listed on pages [first_page, first_page +
    pages) of pending_invitations, as expire_overdue does, in one statement; how many."""
    expired = session.scalar(
        _EXPIRE_PAGES_SQL,
        {
            "now": now,
            "first": f"({first_page},0)",
            "end": f"({first_page + pages},0)",
            "source": actor.source.value,
            "actor": str(actor),
        },
    )
    return int(expired or 0)


def _overdue(now: datetime) -> ColumnElement[bool]:
    return (Invitation.status == PENDING) & (Invitation.expires_at <= now)


def _hold_email(session: Session, invitation: Invitation) -> None:
    """Mark the invitation pending; an IntegrityError if its email already has one here."""
    session.execute(
        insert(PendingInvitation).values(
            invitation_id=invitation.id,
            organisation_id=invitation.organisation_id,
            email_key=invitation.email_key,
        )
    )


def _release_emails(session: Session, invitation_ids: Sequence[uuid.UUID]) -> None:
    """These invitations are no longer pending (in the transaction that changes their status)."""
    if invitation_ids:
        session.execute(
            delete(PendingInvitation).where(PendingInvitation.invitation_id.in_(invitation_ids))
        )


# --- acceptance ------------------------------------------------------------------------------


def find_by_token(
    session: Session, token: str, organisation_id: uuid.UUID | None = None
) -> Invitation:
    """The invitation behind a link token; another organisation's is simply unknown."""
    if not is_well_formed(token):
        raise InvitationUnknown("this invitation link is not valid")
    invitation = session.scalar(
        select(Invitation).where(Invitation.token_hash == hash_secret(token))
    )
    if invitation is None or (
        organisation_id is not None and invitation.organisation_id != organisation_id
    ):
        raise InvitationUnknown("this invitation link is not valid")
    return invitation


def check_acceptable(invitation: Invitation, *, email: str | None, now: datetime) -> None:
    """The fixed order: (token known,) not revoked, not accepted, not expired, email matches."""
    if invitation.status is REVOKED:
        raise InvitationRevoked("this invitation was revoked")
    if invitation.status is ACCEPTED:
        raise InvitationUsed("this invitation has already been used")
    if effective_status(invitation, now) is EXPIRED:
        raise InvitationExpired(
            "this invitation has expired", expired_at=_iso(invitation.expires_at)
        )
    if email is not None and not is_invited_email(invitation, email):
        raise WrongAccount("you are signed in with a different email than the one invited")


def is_invited_email(invitation: Invitation, email: str) -> bool:
    """Whether someone signed in as `email` (by any sign-in: proxy header, OpenID Connect)
    is the person invited."""
    return same_email(email, invitation.email)


def accept_invitation(
    session: Session,
    *,
    token: str,
    email: str,
    name: str,
    organisation_id: uuid.UUID | None = None,
    now: datetime | None = None,
    account: ProviderAccount | None = None,
) -> Accepted:
    """Complete an invitation once: the user is created (or a PENDING one linked) with its role
    and teams; PENDING again if the organisation requires approval. `account` is who signed
    in at the organisation's OpenID Connect provider: bound to the person as a console
    sign-in binds it (SignInRefused if they are bound to another account there). An email
    that is already an ACTIVE or REVOKED person is refused (AccountExists): only the
    refusal's audit event is left for the caller to commit."""
    now = now or utcnow()
    invitation = find_by_token(session, token, organisation_id)
    check_acceptable(invitation, email=email, now=now)
    name = validate_name(name)
    try:
        with session.begin_nested():
            return _accept(session, invitation, token=token, name=name, now=now, account=account)
    except AccountExists as refused:
        _audit_refused(session, invitation, refused, email=email)
        raise


def _accept(
    session: Session,
    invitation: Invitation,
    *,
    token: str,
    name: str,
    now: datetime,
    account: ProviderAccount | None,
) -> Accepted:
    existing = find_user_by_email(session, invitation.organisation_id, invitation.email)
    if existing is not None and existing.status is not UserStatus.PENDING:
        # A concurrent accept of this very invitation may have just created that user.
        session.refresh(invitation)
        check_acceptable(invitation, email=None, now=now)
        raise AccountExists(invitation, existing)
    _claim(session, invitation, token, now)
    # The teams it joins, then the person (models.membership_locks): a SCIM group write
    # holding one of those teams and locking this person for a role its mapping grants would
    # otherwise wait for this accept while the accept, holding the person, waited for it.
    membership_locks.lock_for_membership_change(
        session,
        teams=[uuid.UUID(entry["team_id"]) for entry in invitation.teams],
        people=[existing.id] if existing is not None else [],
    )
    if existing is not None and existing.status is not UserStatus.PENDING:
        # Read again under their lock: declined (or otherwise changed) since it was read
        # above, the accept refuses them as it would have had it come after.
        raise AccountExists(invitation, existing)
    actor = Actor(Source.INVITATION, f"invitee {invitation.email}")
    organisation = session.get_one(Organisation, invitation.organisation_id)
    if existing is None:
        user = create_user(
            session,
            organisation=organisation,
            email=invitation.email,
            name=name,
            role=invitation.role,
            actor=actor,
        )
    else:
        user = edit_user(session, user=existing, actor=actor, name=name, role=invitation.role)
    actor = Actor(Source.INVITATION, actor.name, user.id)
    link_identity(
        session, user=user, source=Source.INVITATION, external_id=str(invitation.id), actor=actor
    )
    if account is not None:
        provider_accounts.check(session, user=user, account=account, actor=actor)
    if existing is not None and not organisation.settings.approval_required:
        lifecycle.approve(session, user=user, actor=actor)  # its audit names the invitation
    joined, missing = _join_teams(session, invitation, user, actor)
    invitation.status = ACCEPTED
    invitation.accepted_at = now
    invitation.accepted_by_user_id = user.id
    invitation.updated_at = now
    _audit(
        session,
        invitation,
        actor,
        "invitation.accepted",
        before={"status": PENDING.value},
        extra={
            "user_id": str(user.id),
            "user_status": user.status.value,
            "teams_joined": joined,
            "teams_missing": missing,
        },
    )
    return Accepted(invitation=invitation, user=user, created=existing is None)


def _audit_refused(
    session: Session, invitation: Invitation, refused: AccountExists, *, email: str
) -> None:
    """The refused accept on the person it would have changed (their audit trail shows it),
    written after the accept's own writes were rolled back."""
    audit.record(
        session,
        actor=Actor(Source.INVITATION, f"invitee {email}"),
        organisation_id=invitation.organisation_id,
        action=ACCEPT_REFUSED,
        target_type="user",
        target_id=refused.user_id,
        after={
            "invitation_id": str(invitation.id),
            "email": email,
            "user_status": refused.status.value,
            "reason": "account_exists",
        },
    )


def accept_signed_in(
    session: Session,
    *,
    token: str,
    email: str,
    name: str,
    account: ProviderAccount | None,
) -> Accepted:
    """accept_invitation from the enrollment pages, by whoever is signed in there (`account`:
    who signed in at the organisation's provider; None behind a sign-in proxy). An account the
    person is not bound to is refused: nothing of the attempt is kept, the refusal is audited
    (enrollment.sign_in_refused), and SignInRefused raised for the caller to commit and show."""
    invitation_id = find_by_token(session, token).id
    try:
        return accept_invitation(session, token=token, email=email, name=name, account=account)
    except SignInRefused as refused:
        sign_in_audit.refused(
            session,
            refused,
            place=SignInPlace.ENROLLMENT,
            method=SignInMethod.OIDC,
            invitation_id=invitation_id,
        )
        raise


def _claim(session: Session, invitation: Invitation, token: str, now: datetime) -> None:
    """Single use under concurrency: only one transaction moves pending -> accepted."""
    claimed = session.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation.id,
            Invitation.status == PENDING,
            Invitation.token_hash == hash_secret(token),
            Invitation.expires_at > now,
        )
        .values(status=ACCEPTED, accepted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        _release_emails(session, [invitation.id])
        return
    session.refresh(invitation)
    if invitation.token_hash != hash_secret(token):
        raise InvitationUnknown("this invitation link is not valid")
    check_acceptable(invitation, email=None, now=now)
    raise InvitationUsed("this invitation has already been used")


def _join_teams(
    session: Session, invitation: Invitation, user: User, actor: Actor
) -> tuple[list[str], list[str]]:
    from models.actions.teams import add_to_team, get_membership

    joined: list[str] = []
    missing: list[str] = []
    for entry in invitation.teams:
        team = session.get(Team, uuid.UUID(entry["team_id"]))
        if team is None or team.organisation_id != invitation.organisation_id:
            missing.append(entry["team_id"])
            continue
        role = TeamRole(entry.get("role", TeamRole.MEMBER.value))
        current = get_membership(session, team, user)
        if current is None or role is TeamRole.MANAGER:  # an invitation never demotes a manager
            add_to_team(
                session, team=team, user=user, role=role, actor=actor, source=Source.INVITATION
            )
        joined.append(entry["team_id"])
    return joined, missing


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPlan:
    """Everything one email needs, as plain values (no session needed to send it)."""

    invitation_id: uuid.UUID
    organisation_id: uuid.UUID
    send_number: int
    attempt: int
    to: str
    token: str | None  # None when SECRET_KEY changed since the send was issued
    organisation: str
    role: str
    inviter: str
    expires_at: datetime


def plan_delivery(
    session: Session,
    *,
    invitation_id: uuid.UUID,
    send_number: int,
    secret_key: str,
    now: datetime | None = None,
) -> DeliveryPlan | None:
    """What to send for this send of the invitation, or None when there is nothing to send:
    the invitation is gone or finished (expired by the clock too, before the expiry beat
    marks it: its link is dead), a newer send superseded this one, or it was sent."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None or effective_status(invitation, now or utcnow()) is not PENDING:
        return None
    if invitation.send_count != send_number or already_sent(session, invitation_id, send_number):
        return None
    token: str | None = link_token(secret_key, invitation)
    if hash_secret(token or "") != invitation.token_hash:
        token = None  # the secret key changed since this send: the link cannot be rebuilt
    organisation = session.get_one(Organisation, invitation.organisation_id)
    attempts = session.scalar(
        select(func.count(InvitationDelivery.id)).where(
            InvitationDelivery.invitation_id == invitation_id,
            InvitationDelivery.send_number == send_number,
        )
    )
    return DeliveryPlan(
        invitation_id=invitation.id,
        organisation_id=invitation.organisation_id,
        send_number=send_number,
        attempt=(attempts or 0) + 1,
        to=invitation.email,
        token=token,
        organisation=organisation.name,
        role=invitation.role.value,
        inviter=invitation.invited_by_name or "an administrator",
        expires_at=invitation.expires_at,
    )


def already_sent(session: Session, invitation_id: uuid.UUID, send_number: int) -> bool:
    return (
        session.scalar(
            select(InvitationDelivery.id).where(
                InvitationDelivery.invitation_id == invitation_id,
                InvitationDelivery.send_number == send_number,
                InvitationDelivery.status == "sent",
            )
        )
        is not None
    )


class SendInProgress(Exception):
    """Another attempt holds this send's claim until `until`: try again later. It may be
    sending now (`sending`: it may end any moment), or it may have sent and failed to record
    how it ended (the database went away); once its lease is over the claim is taken over, so
    the send is never dropped. Not `sending`: a failed attempt waits out its backoff until
    `until`, and nothing happens before then."""

    def __init__(self, until: datetime, *, sending: bool = True) -> None:
        held = "claimed by another attempt" if sending else "waiting out its backoff"
        super().__init__(f"this send is {held} until {until.isoformat()}")
        self.until, self.sending = until, sending


def claim_send(session: Session, *, plan: DeliveryPlan, now: datetime) -> uuid.UUID | None:
    """Claim this send before talking to SMTP; None when it was sent already.

    A live claim of another attempt raises SendInProgress; a claim older than the lease
    belongs to a worker that died mid-send (or never recorded its end) and is taken over. A
    failed attempt keeps the send until its next attempt is due (`finish_send`): a copy of
    the task before then (the outbox relay's re-send) raises SendInProgress too.
    """
    current = session.scalar(
        select(InvitationDelivery).where(
            InvitationDelivery.invitation_id == plan.invitation_id,
            InvitationDelivery.send_number == plan.send_number,
            InvitationDelivery.status.in_(("sending", "sent")),
        )
    )
    if current is not None:
        if current.status == "sent":
            return None
        if current.occurred_at > now - SEND_LEASE:
            raise SendInProgress(until=current.occurred_at + SEND_LEASE)
        abandoned = session.execute(
            update(InvitationDelivery)
            .where(InvitationDelivery.id == current.id, InvitationDelivery.status == "sending")
            .values(status="failed", detail="abandoned: the worker stopped during the send")
        )
        if abandoned.rowcount != 1:  # type: ignore[attr-defined]
            return None
    elif (due := _next_attempt_due(session, plan)) is not None and due > now:
        raise SendInProgress(until=due, sending=False)
    delivery = InvitationDelivery(
        id=new_id(),
        invitation_id=plan.invitation_id,
        send_number=plan.send_number,
        attempt=plan.attempt,
        status="sending",
        recipient=plan.to,
        occurred_at=now,
    )
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:  # another worker claimed it a moment ago
        return None
    return delivery.id


def _next_attempt_due(session: Session, plan: DeliveryPlan) -> datetime | None:
    """When the last failed attempt of this send let the next one go (None: at once)."""
    return session.scalar(
        select(InvitationDelivery.retry_at)
        .where(
            InvitationDelivery.invitation_id == plan.invitation_id,
            InvitationDelivery.send_number == plan.send_number,
            InvitationDelivery.status == "failed",
        )
        .order_by(InvitationDelivery.attempt.desc())
        .limit(1)
    )


def finish_send(
    session: Session,
    *,
    delivery_id: uuid.UUID,
    status: str,
    detail: str = "",
    retry_base: float = 0.0,
    retry_max: float = 0.0,
    now: datetime | None = None,
) -> float | None:
    """Record how the claimed attempt ended: sent, failed (retried) or rejected. A failed
    attempt keeps the send until its next attempt is due (models.retry_lease): the seconds
    until then are returned, None when there is nothing to retry."""
    delivery = session.get_one(InvitationDelivery, delivery_id)
    delivery.status = status
    delivery.detail = detail[:1000]
    wait = None
    if status == "failed":
        wait, delivery.retry_at = retry_lease.held_after_failure(
            now or utcnow(), delivery.attempt, retry_base=retry_base, retry_max=retry_max
        )
    invitation = session.get_one(Invitation, delivery.invitation_id)
    audit.record(
        session,
        actor=Actor.system("invitations.deliver"),
        organisation_id=invitation.organisation_id,
        action=f"invitation.delivery_{status}",
        target_type="invitation",
        target_id=invitation.id,
        after={"send_number": delivery.send_number, "attempt": delivery.attempt, "detail": detail},
    )
    return wait


# --- helpers ---------------------------------------------------------------------------------


def effective_status(invitation: Invitation, now: datetime) -> InvitationStatus:
    """What the invitation is now: a pending one past its expiry is expired already."""
    if invitation.status is PENDING and invitation.expires_at <= now:
        return EXPIRED
    return invitation.status


def status_condition(status: InvitationStatus, now: datetime) -> ColumnElement[bool]:
    """A WHERE clause matching the effective status."""
    if status is PENDING:  # found through pending_invitations (by organisation, indexed)
        listed = select(PendingInvitation.invitation_id).where(
            PendingInvitation.invitation_id == Invitation.id,
            PendingInvitation.organisation_id == Invitation.organisation_id,
        )
        return listed.exists() & (Invitation.expires_at > now)
    if status is EXPIRED:
        return or_(
            Invitation.status == EXPIRED,
            (Invitation.status == PENDING) & (Invitation.expires_at <= now),
        )
    return Invitation.status == status


def snapshot(invitation: Invitation, now: datetime | None = None) -> dict[str, object]:
    return {
        "id": str(invitation.id),
        "email": invitation.email,
        "role": invitation.role.value,
        "teams": invitation.teams,
        "status": effective_status(invitation, now or utcnow()).value,
        "expires_at": _iso(invitation.expires_at),
        "send_count": invitation.send_count,
        "resend_count": invitation.resend_count,
    }


def _inviter_name(session: Session, viewer: Viewer, actor: Actor) -> str:
    inviter = session.get(User, viewer.user_id) if viewer.user_id else None
    return f"{inviter.name} ({inviter.email})" if inviter else str(actor)


def _lifetime(organisation: Organisation, hours: int | None) -> timedelta:
    if hours is None:
        hours = organisation.settings.invitation_lifetime_hours
    if not MIN_LIFETIME_HOURS <= hours <= MAX_LIFETIME_HOURS:
        raise InvalidInput(
            f"expiry must be {MIN_LIFETIME_HOURS} to {MAX_LIFETIME_HOURS} hours (up to 30 days)",
            field="expires_in_hours",
        )
    return timedelta(hours=hours)


def _check_invitable(
    session: Session,
    organisation_id: uuid.UUID,
    email: str,
    *,
    now: datetime,
    actor: Actor,
    ignore: uuid.UUID | None = None,
) -> None:
    """409 for an email that is already someone here, or already has a pending invitation."""
    user = find_user_by_email(session, organisation_id, email)
    if user is not None and user.status is UserStatus.ACTIVE:
        raise Conflict(f"{email} is already an ACTIVE user", field="email", user_id=str(user.id))
    if user is not None and user.status is UserStatus.REVOKED:
        raise Conflict(
            f"{email} belongs to a REVOKED user; reactivate them instead",
            field="email",
            user_id=str(user.id),
        )
    pending = session.scalar(
        select(Invitation).where(
            Invitation.organisation_id == organisation_id,
            Invitation.email_key == email_key(email),
            Invitation.status == PENDING,
            Invitation.id != ignore if ignore else Invitation.id.is_not(None),
        )
    )
    if pending is None:
        return
    if pending.expires_at > now:
        raise Conflict(
            f"{email} already has a pending invitation",
            field="email",
            invitation_id=str(pending.id),
        )
    # Overdue but not yet swept by the expiry task: expire it now so the new one can exist.
    expire_overdue(session, now=now, limit=1, actor=actor, only_ids=[pending.id])
    session.refresh(pending)


def _check_resend_rate(invitation: Invitation, organisation: Organisation, now: datetime) -> None:
    policy = organisation.settings
    if invitation.last_sent_at is not None:
        wait = invitation.last_sent_at + timedelta(seconds=policy.resend_cooldown_seconds) - now
        if wait.total_seconds() > 0:
            raise RateLimited(
                "this invitation was sent moments ago; wait before resending",
                retry_after=math.ceil(wait.total_seconds()),
            )
    start = invitation.resend_window_started_at
    if start is None or now - start >= RESEND_WINDOW:
        invitation.resend_window_started_at = now
        invitation.resends_in_window = 0
        return
    if invitation.resends_in_window >= policy.resend_daily_cap:
        wait = start + RESEND_WINDOW - now
        raise RateLimited(
            f"this invitation was resent {invitation.resends_in_window} times in 24 hours, "
            "the organisation's cap",
            retry_after=max(1, math.ceil(wait.total_seconds())),
        )


def _audit(
    session: Session,
    invitation: Invitation,
    actor: Actor,
    action: str,
    *,
    before: dict[str, object] | None,
    extra: dict[str, object] | None = None,
) -> None:
    audit.record_change(
        session,
        actor=actor,
        subject=invitation,
        action=action,
        target_type="invitation",
        before=before,
        after={**snapshot(invitation), **(extra or {})},
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
