"""The membership fast path (connectors.scim.member_patch) against the whole-group PATCH,
through the app: random membership-only requests sent to one group as they are and to a
twin group with a trailing no-op rename (which sends them through apply_patch) end alike:
status, scimType, members, roles mapped from the group, audit events. Each twin has its own
people, so the roles and events of one do not show in the other's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.actions.mass_change import set_thresholds
from models.actions.scim import set_group_role
from models.actions.teams import add_to_team
from models.actor import Actor
from models.entities import AuditEvent, Organisation, Team, TeamMembership, User
from models.enums import Role, Source, TeamRole
from tests.scim.conftest import ScimClient
from tests.scim.payloads import okta_create_group, okta_create_user
from tests.support import factories

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_PEOPLE = 4


@dataclass
class Pool:
    """One twin's people: SCIM users, a deleted SCIM user (still a team member, added by an
    admin), a person an admin added and one LDAP added (neither SCIM-provisioned)."""

    scim_ids: list[str]
    deleted: str  # the deleted SCIM user's old id
    admin_user: User
    ldap_user: User
    deleted_user: User
    names: dict[str, str]  # user id (as audited) -> its name in this pool

    def value(self, token: tuple[Any, ...], other_org: str) -> Any:
        kind = token[0]
        if kind == "scim":
            return spelled(self.scim_ids[token[1]], token[2])
        if kind == "deleted":
            return spelled(self.deleted, token[1])
        if kind == "admin":
            return str(self.admin_user.id)
        if kind == "ldap":
            return str(self.ldap_user.id)
        if kind == "other_org":
            return other_org
        return token[1]  # junk, ints, unknown ids: the same in both twins


def spelled(scim_id: str, way: int) -> str:
    """The id in another spelling (a UUID parses from each)."""
    parsed = uuid.UUID(scim_id)
    return [
        scim_id,
        scim_id.upper(),
        parsed.hex,
        f"{{{scim_id}}}",
        f"urn:uuid:{scim_id}",
    ][way]


SPELLINGS = st.integers(0, 4)
UNKNOWN = str(uuid.UUID(int=12345))
token = st.one_of(
    st.tuples(st.just("scim"), st.integers(0, SCIM_PEOPLE - 1), SPELLINGS),
    st.tuples(st.just("scim"), st.integers(0, SCIM_PEOPLE - 1), st.just(0)),
    st.tuples(st.just("deleted"), st.sampled_from([0, 1])),
    st.just(("admin",)),
    st.just(("ldap",)),
    st.just(("other_org",)),
    st.tuples(st.just("junk"), st.sampled_from(["not-an-id", "", " ", UNKNOWN, 3, 0])),
)
item_shape = st.sampled_from(
    [
        lambda v: {"value": v},
        lambda v: {"Value": v, "display": "x"},
        lambda v: {"VALUE": v, "type": "User"},
        lambda v: {"value": v, "type": "Group"},
        lambda v: {"value": v, "$ref": f"https://idp/Users/{v}", "extra": {"k": [1]}},
        lambda v: {"value": v, "display": None, "primary": True},
    ]
)
item = st.tuples(item_shape, token)
path_shape = st.sampled_from(
    [
        "members",
        "Members",
        "urn:ietf:params:scim:schemas:core:2.0:Group:members",
        " members ",
    ]
)
filter_shape = st.sampled_from(
    [
        'members[value eq "{}"]',
        'Members[Value EQ "{}"]',
        'urn:ietf:params:scim:schemas:core:2.0:Group:members[value eq "{}"]',
        'members[value eq "{}" and value eq "{}"]',
    ]
)
operation = st.one_of(
    st.tuples(
        st.just("list"),
        st.sampled_from(["add", "Add", "ADD", "remove", "Remove", "REMOVE"]),
        path_shape,
        st.lists(item, min_size=1, max_size=4),
    ),
    st.tuples(st.just("filter"), st.sampled_from(["remove", "Remove"]), filter_shape, token),
)
request = st.lists(operation, min_size=1, max_size=4)
initial = st.lists(st.integers(0, SCIM_PEOPLE - 1), unique=True, max_size=SCIM_PEOPLE)


def operations(pool: Pool, drawn: list[Any], other_org: str) -> list[dict[str, Any]]:
    made = []
    for n, (kind, op, path, what) in enumerate(drawn):
        keys = ("op", "path", "value") if n % 2 == 0 else ("Op", "PATH", "Value")
        if kind == "list":
            value = [shape(pool.value(t, other_org)) for shape, t in what]
            made.append(dict(zip(keys, (op, path, value), strict=True)))
        else:
            value = pool.value(what, other_org)
            made.append(dict(zip(keys[:2], (op, path.replace("{}", str(value))), strict=True)))
    return made


def make_pool(scim: ScimClient, session: Session, org: Organisation, prefix: str) -> Pool:
    made = [
        scim.post("/Users", okta_create_user(f"{prefix}{i}@example.com", f"{prefix}{i}"))
        for i in range(SCIM_PEOPLE + 1)
    ]
    assert {m.status_code for m in made} == {201}
    ids = [m.json["id"] for m in made]
    assert scim.delete(f"/Users/{ids[-1]}").status_code == 204
    session.expire_all()
    by_email = {
        u.email: u for u in session.scalars(select(User).where(User.organisation_id == org.id))
    }
    deleted_user = by_email[f"{prefix}{SCIM_PEOPLE}@example.com"]
    admin_user = factories.make_user(session, org, email=f"{prefix}-admin@example.com")
    ldap_user = factories.make_user(session, org, email=f"{prefix}-ldap@example.com")
    session.commit()
    names = {str(by_email[f"{prefix}{i}@example.com"].id): f"scim{i}" for i in range(SCIM_PEOPLE)}
    names |= {
        str(deleted_user.id): "deleted",
        str(admin_user.id): "admin",
        str(ldap_user.id): "ldap",
    }
    return Pool(ids[:-1], ids[-1], admin_user, ldap_user, deleted_user, names)


def group_with(
    scim: ScimClient, session: Session, pool: Pool, name: str, members: list[int]
) -> str:
    body = {**okta_create_group(name), "members": [{"value": pool.scim_ids[i]} for i in members]}
    created = scim.post("/Groups", body)
    assert created.status_code == 201, created.json
    team = session.get_one(Team, uuid.UUID(created.json["id"]))
    ldap = Actor(Source.LDAP, "test-ldap")
    add_to_team(
        session, team=team, user=pool.admin_user, role=TeamRole.MEMBER, actor=factories.SETUP
    )
    # An admin's membership of the person the IdP deleted, as an admin's add made before the
    # deletion left it (an admin's add of a REVOKED person is refused: models.actions.teams).
    deleted = pool.deleted_user.id
    session.add(TeamMembership(team_id=team.id, user_id=deleted, role=TeamRole.MANAGER))
    add_to_team(session, team=team, user=pool.ldap_user, role=TeamRole.MEMBER, actor=ldap)
    session.commit()
    return str(created.json["id"])


def outcome(
    scim: ScimClient,
    session: Session,
    pool: Pool,
    group: str,
    answer: Any,
    seen: tuple[Any, set[Any]],
) -> tuple[Any, ...]:
    """What the PATCH did, in the pool's own names."""
    now = scim.get(f"/Groups/{group}").json
    members = sorted(
        pool.names.get(_user_of(session, m["value"]), m["value"]) for m in now.get("members", [])
    )
    session.expire_all()
    team = session.get_one(Team, uuid.UUID(group))
    everyone = sorted(
        pool.names[str(m.user_id)] + f":{m.role}:{m.source}" for m in team.memberships
    )
    # The members the IdP did not provision are not its to change, whichever path
    assert {"admin:MEMBER:admin", "deleted:MANAGER:admin", "ldap:MEMBER:ldap"} <= set(everyone)
    people = [uuid.UUID(i) for i in pool.names]
    roles = sorted(
        (pool.names[str(u.id)], u.role.value, u.status.value)
        for u in session.scalars(select(User).where(User.id.in_(people)))
    )
    events = sorted(
        (
            e.action,
            e.target_type,
            _named(pool, group, e.target_id),
            _named_doc(pool, group, e.before),
            _named_doc(pool, group, e.after),
        )
        for e in session.scalars(select(AuditEvent).where(AuditEvent.occurred_at >= seen[0]))
        if e.id not in seen[1]
    )
    session.commit()
    shown = None
    if answer.status_code == 200:
        shown = sorted(
            pool.names.get(_user_of(session, m["value"]), m["value"])
            for m in answer.json.get("members", [])
        )
        assert answer.headers["ETag"] == now["meta"]["version"]
    session.commit()  # SQLite: the read's lock is not held while the app writes
    return (
        answer.status_code,
        answer.json.get("scimType") if answer.json else None,
        members,
        shown,
        everyone,
        roles,
        events,
    )


def _user_of(session: Session, scim_id: str) -> str:
    from models.entities import ScimUser

    found = session.get(ScimUser, uuid.UUID(scim_id))
    return str(found.user_id) if found else scim_id


def _named(pool: Pool, group: str, value: Any) -> Any:
    if value == group:
        return "GROUP"
    named = pool.names.get(str(value), value)
    if isinstance(named, str):  # the pools' emails and group names differ by their prefix
        return named.replace("fast", "P").replace("whole", "P")
    return named


def _named_doc(pool: Pool, group: str, doc: Any) -> Any:
    if isinstance(doc, dict):
        return sorted(
            (k, repr(_named_doc(pool, group, v)))
            for k, v in doc.items()
            if k not in ("name", "updated_at", "at")
        )
    if isinstance(doc, list):
        return [_named_doc(pool, group, v) for v in doc]
    return _named(pool, group, doc)


def test_a_membership_patch_ends_as_the_whole_group_patch_does_on_random_requests(
    scim: ScimClient, session: Session, org: Organisation
) -> None:
    set_thresholds(session, organisation=org, actor=factories.SETUP, enabled=False)
    other = factories.make_org(session, "Other")
    other_scim = ScimClient(scim.client, factories.scim_token(session, other))
    session.commit()
    elsewhere = other_scim.post("/Users", okta_create_user("else@example.com", "else")).json["id"]
    pools = [make_pool(scim, session, org, "fast"), make_pool(scim, session, org, "whole")]
    counter = iter(range(10_000))

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    @given(drawn=request, members=initial)
    def check(drawn: list[Any], members: list[int]) -> None:
        n = next(counter)
        results = []
        for way, pool in zip(("fast", "whole"), pools, strict=True):
            name = f"{way}{n}"
            set_group_role(
                session, organisation=org, group_name=name, role=Role.MANAGER, actor=factories.SETUP
            )
            session.commit()
            group = group_with(scim, session, pool, name, members)
            ops = operations(pool, drawn, elsewhere)
            if way == "whole":
                ops = [*ops, {"op": "replace", "path": "displayName", "value": name}]
            last = session.scalar(select(func.max(AuditEvent.occurred_at)))
            seen = set(session.scalars(select(AuditEvent.id).where(AuditEvent.occurred_at == last)))
            session.commit()
            answer = scim.patch(f"/Groups/{group}", {"schemas": [PATCH_OP], "Operations": ops})
            results.append(outcome(scim, session, pool, group, answer, (last, seen)))
            assert scim.delete(f"/Groups/{group}").status_code == 204
        assert results[0] == results[1], (operations(pools[0], drawn, elsewhere), results)

    check()


CONDITIONS = [
    lambda now, stale: {},
    lambda now, stale: {"If-Match": now},
    lambda now, stale: {"If-Match": f'W/"{now.removeprefix("W/").strip(chr(34))}"'},
    lambda now, stale: {"If-Match": now.removeprefix("W/")},
    lambda now, stale: {"If-Match": "*"},
    lambda now, stale: {"If-Match": stale},
    lambda now, stale: {"If-Match": f"{stale}, {now}"},
    lambda now, stale: {"If-None-Match": now},
    lambda now, stale: {"If-None-Match": "*"},
    lambda now, stale: {"If-None-Match": stale},
    lambda now, stale: {"If-None-Match": now.removeprefix("W/")},
]
PROJECTIONS = [
    "",
    "?excludedAttributes=members",
    "?attributes=displayName",
    "?attributes=members",
    "?excludedAttributes=meta",
    "?attributes=displayName&excludedAttributes=members",
]


def test_conditions_and_projections_answer_alike_on_both_paths(scim: ScimClient) -> None:
    made = [scim.post("/Users", okta_create_user(f"c{i}@example.com", f"c{i}")) for i in range(2)]
    people = [m.json["id"] for m in made]
    groups = {}
    for way in ("fast", "whole"):
        body = {**okta_create_group(way), "members": [{"value": people[0]}]}
        groups[way] = scim.post("/Groups", body).json["id"]
    versions: dict[str, list[str]] = {
        w: [scim.get(f"/Groups/{g}").json["meta"]["version"]] for w, g in groups.items()
    }
    step = 0
    for condition in CONDITIONS:
        for query in PROJECTIONS:
            step += 1
            results = []
            for way, group in groups.items():
                op = "add" if step % 2 else "remove"
                ops = [{"op": op, "path": "members", "value": [{"value": people[1]}]}]
                if way == "whole":
                    ops.append({"op": "replace", "path": "displayName", "value": way})
                now, stale = versions[way][-1], versions[way][0]
                headers = condition(now, stale)
                done = scim.patch(
                    f"/Groups/{group}{query}", {"schemas": [PATCH_OP], "Operations": ops}, **headers
                )
                current = scim.get(f"/Groups/{group}").json
                if current["meta"]["version"] != versions[way][-1]:
                    versions[way].append(current["meta"]["version"])
                members = sorted(m["value"] for m in current.get("members", []))
                body = done.json or {}
                shown = sorted(k for k in body if k not in ("id",))
                if done.status_code == 200:
                    assert done.headers["ETag"] == current["meta"]["version"], (way, headers, query)
                results.append(
                    (done.status_code, body.get("scimType"), members, shown, "members" in body)
                )
            assert results[0] == results[1], (
                condition(versions["fast"][-1], versions["fast"][0]),
                query,
                results,
            )


# (members before, operations, members after): people by index, "A" is person 0's id in upper
# case. members.value is caseExact false (RFC 7643 section 8.7.1): every form names a member
# in any case, as `members[value eq "A"]` and a filter on members.value do.
UPPER_CASE_MEMBERS: list[tuple[list[int], list[tuple[str, Any]], list[int]]] = [
    ([0, 1], [("remove", ["A"])], [1]),
    ([0, 1], [("remove filter", "A")], [1]),
    ([0], [("add", ["A"]), ("remove", [0])], []),
    ([], [("add", ["A"]), ("remove", [0])], []),
    ([], [("add", ["A"]), ("remove filter", 0)], []),
    ([0], [("remove", ["A"]), ("add", [0])], [0]),
    ([0], [("add", ["A", 0])], [0]),
    ([], [("add", ["A"])], [0]),
    ([0], [("remove", [0]), ("add", ["A"])], [0]),
]


def test_a_member_named_in_upper_case_is_the_member_on_every_patch_form(
    scim: ScimClient,
) -> None:
    """A remove of `members` with the value list [{"value": "<id in upper case>"}] did
    nothing (the filter form removed the member), and an add in upper case of a member the
    PATCH then removed in lower case kept it: members were told apart by their value as
    sent, on both paths (the membership fast path and the whole-group PATCH)."""
    made = [scim.post("/Users", okta_create_user(f"u{i}@example.com", f"u{i}")) for i in range(2)]
    people = [m.json["id"] for m in made]

    def named(who: Any) -> str:
        return people[0].upper() if who == "A" else people[who]

    wrong = []
    for n, (before, steps, after) in enumerate(UPPER_CASE_MEMBERS):
        for way in ("fast", "whole"):
            body = {
                **okta_create_group(f"{way}{n}"),
                "members": [{"value": people[i]} for i in before],
            }
            group = scim.post("/Groups", body).json["id"]
            ops: list[dict[str, Any]] = []
            for op, who in steps:
                if op == "remove filter":
                    ops.append({"op": "remove", "path": f'members[value eq "{named(who)}"]'})
                else:
                    ops.append(
                        {"op": op, "path": "members", "value": [{"value": named(w)} for w in who]}
                    )
            if way == "whole":
                ops.append({"op": "replace", "path": "displayName", "value": f"{way}{n}"})
            answer = scim.patch(f"/Groups/{group}", {"schemas": [PATCH_OP], "Operations": ops})
            assert answer.status_code == 200, answer.json
            members = sorted(
                m["value"] for m in scim.get(f"/Groups/{group}").json.get("members", [])
            )
            if members != sorted(people[i] for i in after):
                wrong.append((way, steps))
    assert wrong == []
