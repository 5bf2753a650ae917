"""Team memberships of an import and a re-sync: set-based writes, one audit event per change
(a first import's memberships written with their people: one per team and batch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select, text

from connectors.ldap.plan import Create
from connectors.ldap.reconcile import Reconciler, TeamIndex
from models.directory import memberships
from models.directory.people_import import PeopleImport, Prepared
from models.directory.runs import ldap_actor
from models.entities import AuditEvent, Organisation, Team, TeamMembership, User
from models.enums import Source
from tests.ldap.conftest import get_run, linked_users
from tests.support import factories
from tests.support.sql_events import listening

PEOPLE = 600


@contextmanager
def _statements_on(engine, table: str) -> Iterator[list[str]]:
    """The SQL statements sent through SQLAlchemy that name this table (an executemany is
    one; COPY goes by the driver and is not seen, so PostgreSQL counts fewer)."""
    seen: list[str] = []

    def listen(_conn, _cursor, statement, _params, _context, _many) -> None:
        if table in statement and not statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    with listening(engine, before_cursor_execute=listen):
        yield seen


def _team_events(sessions, organisation_id, action: str) -> list[dict]:
    """The membership of each event of one change (not the batch events, `_batch_events`)."""
    with sessions() as s:
        rows = s.execute(
            select(AuditEvent.target_type, AuditEvent.before, AuditEvent.after).where(
                AuditEvent.organisation_id == organisation_id,
                AuditEvent.action == action,
                AuditEvent.target_type != "membership_batch",
            )
        ).all()
        s.rollback()
    assert {row.target_type for row in rows} <= {"team"}
    return [row.after if action == "team.member_added" else row.before for row in rows]


def _batch_events(sessions, organisation_id) -> list[tuple[str, dict]]:
    """(target id, after) of the `team.member_added` events of target type
    `membership_batch`: a first import's memberships written with their people, one event
    per team and batch."""
    with sessions() as s:
        rows = s.execute(
            select(AuditEvent.target_id, AuditEvent.before, AuditEvent.after).where(
                AuditEvent.organisation_id == organisation_id,
                AuditEvent.action == "team.member_added",
                AuditEvent.target_type == "membership_batch",
            )
        ).all()
        s.rollback()
    assert all(row.before is None for row in rows)
    return [(row.target_id, row.after) for row in rows]


def _added_with_people(sessions, connector, team_id) -> list[str]:
    """The user ids the batch events list (PostgreSQL, written while reading): each event
    names the team, lists every member with a role, counts them and says which connector;
    no membership has an event of its own beside them."""
    events = _batch_events(sessions, connector.organisation_id)
    assert events
    assert _team_events(sessions, connector.organisation_id, "team.member_added") == []
    listed: list[str] = []
    for target_id, after in events:
        assert target_id == after["team_id"] == str(team_id)
        assert after["identity"] == {"source": "ldap", "connector_id": str(connector.id)}
        assert after["count"] == len(after["members"]) > 0
        assert {member["role"] for member in after["members"]} == {"MEMBER"}
        listed.extend(member["user_id"] for member in after["members"])
    return listed


def _members(sessions, organisation_id, team: str) -> dict[str, Source]:
    with sessions() as s:
        rows = s.execute(
            select(User.email, TeamMembership.source)
            .join(TeamMembership, TeamMembership.user_id == User.id)
            .join(Team, Team.id == TeamMembership.team_id)
            .where(Team.organisation_id == organisation_id, Team.name == team)
        ).all()
        s.rollback()
    return {row.email.split("@")[0]: row.source for row in rows}


def test_an_import_adds_memberships_in_bulk_and_audits_each(
    make_connector, sync, sessions, engine, directory, session
):
    uids = [f"member{n:04d}" for n in range(PEOPLE)]
    dns = [directory.add_person(uid) for uid in uids]
    directory.add(
        f"cn=big,{directory.groups}",
        {"objectClass": [b"groupOfNames"], "cn": [b"big"], "member": [d.encode() for d in dns]},
    )
    # Half of them also in a second mapped group.
    directory.add(
        f"cn=half,{directory.groups}",
        {
            "objectClass": [b"groupOfNames"],
            "cn": [b"half"],
            "member": [d.encode() for d in dns[::2]],
        },
    )
    connector = make_connector(page_size=500, group_teams={"big": "Big", "half": "Half"})
    org_id = connector.organisation_id
    with _statements_on(engine, "team_memberships") as writes:
        outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert len(writes) <= 2, f"{len(writes)} statements: {writes[:3]}"  # one per team and batch
    big, half = _members(sessions, org_id, "Big"), _members(sessions, org_id, "Half")
    assert set(big) == set(uids) and set(half) == set(uids[::2])
    assert set(big.values()) == {Source.LDAP}
    users = linked_users(sessions, connector)
    added = _team_events(sessions, org_id, "team.member_added")
    assert len(added) == PEOPLE + PEOPLE // 2
    assert {(a["user_id"], a["role"]) for a in added if a["team_id"]} >= {
        (str(users[uid].id), "MEMBER") for uid in uids
    }

    # A re-sync with two people gone from "big" and an admin's membership there: the
    # directory's two go, one statement, each audited; the admin's stays.
    admin_member = factories.make_user(
        session, session.get_one(Organisation, org_id), email="admin-added@corp.test"
    )
    team = session.scalar(select(Team).where(Team.organisation_id == org_id, Team.name == "Big"))
    session.add(TeamMembership(team_id=team.id, user_id=admin_member.id, role="MEMBER"))
    session.commit()
    for dn in dns[:2]:
        directory.delete_values(f"cn=big,{directory.groups}", "member", dn.encode())
    with _statements_on(engine, "team_memberships") as writes:
        again = sync(connector)
    assert again.summary["team_remove"] == 2 and again.summary["team_add"] == 0
    assert len(writes) == 1, writes
    big = _members(sessions, org_id, "Big")
    assert "member0000" not in big and "member0001" not in big and "admin-added" in big
    removed = _team_events(sessions, org_id, "team.member_removed")
    assert sorted(r["user_id"] for r in removed) == sorted(str(users[uid].id) for uid in uids[:2])


def test_an_import_writes_its_new_peoples_memberships_directly(
    make_connector, sync, sessions, engine, directory, monkeypatch, settings
):
    """The people a first import creates join their teams by their new user ids: no
    `INSERT ... SELECT` through the identity links (PostgreSQL: COPY, which SQLAlchemy does
    not see; SQLite: one plain INSERT per team). A create taken back because a later entry
    has the same email (written while reading on PostgreSQL) joins nothing, and is taken off
    its batch's membership event (an event left with nobody goes)."""
    monkeypatch.setattr("worker.directory_create_stream.BATCH", 1)  # write while reading
    alice2 = directory.add_person("alice2", mail=f"alice@{directory.domain}")
    directory.add_values(f"cn=engineering,{directory.groups}", "member", alice2.encode())
    connector = make_connector(group_teams={"engineering": "Engineering"})
    org_id = connector.organisation_id
    with _statements_on(engine, "team_memberships") as writes:
        outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert not [w for w in writes if "SELECT" in w.upper()], writes
    assert len(writes) <= 1, writes
    members = _members(sessions, org_id, "Engineering")
    assert members == {"bob": Source.LDAP, "carol": Source.LDAP}  # carol through platform
    users = linked_users(sessions, connector)
    with sessions() as s:
        team_id = s.scalar(select(Team.id).where(Team.organisation_id == org_id))
        s.rollback()
    expected = sorted(str(users[uid].id) for uid in ("bob", "carol"))
    if not settings.is_sqlite:  # written while reading, with the people's batch events
        assert sorted(_added_with_people(sessions, connector, team_id)) == expected
        return
    assert _batch_events(sessions, org_id) == []
    added = _team_events(sessions, org_id, "team.member_added")
    assert sorted(a["user_id"] for a in added) == expected
    assert {a["team_id"] for a in added} == {str(team_id)}
    assert {a["role"] for a in added} == {"MEMBER"}


def test_a_first_import_writes_memberships_with_its_people_while_reading(
    make_connector, sync, sessions, settings, directory, monkeypatch
):
    """PostgreSQL: the groups are read before the people, so each batch of new people is
    written with its memberships while the directory is still being read (one
    `team.member_added` event per team and batch, target type `membership_batch`, listing
    every member, as the people's `user.created` event of target type `user_batch` lists
    them), and the apply step has none of them left to add. SQLite writes nothing while
    reading: the same memberships are added after the read, one event each."""
    monkeypatch.setattr("worker.directory_create_stream.BATCH", 1)  # write while reading
    read_ended: list[int] = []
    joined_while_reading: list[tuple[str, str]] = []
    left_to_apply: list[str] = []
    finish_people, prepare = Reconciler.finish_people, PeopleImport.prepare
    apply_changes = memberships.apply_membership_changes

    def people_read(self: Reconciler, **kwargs: Any) -> None:
        read_ended.append(1)
        finish_people(self, **kwargs)

    def prepared(self: PeopleImport, items: list[Create], *keys: Any) -> Prepared:
        batch = prepare(self, items, *keys)
        if not read_ended:
            joined_while_reading.extend(batch.members)
        return batch

    def applied(*args: Any, **kwargs: Any) -> Any:
        left_to_apply.extend(item.external_id for item in kwargs["adds"])
        return apply_changes(*args, **kwargs)

    monkeypatch.setattr(Reconciler, "finish_people", people_read)
    monkeypatch.setattr(PeopleImport, "prepare", prepared)
    monkeypatch.setattr("models.directory.apply.apply_membership_changes", applied)
    connector = make_connector(group_teams={"engineering": "Engineering"})
    org_id = connector.organisation_id
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary["team_add"] == 3
    assert get_run(sessions, outcome.run_id).plan["applied"]["team_added"] == 3
    members = _members(sessions, org_id, "Engineering")
    assert members == {"alice": Source.LDAP, "bob": Source.LDAP, "carol": Source.LDAP}
    users = linked_users(sessions, connector)
    expected = sorted(str(users[uid].id) for uid in ("alice", "bob", "carol"))
    if settings.is_sqlite:
        assert joined_while_reading == [] and len(left_to_apply) == 3
        assert _batch_events(sessions, org_id) == []
        added = _team_events(sessions, org_id, "team.member_added")
        assert sorted(a["user_id"] for a in added) == expected
    else:
        assert len(joined_while_reading) == 3 and left_to_apply == []
        assert {member[0] for member in joined_while_reading} == {"engineering"}
        with sessions() as s:
            team_id = s.scalar(select(Team.id).where(Team.organisation_id == org_id))
            s.rollback()
        assert sorted(_added_with_people(sessions, connector, team_id)) == expected


def test_people_are_compared_before_the_memberships_are_loaded(
    make_connector, sync, sessions, directory, monkeypatch
):
    """A full sync loads the team memberships beside the people, not before comparing them:
    the groups' plan, at the end, is the only one that needs them. Here the memberships'
    load waits until a person has been compared (10 s at most); before, the people and the
    memberships were one load, the comparison waited for both, and the load timed out."""
    import threading

    from models.directory import read
    from models.queries import directory as queries

    connector = make_connector(group_teams={"platform": "Platform"})
    assert sync(connector).status == "succeeded"  # the people and their team exist
    monkeypatch.setattr(read, "MAX_WAITING", 1)  # compare from the first page on
    compared = threading.Event()
    seen: list[bool] = []
    add, load = Reconciler.add, queries.load_membership_state

    def add_and_tell(self: Reconciler, *args: Any, **kwargs: Any) -> None:
        compared.set()
        add(self, *args, **kwargs)

    def load_after_a_comparison(*args: Any, **kwargs: Any) -> Any:
        seen.append(compared.wait(60))
        return load(*args, **kwargs)

    monkeypatch.setattr(Reconciler, "add", add_and_tell)
    monkeypatch.setattr(queries, "load_membership_state", load_after_a_comparison)
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert seen == [True]
    assert outcome.summary["team_add"] == outcome.summary["team_remove"] == 0
    assert outcome.summary["unchanged"] == len(linked_users(sessions, connector))


def test_a_batchs_new_members_have_one_event_per_team_listing_each(
    session, sessions, make_connector
):
    """Memberships written with their people's batch: one `team.member_added` event per
    team and batch (target type `membership_batch`, as the people's `user_batch`), listing
    every member; a person taken back is taken off the events, and an event left with
    nobody goes. Before, each membership had an event of its own (target type `team`)."""
    connector = make_connector()
    organisation = session.get_one(Organisation, connector.organisation_id)
    creates = [
        Create(external_id=f"p{n}", dn=f"uid=p{n},ou=x", email=f"p{n}@example.org", name=f"P{n}")
        for n in range(4)
    ]
    # p0-p3 in Crew; p0 alone in Ops too
    index = TeamIndex(
        by_dn={f"uid=p{n},ou=x": ("crew", "ops") if n == 0 else ("crew",) for n in range(4)},
        names={"crew": "Crew", "ops": "Ops"},
    )
    people = PeopleImport(
        session,
        organisation=organisation,
        connector=connector,
        actor=ldap_actor(connector),
        teams=index,
    )
    people.add(creates)
    assert people.members_added == 5

    def events() -> dict[str, dict]:
        """Team name -> after, read in the import's own transaction (nothing committed)."""
        session.flush()
        teams = {t.id: t.name for t in session.scalars(select(Team))}
        rows = session.execute(
            select(AuditEvent.target_type, AuditEvent.target_id, AuditEvent.after).where(
                AuditEvent.organisation_id == organisation.id,
                AuditEvent.action == "team.member_added",
            )
        ).all()
        assert {row.target_type for row in rows} == {"membership_batch"}
        assert all(row.target_id == row.after["team_id"] for row in rows)
        return {teams[uuid.UUID(row.target_id)]: row.after for row in rows}

    def ids(*uids: str) -> list[str]:
        return sorted(str(u.id) for u in session.scalars(select(User)) if u.email[:2] in uids)

    written = events()
    assert set(written) == {"Crew", "Ops"}
    for after in written.values():
        assert after["count"] == len(after["members"])
        assert after["identity"] == {"source": "ldap", "connector_id": str(connector.id)}
        assert {m["role"] for m in after["members"]} == {"MEMBER"}
    assert sorted(m["user_id"] for m in written["Crew"]["members"]) == ids("p0", "p1", "p2", "p3")
    assert [m["user_id"] for m in written["Ops"]["members"]] == ids("p0")

    people.withdraw(["p0"])
    left = events()
    assert set(left) == {"Crew"}  # Ops's event listed p0 only
    assert left["Crew"]["count"] == 3
    assert sorted(m["user_id"] for m in left["Crew"]["members"]) == ids("p1", "p2", "p3")
    assert people.members_added == 3
    people.finish(creates)
    session.commit()


def _membership_rows(sessions) -> list[tuple[Any, ...]]:
    """Every membership as stored; on PostgreSQL with its row version (xmin), which any
    write of the row, even of the same values (an upsert's DO UPDATE), changes."""
    with sessions() as s:
        version = "xmin::text" if s.get_bind().dialect.name == "postgresql" else "''"
        rows = s.execute(
            text(
                f"SELECT team_id, user_id, role, source, created_at, {version} "
                "FROM team_memberships ORDER BY team_id, user_id"
            )
        ).all()
        s.rollback()
    return [tuple(row) for row in rows]


def _audit_count(sessions) -> int:
    with sessions() as s:
        count = s.scalar(select(func.count()).select_from(AuditEvent))
        s.rollback()
    return int(count or 0)


def test_an_unchanged_resync_with_groups_writes_no_membership_and_no_event(
    make_connector, sync, sessions
):
    """A re-sync where no group changed reads and compares: no membership is written again
    (not even with the same values), none is audited, and the plan adds and removes none."""
    connector = make_connector(group_teams={"engineering": "Engineering", "platform": "Platform"})
    assert sync(connector).status == "succeeded"
    rows, events = _membership_rows(sessions), _audit_count(sessions)
    assert len(rows) >= 3
    outcome = sync(connector)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.summary["team_add"] == outcome.summary["team_remove"] == 0
    assert _membership_rows(sessions) == rows
    assert _audit_count(sessions) == events
