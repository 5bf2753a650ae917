"""Many SCIM group members in one request: written set-based (the statements a request sends
do not grow with its members), each membership change still audited one event per member."""

from __future__ import annotations

import cProfile
import pstats
import uuid
from contextlib import AbstractContextManager
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from models.actions.mass_change import set_thresholds
from models.actions.scim import set_group_role
from models.entities import AuditEvent, ScimUser, TeamMembership, User
from models.enums import Role
from tests.scim.conftest import ScimClient
from tests.scim.payloads import okta_create_group, okta_create_user
from tests.support import factories
from tests.support.sql_events import listening, statements_sent
from webhooks import scim_provider
from webhooks.context import app_state

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def statements(app: Flask, engine: Engine | None = None) -> AbstractContextManager[list[str]]:
    """The statements this thread sends through the app's engine (or `engine`) meanwhile."""
    if engine is None:
        with app.app_context():
            engine = app_state().engine
    return statements_sent(engine)


def users(scim: ScimClient, prefix: str, n: int) -> list[str]:
    made = [
        scim.post("/Users", okta_create_user(f"{prefix}{i}@example.com", f"{prefix}{i}"))
        for i in range(n)
    ]
    assert all(m.status_code == 201 for m in made)
    return [m.json["id"] for m in made]


def members_patch(op: str, ids: list[str]) -> dict[str, Any]:
    operation = {"op": op, "path": "members", "value": [{"value": i} for i in ids]}
    return {"schemas": [PATCH_OP], "Operations": [operation]}


def test_a_patch_sends_as_many_statements_for_30_members_as_for_3(scim, app):
    few, many = users(scim, "few", 3), users(scim, "many", 30)
    counts = {}
    for name, ids in (("few", few), ("many", many)):
        group = scim.post("/Groups", okta_create_group(name.title())).json["id"]
        for op in ("add", "remove"):
            with statements(app) as seen:
                done = scim.patch(f"/Groups/{group}", members_patch(op, ids))
            assert done.status_code in (200, 204), done.json
            counts[name, op] = len(seen)
    assert counts["many", "add"] == counts["few", "add"]
    assert counts["many", "remove"] == counts["few", "remove"]


def test_a_create_sends_as_many_statements_for_30_members_as_for_3(scim, app):
    few, many = users(scim, "few", 3), users(scim, "many", 30)
    counts = []
    for name, ids in (("Few", few), ("Many", many)):
        with statements(app) as seen:
            body = {**okta_create_group(name), "members": [{"value": i} for i in ids]}
            assert scim.post("/Groups", body).status_code == 201
        counts.append(len(seen))
    assert counts[0] == counts[1]


def test_each_member_added_and_removed_at_once_has_its_audit_event(scim, session):
    ids = users(scim, "ann", 5)
    group = scim.post("/Groups", okta_create_group("Eng")).json
    added = scim.patch(f"/Groups/{group['id']}", members_patch("add", ids))
    assert added.status_code in (200, 204)
    after_add = scim.get(f"/Groups/{group['id']}").json
    assert sorted(m["value"] for m in after_add["members"]) == sorted(ids)
    assert after_add["meta"]["version"] != group["meta"]["version"]
    user_ids = {str(u) for u in session.scalars(select(TeamMembership.user_id))}
    session.commit()
    removed = scim.patch(f"/Groups/{group['id']}", members_patch("remove", ids[:2]))
    assert removed.status_code in (200, 204)
    events = session.execute(
        select(AuditEvent.action, AuditEvent.target_id, AuditEvent.before, AuditEvent.after)
        .where(AuditEvent.action.in_(["team.member_added", "team.member_removed"]))
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    adds = [e for e in events if e.action == "team.member_added"]
    removes = [e for e in events if e.action == "team.member_removed"]
    assert {e.target_id for e in events} == {group["id"]}
    assert {e.after["user_id"] for e in adds} == user_ids
    assert all(e.before is None and e.after["role"] == "MEMBER" for e in adds)
    assert len(adds) == 5 and len(removes) == 2
    assert all(e.after is None and e.before["team_id"] == group["id"] for e in removes)
    left = {str(u) for u in session.scalars(select(TeamMembership.user_id))}
    assert {e.before["user_id"] for e in removes} == user_ids - left
    assert len(left) == 3


def test_a_patch_of_one_member_of_a_large_group_loads_that_person_alone(scim):
    """The group's other members are read as ids, not loaded as objects with their users."""
    ids = users(scim, "ann", 20)
    body = {**okta_create_group("Eng"), "members": [{"value": i} for i in ids[:-1]]}
    group = scim.post("/Groups", body).json["id"]
    loaded: list[Any] = []
    with listening(ScimUser, load=lambda target, _context: loaded.append(target.id)):
        done = scim.patch(f"/Groups/{group}", members_patch("add", ids[-1:]))
    assert done.status_code in (200, 204), done.json
    assert [str(i) for i in loaded] == ids[-1:]


def test_a_role_mapped_to_a_group_sends_as_many_statements_for_30_members_as_for_3(
    scim, app, session, org
):
    # The gate off: the deletion's role drops all apply, set-based too: each member's role
    # and audit event written in the one flush, and the review of the keys the role gave
    # opened only for members who created a key (none here), after one read for them all.
    # Before, each drop flushed and read on its own: 21 statements for 3, 102 for 30.
    set_thresholds(session, organisation=org, actor=factories.SETUP, enabled=False)
    session.commit()
    counts: dict[tuple[str, str], int] = {}
    for name, n in (("few", 3), ("many", 30)):
        group = scim.post(
            "/Groups",
            {**okta_create_group(name), "members": [{"value": i} for i in users(scim, name, n)]},
        ).json["id"]
        session.refresh(org)  # loaded before, as the CLI's look-up by slug has it
        with statements(app, session.get_bind().engine) as seen:
            set_group_role(
                session, organisation=org, group_name=name, role=Role.MANAGER, actor=factories.SETUP
            )
            session.commit()
        counts[name, "mapped"] = len(seen)
        assert seen  # the session's statements were seen
        assert _roles(session, name) == {Role.MANAGER}
        with statements(app) as seen:
            assert scim.delete(f"/Groups/{group}").status_code == 204
        counts[name, "deleted"] = len(seen)
        assert _roles(session, name) == {Role.USER}
        dropped = session.scalars(
            select(AuditEvent.after["role"].as_string()).where(
                AuditEvent.action == "user.updated",
                AuditEvent.target_id.in_(
                    [
                        str(i)
                        for i in session.scalars(select(User.id).where(User.email.startswith(name)))
                    ]
                ),
                AuditEvent.before["role"].as_string() == Role.MANAGER.value,
            )
        ).all()
        session.commit()
        assert dropped == [Role.USER.value] * n  # every drop still audited, one event each
    assert counts["many", "mapped"] == counts["few", "mapped"]
    assert counts["many", "deleted"] == counts["few", "deleted"], counts


def _roles(session: Session, prefix: str) -> set[Role]:
    session.expire_all()
    found = session.scalars(select(User.role).where(User.email.startswith(prefix)))
    roles = set(found)
    session.commit()  # SQLite: the read's lock is not held while the app writes
    return roles


# Membership alone (connectors.scim.member_patch), against the same request with one more
# operation, which sends it through the whole-group PATCH: the same answer and the same end.
MEMBERSHIP_REQUESTS = [
    lambda ids: [{"op": "add", "path": "members", "value": [{"value": ids[3]}]}],
    lambda ids: [{"op": "Add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[3]}]}],
    lambda ids: [{"op": "Remove", "path": "members", "value": [{"value": ids[1]}]}],
    lambda ids: [{"op": "remove", "path": f'members[value eq "{ids[2].upper()}"]'}],
    lambda ids: [{"op": "remove", "path": "members", "value": [{"value": ids[2].upper()}]}],
    lambda ids: [
        {"op": "remove", "path": f'members[value eq "{ids[0]}"]'},
        {"op": "add", "path": "members", "value": [{"value": ids[0]}, {"value": ids[4]}]},
    ],
    lambda ids: [
        {"op": "add", "path": "members", "value": [{"value": ids[3].upper()}]},
        {"op": "remove", "path": "members", "value": [{"value": ids[3]}]},
    ],
    lambda ids: [{"op": "add", "path": "members", "value": [{"value": "not-an-id"}]}],
    lambda ids: [{"op": "add", "path": "members", "value": [{"value": str(uuid.uuid4())}]}],
    lambda ids: [{"op": "add", "path": "members", "value": [{"value": ids[3], "type": "Group"}]}],
    lambda ids: [
        {"op": "add", "path": "members", "value": [{"value": "not-an-id"}]},
        {"op": "remove", "path": 'members[value eq "NOT-AN-ID"]'},
    ],
]


def test_a_membership_patch_ends_as_the_whole_group_patch_does(scim, session):
    ids = users(scim, "mem", 5)
    for n, request in enumerate(MEMBERSHIP_REQUESTS):
        outcomes = []
        for way in ("members", "whole"):
            name = f"G{n}{way}"
            body = {**okta_create_group(name), "members": [{"value": i} for i in ids[:3]]}
            group = scim.post("/Groups", body).json["id"]
            operations = request(ids)
            if way == "whole":  # a no-op rename: the request is no longer membership alone
                operations = [*operations, {"op": "replace", "path": "displayName", "value": name}]
            done = scim.patch(f"/Groups/{group}", {"schemas": [PATCH_OP], "Operations": operations})
            members = {m["value"] for m in scim.get(f"/Groups/{group}").json.get("members", [])}
            events = _membership_events(session, group)
            outcomes.append((done.status_code, done.json.get("scimType"), members, events))
            if done.status_code == 200:
                assert {m["value"] for m in done.json.get("members", [])} == members
        assert outcomes[0] == outcomes[1], (n, outcomes)


def _membership_events(session: Session, group: str) -> list[tuple[str, str]]:
    found = session.execute(
        select(AuditEvent.action, AuditEvent.before, AuditEvent.after).where(
            AuditEvent.target_id == group,
            AuditEvent.action.in_(["team.member_added", "team.member_removed"]),
        )
    ).all()
    session.commit()
    return sorted((e.action, (e.after or e.before)["user_id"]) for e in found)


def test_a_one_member_patch_answered_without_members_costs_the_same_for_a_larger_group(
    scim, monkeypatch
):
    """Entra ID's and Okta's membership pushes name one member; with
    excludedAttributes=members the answer needs none either, so the PATCH's work does not
    grow with the group (it was about 100 function calls per member). Counted inside the
    provider's patch_group: the token's look-up and its last-use write, which come when
    they come, are the request's."""
    calls: list[int] = []
    patch_group = scim_provider.patch_group

    def counted(*args: Any, **kwargs: Any) -> Any:
        profile = cProfile.Profile()
        profile.enable()
        try:
            return patch_group(*args, **kwargs)
        finally:
            profile.disable()
            calls.append(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]

    monkeypatch.setattr(scim_provider, "patch_group", counted)
    ids = users(scim, "big", 42)
    for name, members in (("Small", ids[:2]), ("Large", ids[2:-1])):
        body = {**okta_create_group(name), "members": [{"value": i} for i in members]}
        group = scim.post("/Groups", body).json["id"]
        asked = f"/Groups/{group}?excludedAttributes=members"
        version = scim.get(asked).json["meta"]["version"]
        done = scim.patch(asked, members_patch("add", ids[-1:]), **{"If-Match": version})
        assert done.status_code == 200, done.json
        assert "members" not in done.json
        assert done.headers["ETag"] == scim.get(f"/Groups/{group}").json["meta"]["version"]
        assert ids[-1] in {m["value"] for m in scim.get(f"/Groups/{group}").json["members"]}
    small, large = calls
    assert large < small * 1.05, calls  # 37 more members
