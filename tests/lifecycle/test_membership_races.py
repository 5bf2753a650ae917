"""Team memberships written by two sources at once compose as if one came after the other,
with no deadlock: the LDAP/AD sync applying a plan, a SCIM group write, an admin's change.

Each race is two transactions on the live database, in threads, forced into the interleaving
that went wrong: the first takes its locks (and on PostgreSQL waits until the second is
waiting for one of them), then goes on and commits. The final memberships must be those of
the first then the second, and neither may fail (before models.membership_locks, one was
PostgreSQL's deadlock victim, 40P01, or updated a membership removed meanwhile). On SQLite
the second cannot even begin while the first writes (BEGIN IMMEDIATE): the same serial end.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from connectors.ldap.plan import Plan, Revoke, TeamAdd, TeamRemove, Update
from connectors.scim.fields import ScimEmailValue, ScimGroupFields, ScimUserFields
from connectors.scim.member_patch import member_steps
from models import person_lock
from models.access import Viewer
from models.actions import idp_events, invitations, lifecycle, mass_change
from models.actions import scim as scim_actions
from models.actions import teams as team_actions
from models.actions.directory_connectors import create_connector
from models.actions.identities import link_identity
from models.actor import Actor
from models.db import SessionFactory, make_session_factory
from models.directory.apply import apply_directory_plan
from models.entities import (
    AuditEvent,
    DirectoryConnector,
    Invitation,
    Organisation,
    ReceivedDelivery,
    ScimUser,
    Team,
    TeamMembership,
    User,
)
from models.enums import InvitationStatus, Role, Source, TeamRole, UserStatus
from models.settings import Settings
from tests.events import okta_payloads as okta
from tests.support import factories as f
from tests.support.parallel import in_parallel
from tests.support.wait import wait_until

SCIM = Actor(Source.SCIM, "scim")
LDAP = Actor(Source.LDAP, "ldap:corp")
ADMIN = Actor(Source.ADMIN, "admin:ann@example.com")


@dataclass
class Person:
    user_id: uuid.UUID
    scim_id: str
    ldap_id: str
    email: str


@dataclass
class World:
    org: Organisation
    connector: DirectoryConnector
    group: Team  # a SCIM group
    people: list[Person]


def make_world(session: Session, settings: Settings) -> World:
    """Two people provisioned by SCIM and linked to an LDAP directory too (a person whom
    both sources manage), a SCIM group none of them is in yet; committed."""
    org = f.make_org(session)
    connector = create_connector(
        session,
        organisation=org,
        fields={"name": "corp", "server_urls": ["ldap://127.0.0.1:389"], "base_dn": "dc=x"},
        bind_password=None,
        settings=settings,
        actor=f.SETUP,
    )
    mass_change.set_thresholds(session, organisation=org, actor=f.SETUP, enabled=False)
    people = []
    for n in range(2):
        email = f"p{n}-{org.slug}@example.com"
        fields = ScimUserFields(user_name=email, emails=(ScimEmailValue(email, primary=True),))
        scim_user = scim_actions.create_scim_user(
            session, organisation=org, fields=fields, actor=SCIM
        )
        ldap_id = f"ldap-{uuid.uuid4()}"
        link_identity(
            session,
            user=scim_user.user,
            source=Source.LDAP,
            external_id=ldap_id,
            actor=f.SETUP,
            attributes={"dn": f"uid={ldap_id},dc=x"},
            connector_id=connector.id,
        )
        session.flush()
        people.append(Person(scim_user.user_id, str(scim_user.id), ldap_id, email))
    group = team_actions.create_team(
        session, organisation=org, name="Engineering", actor=SCIM, external_source=Source.SCIM
    )
    session.commit()
    return World(org, connector, group, people)


class Race:
    """Two transactions (or more): `first` takes its locks and then waits until `second` waits
    for one of them (or is done), then goes on and commits; `second` begins once `first` holds
    them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # No relay after commit: nothing here is for a worker, and on SQLite it would wait.
        self.sessions: SessionFactory = make_session_factory(engine)
        self.errors: list[BaseException] = []

    def run(
        self,
        first_locks: Callable[[Session], None],
        first_rest: Callable[[Session], None],
        *seconds: Callable[[Session], None],
        in_turn: bool = False,
    ) -> None:
        """Each of `seconds` in a transaction of its own; `first` goes on once every one of
        them waits for a lock (or is done). `in_turn`: each of `seconds` begins only once
        the one before it waits for a lock (or is done), not all at once."""
        held = threading.Event()
        done = [threading.Event() for _ in seconds]
        pids: list[list[int]] = [[] for _ in seconds]

        def one() -> None:
            try:
                with self.sessions() as own:
                    first_locks(own)
                    held.set()
                    wait_until(
                        lambda: all(
                            d.is_set() or self._waiting(pid)
                            for d, pid in zip(done, pids, strict=True)
                        ),
                        timeout=60,
                        what="the other transactions waiting for a lock",
                    )
                    first_rest(own)
                    own.commit()
            except BaseException as exc:
                self.errors.append(exc)
                held.set()

        def two(turn: int) -> None:
            second, pid, d = seconds[turn], pids[turn], done[turn]
            try:
                assert held.wait(60)
                if in_turn and turn > 0:
                    wait_until(
                        lambda: done[turn - 1].is_set() or self._waiting(pids[turn - 1]),
                        timeout=60,
                        what="the transaction before waiting for a lock",
                    )
                with self.sessions() as own:
                    if own.get_bind().dialect.name == "postgresql":
                        pid.append(own.scalar(text("SELECT pg_backend_pid()")) or 0)
                    second(own)
                    own.commit()
            except BaseException as exc:
                self.errors.append(exc)
            finally:
                d.set()

        others = [functools.partial(two, turn) for turn in range(len(seconds))]
        in_parallel([one, *others])
        assert self.errors == [], [repr(error) for error in self.errors]

    def _waiting(self, pid: list[int]) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True  # SQLite: the second cannot even begin while the first writes
        if not pid:
            return False
        with self.engine.connect() as connection:
            return bool(
                connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE pid = :pid AND wait_event_type = 'Lock'"
                    ),
                    {"pid": pid[0]},
                )
            )


@pytest.fixture
def race(engine: Engine) -> Race:
    return Race(engine)


def lock_group(world: World) -> Callable[[Session], None]:
    """What a SCIM write of the group does first (webhooks.scim_provider): lock it."""

    def lock(own: Session) -> None:
        scim_actions.get_scim_group(own, world.org.id, str(world.group.id), for_update=True)

    return lock


def scim_patch(world: World, op: str, person: Person) -> Callable[[Session], None]:
    """A member PATCH of the group (Okta's and Entra ID's pushes), its group locked already."""

    def patch(own: Session) -> None:
        team = own.get_one(Team, world.group.id)
        if op == "add":
            step = {"op": "add", "path": "members", "value": [{"value": person.scim_id}]}
        else:
            step = {"op": "remove", "path": f'members[value eq "{person.scim_id}"]'}
        steps = member_steps([step])
        assert steps is not None
        scim_actions.patch_scim_group_members(own, team=team, steps=steps, actor=SCIM)
        own.flush()

    return patch


def ldap_apply(world: World, plan: Plan) -> Callable[[Session], None]:
    def apply(own: Session) -> None:
        connector = own.get_one(DirectoryConnector, world.connector.id)
        applied = apply_directory_plan(own, connector=connector, plan=plan, actor=LDAP)
        assert applied.errors == []
        own.flush()

    return apply


def admin_sets_role(
    world: World, team_id: uuid.UUID, person: Person, role: TeamRole
) -> Callable[[Session], None]:
    def put(own: Session) -> None:
        team = own.get_one(Team, team_id)
        user = own.get_one(User, person.user_id)
        team_actions.add_to_team(own, team=team, user=user, role=role, actor=ADMIN)
        own.flush()

    return put


def members(session: Session, team_id: uuid.UUID) -> dict[uuid.UUID, tuple[TeamRole, Source]]:
    session.expire_all()
    return {
        m.user_id: (m.role, m.source)
        for m in session.scalars(select(TeamMembership).where(TeamMembership.team_id == team_id))
    }


def membership_events(session: Session, team_id: uuid.UUID) -> list[tuple[str, str]]:
    """(action, user id) of the team's membership events, in order."""
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_id == str(team_id), AuditEvent.action.like("team.member_%"))
        .order_by(AuditEvent.occurred_at)
    )
    return [(e.action, (e.after or e.before or {})["user_id"]) for e in events]


def test_a_sync_adding_a_person_while_the_idp_adds_them_to_the_same_group(session, settings, race):
    """The IdP PATCHes a person into a group that LDAP maps too, while a sync adds them.
    Before, the sync inserted the membership and its foreign-key check then waited for the
    group's lock; the group write, holding it, inserted the same membership and waited for
    the sync's row in flight: a deadlock, one of them aborted (40P01)."""
    world = make_world(session, settings)
    person = world.people[0]
    plan = Plan(
        kind="full",
        team_adds=[TeamAdd(team="engineering", external_id=person.ldap_id, role="MEMBER")],
    )

    race.run(lock_group(world), scim_patch(world, "add", person), ldap_apply(world, plan))

    # The IdP's first, the sync's then finds the person a member and leaves them.
    assert members(session, world.group.id) == {person.user_id: (TeamRole.MEMBER, Source.SCIM)}
    assert membership_events(session, world.group.id) == [
        ("team.member_added", str(person.user_id))
    ]


@pytest.mark.parametrize("change", ["update", "revoke"])
def test_a_sync_changing_a_person_while_the_idp_puts_them_in_a_group_that_grants_a_role(
    session, settings, race, change
):
    """The group grants a role (a SCIM group-role mapping), so a group write that adds a
    person locks them to change their role. A sync changes the same person (their name, or
    revokes them: the lifecycle) and adds another to the group. Before, the sync locked its
    people first and then waited for the group its inserts refer to, while the group write
    held the group and waited for the person: a deadlock. Now the sync takes its teams
    first, as every writer of memberships does (models.membership_locks)."""
    world = make_world(session, settings)
    scim_actions.set_group_role(
        session, organisation=world.org, group_name="Engineering", role=Role.MANAGER, actor=f.SETUP
    )
    session.commit()
    person, other = world.people[0], world.people[1]
    plan = Plan(
        kind="full",
        team_adds=[TeamAdd(team="Engineering", external_id=other.ldap_id, role="MEMBER")],
    )
    if change == "update":
        fields = {"name": [person.email, "Renamed By Directory"]}
        plan.updates.append(
            Update(
                user_id=str(person.user_id),
                external_id=person.ldap_id,
                email=person.email,
                dn=f"uid={person.ldap_id},dc=x",
                fields=fields,
            )
        )
    else:
        plan.revokes.append(
            Revoke(
                user_id=str(person.user_id),
                external_id=person.ldap_id,
                email=person.email,
                reason="disabled",
            )
        )

    race.run(lock_group(world), scim_patch(world, "add", person), ldap_apply(world, plan))

    assert members(session, world.group.id) == {
        person.user_id: (TeamRole.MEMBER, Source.SCIM),
        other.user_id: (TeamRole.MEMBER, Source.LDAP),
    }
    user = session.get_one(User, person.user_id)
    assert user.role is Role.MANAGER  # the group's grant, before the sync
    if change == "update":
        assert (user.name, user.status) == ("Renamed By Directory", UserStatus.ACTIVE)
    else:
        assert user.status is UserStatus.REVOKED


def test_an_admin_changing_a_role_while_a_sync_removes_the_membership(session, settings, race):
    """A sync removes a membership it added while an admin makes that member a manager of
    the team. Before, the admin's change read the membership, then updated a row the sync
    had deleted meanwhile: no row updated, the request failed (500). Now the admin's change
    locks the membership and reads it again: gone, it is added anew, as after the sync."""
    world = make_world(session, settings)
    person = world.people[0]
    team = team_actions.create_team(
        session, organisation=world.org, name="Platform", actor=LDAP, external_source=Source.LDAP
    )
    session.add(
        TeamMembership(
            team_id=team.id, user_id=person.user_id, role=TeamRole.MEMBER, source=Source.LDAP
        )
    )
    session.commit()
    plan = Plan(kind="full", team_removes=[TeamRemove(team="Platform", external_id=person.ldap_id)])

    race.run(
        ldap_apply(world, plan),
        lambda own: None,
        admin_sets_role(world, team.id, person, TeamRole.MANAGER),
    )

    assert members(session, team.id) == {person.user_id: (TeamRole.MANAGER, Source.ADMIN)}
    assert membership_events(session, team.id) == [
        ("team.member_removed", str(person.user_id)),
        ("team.member_added", str(person.user_id)),
    ]


def test_an_admin_changing_a_role_while_the_idp_removes_the_member(session, settings, race):
    """The IdP PATCHes a member out of its group while an admin makes them a manager of it.
    Before, the admin's change took no lock of the team, read the membership and updated it
    after the group write had deleted it: the request failed (500)."""
    world = make_world(session, settings)
    person = world.people[0]
    team = session.get_one(Team, world.group.id)
    scim_user = session.get_one(ScimUser, uuid.UUID(person.scim_id))
    team_actions.add_members(
        session, team=team, users=[scim_user.user], role=TeamRole.MEMBER, actor=SCIM
    )
    session.commit()

    def remove(own: Session) -> None:
        lock_group(world)(own)
        scim_patch(world, "remove", person)(own)

    race.run(remove, lambda own: None, admin_sets_role(world, team.id, person, TeamRole.MANAGER))

    assert members(session, team.id) == {person.user_id: (TeamRole.MANAGER, Source.ADMIN)}
    assert membership_events(session, team.id) == [
        ("team.member_added", str(person.user_id)),
        ("team.member_removed", str(person.user_id)),
        ("team.member_added", str(person.user_id)),
    ]


def test_the_idp_deleting_a_person_while_removing_them_from_a_group_that_grants_a_role(
    session, settings, race
):
    """Okta's deprovisioning: a PATCH takes the person out of a group that grants a role and
    a DELETE revokes them, at once. The group write holds its team and locks the person to
    take the role back; the DELETE (the revocation path) held the person and then waited to
    move the lastModified of the groups they were in. Before, a deadlock; now the DELETE
    locks those teams before the person, as every writer of memberships does."""
    world = make_world(session, settings)
    scim_actions.set_group_role(
        session, organisation=world.org, group_name="Engineering", role=Role.MANAGER, actor=f.SETUP
    )
    session.commit()
    person = world.people[0]
    with race.sessions() as own:
        lock_group(world)(own)
        scim_patch(world, "add", person)(own)
        own.commit()

    def delete(own: Session) -> None:
        locked = scim_actions.lock_scim_user(own, world.org.id, person.scim_id, leaving=True)
        scim_actions.delete_scim_user(own, scim_user=locked.scim_user, actor=SCIM)

    race.run(lock_group(world), scim_patch(world, "remove", person), delete)

    assert members(session, world.group.id) == {}
    user = session.get_one(User, person.user_id)
    assert (user.status, user.role) == (UserStatus.REVOKED, Role.USER)
    assert session.get(ScimUser, uuid.UUID(person.scim_id)) is None


def grant_group_role(session: Session, world: World) -> None:
    """The SCIM group grants MANAGER: a group write adding a member locks that person."""
    scim_actions.set_group_role(
        session, organisation=world.org, group_name="Engineering", role=Role.MANAGER, actor=f.SETUP
    )
    session.commit()


def test_an_invitee_accepting_while_the_idp_adds_them_to_the_invited_group(session, settings, race):
    """A person the IdP provisioned, waiting for approval, accepts an invitation to a group
    that grants a role while the IdP PATCHes them into it. Before, the accept locked the
    person (their role) and then waited for the group to join it, while the group write held
    the group and waited for the person: a deadlock. Now the accept locks the invitation's
    teams before the person."""
    world = make_world(session, settings)
    grant_group_role(session, world)
    org_settings = session.get_one(Organisation, world.org.id).settings
    org_settings.approval_required = True
    email = f"invitee-{world.org.slug}@example.com"
    fields = ScimUserFields(user_name=email, emails=(ScimEmailValue(email, primary=True),))
    scim_user = scim_actions.create_scim_user(
        session, organisation=world.org, fields=fields, actor=SCIM
    )
    assert scim_user.user.status is UserStatus.PENDING
    org_settings.approval_required = False
    admin = f.make_user(session, world.org, role=Role.ORG_ADMIN)
    issued = invitations.invite(
        session,
        viewer=Viewer.for_user(admin),
        email=email,
        role=Role.USER,
        actor=ADMIN,
        secret_key=settings.secret_key,
        teams=[invitations.TeamInvite(world.group.id)],
    )
    session.commit()
    person = Person(scim_user.user_id, str(scim_user.id), "", email)

    def accept(own: Session) -> None:
        invitations.accept_invitation(own, token=issued.token, email=email, name="Ivy Invitee")
        own.flush()

    race.run(lock_group(world), scim_patch(world, "add", person), accept)

    # The IdP's first; the accept then finds the person a member and leaves them.
    assert members(session, world.group.id) == {person.user_id: (TeamRole.MEMBER, Source.SCIM)}
    user = session.get_one(User, person.user_id)
    assert (user.name, user.status) == ("Ivy Invitee", UserStatus.ACTIVE)


def test_an_idp_event_adding_a_person_while_the_idp_adds_them_to_the_same_group(
    session, settings, race
):
    """Okta's event hook says a person joined a group that grants a role while its SCIM
    push adds them to it. Before, the event batch locked its people first and then waited
    for the group to add the person, while the group write held the group and waited for the
    person: a deadlock. Now the batch locks the teams its events name before its people."""
    world = make_world(session, settings)
    grant_group_role(session, world)
    person = world.people[0]
    group = okta.group_target("00g3vcxkvkIPY52jL4x7", "Engineering")
    target = okta.user_target(person.scim_id, person.email)
    payload = okta.delivery(okta.event("group.user_membership.add", [target, group]))
    recorded = idp_events.accept_delivery(
        session,
        organisation_id=world.org.id,
        channel="okta",
        delivery_id=payload["eventId"],
        payload=payload,
    )
    session.commit()
    delivery_id = recorded.delivery.id

    def apply_event(own: Session) -> None:
        delivery = own.get_one(ReceivedDelivery, delivery_id)
        idp_events.process_received(own, [delivery])
        assert [r["outcome"] for r in delivery.results] == ["unchanged"], delivery.results
        own.flush()

    race.run(lock_group(world), scim_patch(world, "add", person), apply_event)

    assert members(session, world.group.id) == {person.user_id: (TeamRole.MEMBER, Source.SCIM)}
    assert session.get_one(User, person.user_id).role is Role.MANAGER


def test_the_idp_deleting_a_person_who_joins_a_group_meanwhile(session, settings, race):
    """A DELETE reads the groups the person is in, locks them, then the person. A sync adds
    the person to another group in that gap (it holds the person: it renames them), and the
    IdP renames that group to one that grants a role (the group write holds the group and
    waits for the person, to grant it). Before, the DELETE got the person once the sync
    committed and then moved the lastModified of the group it had not locked, held by the
    group write: a deadlock. Now the DELETE reads the groups again once it holds the person
    and, when they changed, lets go and locks them again in order."""
    world = make_world(session, settings)
    scim_actions.set_group_role(
        session, organisation=world.org, group_name="Admins", role=Role.MANAGER, actor=f.SETUP
    )
    person = world.people[0]
    platform = team_actions.create_team(
        session, organisation=world.org, name="Platform", actor=SCIM, external_source=Source.SCIM
    )
    session.commit()
    with race.sessions() as own:
        lock_group(world)(own)
        scim_patch(world, "add", person)(own)
        own.commit()
    plan = Plan(
        kind="full",
        team_adds=[TeamAdd(team="Platform", external_id=person.ldap_id, role="MEMBER")],
        updates=[
            Update(
                user_id=str(person.user_id),
                external_id=person.ldap_id,
                email=person.email,
                dn=f"uid={person.ldap_id},dc=x",
                fields={"name": [person.email, "Renamed By Directory"]},
            )
        ],
    )

    def delete(own: Session) -> None:
        locked = scim_actions.lock_scim_user(own, world.org.id, person.scim_id, leaving=True)
        scim_actions.delete_scim_user(own, scim_user=locked.scim_user, actor=SCIM)

    def rename(own: Session) -> None:
        team = scim_actions.get_scim_group(own, world.org.id, str(platform.id), for_update=True)
        fields = ScimGroupFields(display_name="Admins")
        scim_actions.replace_scim_group(own, team=team, fields=fields, actor=SCIM)
        own.flush()

    race.run(ldap_apply(world, plan), lambda own: None, delete, rename)

    assert set(members(session, platform.id)) == {person.user_id}
    user = session.get_one(User, person.user_id)
    assert (user.name, user.status, user.role) == (
        "Renamed By Directory",
        UserStatus.REVOKED,
        Role.USER,
    )
    assert session.get(ScimUser, uuid.UUID(person.scim_id)) is None
    assert session.get_one(Team, platform.id).name == "Admins"


def test_the_idp_linking_a_person_while_deleting_another_member_of_their_groups(
    session, settings, race
):
    """A SCIM create links an existing person by email and takes them out of the SCIM
    groups they are in, moving each group's lastModified (an UPDATE of the team, its row
    lock), while a DELETE of another member of those groups moves the lastModified of the
    same groups, in id order (the order its flush writes them in, as membership_locks takes
    teams). The create left the groups in name order: with names in the opposite order of
    ids, the create held the group it left first and waited for the other, which the DELETE
    held while it waited for the first: a deadlock (40P01). Now the create leaves them in id
    order too.

    The interleaving: an admin changing the person's role in the group of lower id holds
    that membership, so the create stops before leaving it (having left the other, before);
    the DELETE begins then."""
    world = make_world(session, settings)
    leaving = world.people[0]  # the SCIM user the IdP deletes
    # Named in the opposite order of their ids (two made in one millisecond of
    # models.base.new_id are in either order): the lower id "Beta".
    beta, alpha = sorted(
        (
            team_actions.create_team(
                session, organisation=world.org, name=name, actor=SCIM, external_source=Source.SCIM
            )
            for name in ("First", "Second")
        ),
        key=lambda team: team.id,
    )
    team_actions.rename_team(session, team=beta, name="Beta", actor=SCIM)
    team_actions.rename_team(session, team=alpha, name="Alpha", actor=SCIM)
    email = f"linked-{world.org.slug}@example.com"
    existing = f.make_user(session, world.org, email=email, name="Lin Before")
    linked = Person(existing.id, "", "", email)  # no SCIM user: the create links them
    departing = session.get_one(User, leaving.user_id)
    for group in (beta, alpha):
        for user in (existing, departing):
            team_actions.add_members(
                session, team=group, users=[user], role=TeamRole.MEMBER, actor=SCIM
            )
    session.commit()

    def create(own: Session) -> None:
        fields = ScimUserFields(user_name=email, emails=(ScimEmailValue(email, primary=True),))
        scim_actions.create_pushed_user(
            own, world.org.id, fields=fields, access_end_by=lambda attribute: None, actor=SCIM
        )
        own.flush()

    def delete(own: Session) -> None:
        locked = scim_actions.lock_scim_user(own, world.org.id, leaving.scim_id, leaving=True)
        scim_actions.delete_scim_user(own, scim_user=locked.scim_user, actor=SCIM)

    admin = admin_sets_role(world, beta.id, linked, TeamRole.MANAGER)
    race.run(admin, lambda own: None, create, delete, in_turn=True)

    changed = [("team.member_role_changed", str(linked.user_id))]
    for group, admins in ((beta, changed), (alpha, [])):
        assert members(session, group.id) == {leaving.user_id: (TeamRole.MEMBER, Source.SCIM)}
        assert membership_events(session, group.id) == [
            ("team.member_added", str(linked.user_id)),
            ("team.member_added", str(leaving.user_id)),
            *admins,
            ("team.member_removed", str(linked.user_id)),
        ]
    scim_user = session.scalars(select(ScimUser).where(ScimUser.user_id == linked.user_id)).one()
    assert scim_user.user.status is UserStatus.ACTIVE
    assert session.get_one(User, leaving.user_id).status is UserStatus.REVOKED
    assert session.get(ScimUser, uuid.UUID(leaving.scim_id)) is None


def test_an_invitee_accepting_while_an_admin_declines_them(session, settings, race):
    """A PENDING person accepts an invitation while an admin declines them. The accept read
    them PENDING before it waited for their lock; once the decline committed it went on with
    a REVOKED person (renamed, linked, joined to the invitation's teams, the invitation
    accepted). As serially, the accept now refuses a person no longer PENDING (Conflict) and
    changes nothing: committed as the enrollment page and hook commit a refusal, only the
    refusal's audit event is kept, not the invitation's claim."""
    world = make_world(session, settings)
    org_settings = session.get_one(Organisation, world.org.id).settings
    org_settings.approval_required = True
    email = f"pending-{world.org.slug}@example.com"
    pending = f.make_user(session, world.org, email=email, status=UserStatus.PENDING)
    admin = f.make_user(session, world.org, role=Role.ORG_ADMIN)
    issued = invitations.invite(
        session,
        viewer=Viewer.for_user(admin),
        email=email,
        role=Role.USER,
        actor=ADMIN,
        secret_key=settings.secret_key,
        teams=[invitations.TeamInvite(world.group.id)],
    )
    session.commit()
    refused: list[invitations.AccountExists] = []

    def lock_person(own: Session) -> None:
        person_lock.lock_people(own, [pending.id])

    def decline(own: Session) -> None:
        lifecycle.decline(own, user=own.get_one(User, pending.id), actor=ADMIN)

    def accept(own: Session) -> None:
        try:
            invitations.accept_invitation(own, token=issued.token, email=email, name="Ivy")
            own.flush()
        except invitations.AccountExists as exc:
            refused.append(exc)
            own.commit()

    race.run(lock_person, decline, accept)

    assert len(refused) == 1
    session.expire_all()
    user = session.get_one(User, pending.id)
    assert user.status is UserStatus.REVOKED
    assert user.name != "Ivy"
    assert members(session, world.group.id) == {}
    invitation = session.get_one(Invitation, issued.invitation.id)
    assert invitation.status is InvitationStatus.PENDING
    refusals = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "user.invitation_accept_refused")
    ).all()
    assert [(e.target_id, e.after["user_status"]) for e in refusals] == [
        (str(pending.id), "REVOKED")
    ]
