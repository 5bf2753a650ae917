"""Group writes, odock-sync against the reference SCIM server (scim2-server), as
test_differential_user_writes.py does for users: the same users and groups loaded into
both (three group names mapped to roles), then a few hundred generated POST, PUT, PATCH and
DELETE requests on groups sent to both (with the shapes Okta, Entra ID and OneLogin send,
and If-Match / If-None-Match), comparing the status, the scimType of an error and the
group read back (members as a set of userNames: each server makes its own ids). Every
difference left is one docs/scim.md lists with its RFC reason (KNOWN_DIFFERENCES below),
and each listed difference must still be seen. Every refusal of ours must change nothing
(the group, the teams, memberships and roles behind it, no audit event), and every change
of ours must leave an audit event of source `scim`."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from scim2_server import service
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.actions.scim import set_group_role
from models.db import SessionFactory
from models.entities import AuditEvent, Organisation
from models.enums import Role, Source
from tests.scim.conftest import SCIM_TABLES
from tests.scim.payloads import GROUP, MICROSOFT_GROUP, PATCH_OP, USER
from tests.scim.test_differential import Answer, Ours, Reference, generated_users
from tests.scim.test_differential_groups import NAMES, _substitute, generated_groups
from tests.support import factories
from tests.support.scim_writes import (
    Difference,
    Listed,
    Write,
    assert_only_listed,
    op,
    outcome,
    patch,
)
from tests.support.state import State, database_state

SEED = 20261207
USER_COUNT = 12
SCIM = "application/scim+json"
UNKNOWN_UUID = "3f1e2d4c-0000-4000-8000-00000000dead"
STALE = 'W/"stale-version"'
# Members of these groups hold these roles (the CLI's `scim group-role set`).
MAPPED = {"R&D": Role.ORG_ADMIN, "Sales": Role.MANAGER, "Odock Managers": Role.MANAGER}

# Each template makes a request for group slot N from the spec that group was made from
# ({"displayName", "externalId"?, "members": [user positions]}).
Template = Callable[[int, dict[str, Any]], Write]


def members(*positions: int | str, **more: Any) -> list[dict[str, Any]]:
    """Members by user position (each server's id put in), or a literal id."""
    return [{"value": p if isinstance(p, str) else f"{{user:{p}}}", **more} for p in positions]


def a_member(base: dict[str, Any]) -> int:
    """A user the group was made with (user 0 when it was made empty)."""
    return base["members"][0] if base["members"] else 0


def an_outsider(base: dict[str, Any]) -> int:
    """A user the group was not made with."""
    return next(u for u in range(USER_COUNT) if u not in base["members"])


def group_body(spec: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP], "displayName": spec["displayName"]}
    if "externalId" in spec:
        body["externalId"] = spec["externalId"]
    body["members"] = members(*spec["members"])
    return body


def _patch(label: str, make: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> Template:
    return lambda n, base: Write(label, "PATCH", f"/Groups/{{group:{n}}}", patch(*make(base)))


def _raw_patch(label: str, body: Any) -> Template:
    return lambda n, base: Write(label, "PATCH", f"/Groups/{{group:{n}}}", body)


def _conditional(label: str, method: str, header: str, tag: str) -> Template:
    def make(n: int, base: dict[str, Any]) -> Write:
        body: Any = None
        if method == "PATCH":
            body = patch(op("add", "members", members(an_outsider(base))))
        elif method == "PUT":
            body = group_body(base) | {"displayName": f"Put {{k}} {base['displayName']}"}
        return Write(label, method, f"/Groups/{{group:{n}}}", body, headers=((header, tag),))

    return make


PATCHES: list[Template] = [
    _patch("add members", lambda b: [op("add", "members", members(an_outsider(b), 0))]),
    _patch("add a member it has", lambda b: [op("add", "members", members(a_member(b)))]),
    _patch("add the same member twice", lambda b: [op("add", "members", members(1, 1))]),
    _patch("add no members", lambda b: [op("add", "members", [])]),
    _patch("add an unknown member", lambda b: [op("add", "members", members(UNKNOWN_UUID))]),
    _patch("add a member not an id", lambda b: [op("add", "members", members("no-such-user"))]),
    _patch("add a group as member", lambda b: [op("add", "members", members("{group:0}"))]),
    _patch(
        "add a nested group member",
        lambda b: [op("add", "members", members("{group:0}", type="Group"))],
    ),
    _patch("add a member object", lambda b: [op("add", "members", {"value": "{user:2}"})]),
    _patch("add a member as a bare id", lambda b: [op("add", "members", ["{user:2}"])]),
    _patch("add a member without value", lambda b: [op("add", "members", [{"display": "x"}])]),
    _patch("add a member value wrong type", lambda b: [op("add", "members", [{"value": 7}])]),
    _patch(
        "Add members (Entra ID)",
        lambda b: [op("Add", "members", members(an_outsider(b)))],
    ),
    _patch(
        "add members with display (Okta)",
        lambda b: [op("add", "members", members(an_outsider(b), 3, display="Someone"))],
    ),
    _patch(
        "add a batch of members (Okta group push)",
        lambda b: [op("add", "members", members(*range(USER_COUNT)))],
    ),
    _patch(
        "remove members one by one (Okta group push)",
        lambda b: (
            [op("remove", f'members[value eq "{{user:{u}}}"]') for u in b["members"][:3]]
            or [op("remove", 'members[value eq "{user:0}"]')]
        ),
    ),
    _patch(
        "add and remove in one request (Okta group push)",
        lambda b: [
            op("add", "members", members(an_outsider(b))),
            op("remove", f'members[value eq "{{user:{a_member(b)}}}"]'),
        ],
    ),
    _patch(
        "remove a member by filter",
        lambda b: [op("remove", f'members[value eq "{{user:{a_member(b)}}}"]')],
    ),
    _patch(
        "remove a non-member by filter",
        lambda b: [op("remove", f'members[value eq "{{user:{an_outsider(b)}}}"]')],
    ),
    _patch(
        "remove an unknown member by filter",
        lambda b: [op("remove", f'members[value eq "{UNKNOWN_UUID}"]')],
    ),
    _patch(
        "REMOVE MEMBERS[VALUE EQ …]",
        lambda b: [op("REMOVE", f'MEMBERS[VALUE eq "{{user:{a_member(b)}}}"]')],
    ),
    _patch(
        "remove members by an or filter",
        lambda b: [op("remove", 'members[value eq "{user:0}" or value eq "{user:1}"]')],
    ),
    _patch("remove members pr filter", lambda b: [op("remove", "members[value pr]")]),
    _patch("remove members", lambda b: [op("remove", "members")]),
    _patch("Remove members (Entra ID)", lambda b: [op("Remove", "members")]),
    _patch(
        "Remove members by value list (Entra ID)",
        lambda b: [op("Remove", "members", members(a_member(b)))],
    ),
    _patch(
        "remove members by value list, a non-member",
        lambda b: [op("remove", "members", members(an_outsider(b)))],
    ),
    _patch(
        "remove members by value list, an unknown id",
        lambda b: [op("remove", "members", members(UNKNOWN_UUID))],
    ),
    _patch("remove members by empty value list", lambda b: [op("remove", "members", [])]),
    _patch("replace members", lambda b: [op("replace", "members", members(2, 4))]),
    _patch("replace members with none", lambda b: [op("replace", "members", [])]),
    _patch("Replace members (case)", lambda b: [op("Replace", "members", members(5))]),
    _patch(
        "replace members, an unknown id",
        lambda b: [op("replace", "members", members(UNKNOWN_UUID))],
    ),
    _patch("replace members.value", lambda b: [op("replace", "members.value", "{user:1}")]),
    _patch(
        "replace members[value eq].value",
        lambda b: [
            op("add", "members", members(3)),
            op("replace", 'members[value eq "{user:3}"].value', "{user:1}"),
        ],
    ),
    _patch(
        "replace members[value eq].display",
        lambda b: [
            op("add", "members", members(3)),
            op("replace", 'members[value eq "{user:3}"].display', "x"),
        ],
    ),
    _patch("add members null", lambda b: [{"op": "add", "path": "members", "value": None}]),
    _patch("replace members null", lambda b: [{"op": "replace", "path": "members", "value": None}]),
    _patch("replace without value", lambda b: [op("replace", "members")]),
    _patch(
        "replace displayName null",
        lambda b: [{"op": "replace", "path": "displayName", "value": None}],
    ),
    _patch(
        "replace externalId null",
        lambda b: [{"op": "replace", "path": "externalId", "value": None}],
    ),
    _patch("replace displayName", lambda b: [op("replace", "displayName", "Renamed {k}")]),
    _patch("Replace DisplayName", lambda b: [op("Replace", "DisplayName", "Cased {k}")]),
    _patch(
        "replace displayName, its own", lambda b: [op("replace", "displayName", b["displayName"])]
    ),
    _patch(
        "replace displayName, its own in upper case",
        lambda b: [op("replace", "displayName", b["displayName"].upper())],
    ),
    _patch("replace displayName taken", lambda b: [op("replace", "displayName", "{gname:0}")]),
    _patch(
        "replace displayName taken, other case",
        lambda b: [op("replace", "displayName", "{GNAME:0}")],
    ),
    _patch(
        "replace displayName, a mapped name",
        lambda b: [op("replace", "displayName", "Odock Managers")],
    ),
    _patch("replace displayName empty", lambda b: [op("replace", "displayName", "")]),
    _patch("replace displayName wrong type", lambda b: [op("replace", "displayName", 12)]),
    _patch("remove displayName", lambda b: [op("remove", "displayName")]),
    _patch("replace externalId", lambda b: [op("replace", "externalId", "ext-{k}")]),
    _patch("add externalId", lambda b: [op("add", "externalId", "Ext-{k}")]),
    _patch("remove externalId", lambda b: [op("remove", "externalId")]),
    _patch(
        "replace no path, name and externalId",
        lambda b: [op("replace", value={"displayName": "No Path {k}", "externalId": "np-{k}"})],
    ),
    _patch(
        "replace no path with id (Okta rename)",
        lambda b: [op("replace", value={"id": "{group:{n}}", "displayName": "Okta {k}"})],
    ),
    _patch("replace no path, members", lambda b: [op("replace", value={"members": members(6)})]),
    _patch("add no path, members", lambda b: [op("add", value={"members": members(7)})]),
    _patch(
        "replace no path, taken name", lambda b: [op("replace", value={"displayName": "{gname:0}"})]
    ),
    _patch("replace no path, unknown key", lambda b: [op("replace", value={"shoeSize": "42"})]),
    _patch("replace no path, not an object", lambda b: [op("replace", value="Renamed")]),
    _patch("replace unknown attribute", lambda b: [op("replace", "shoeSize", "42")]),
    _patch("replace id", lambda b: [op("replace", "id", "new-id")]),
    _patch("bad path syntax", lambda b: [op("remove", "members[value eq")]),
    _patch("bad filter attribute", lambda b: [op("remove", 'members[shoe eq "x"]')]),
    _patch("unknown op", lambda b: [op("delete", "members")]),
    _patch("missing op", lambda b: [{"path": "displayName", "value": "x"}]),
    _patch("remove without path", lambda b: [op("remove")]),
    _patch("add without value", lambda b: [op("add", "members")]),
    _patch(
        "a change then a bad op",
        lambda b: [op("add", "members", members(an_outsider(b))), op("replace", "id", "x")],
    ),
    _patch(
        "a rename then a taken name",
        lambda b: [
            op("replace", "displayName", "First {k}"),
            op("replace", "displayName", "{gname:0}"),
        ],
    ),
    _raw_patch("Operations missing", {"schemas": [PATCH_OP]}),
    _raw_patch("Operations empty", {"schemas": [PATCH_OP], "Operations": []}),
    _raw_patch("Operations not a list", {"schemas": [PATCH_OP], "Operations": {}}),
    _raw_patch(
        "PatchOp without schemas",
        {"Operations": [op("replace", "displayName", "Schemaless {k}")]},
    ),
    _raw_patch(
        "PatchOp with the Group schema",
        {"schemas": [GROUP], "Operations": [op("replace", "displayName", "Wrong {k}")]},
    ),
    _raw_patch("body a list", [op("replace", "displayName", "List {k}")]),
    _conditional("PATCH If-Match current", "PATCH", "If-Match", "{etag}"),
    _conditional("PATCH If-Match stale", "PATCH", "If-Match", STALE),
    _conditional("PATCH If-Match *", "PATCH", "If-Match", "*"),
    _conditional("PATCH If-None-Match *", "PATCH", "If-None-Match", "*"),
    _conditional("PATCH If-None-Match current", "PATCH", "If-None-Match", "{etag}"),
    _conditional("PATCH If-None-Match stale", "PATCH", "If-None-Match", STALE),
    lambda n, base: Write(
        "PATCH unknown id",
        "PATCH",
        f"/Groups/{UNKNOWN_UUID}",
        patch(op("replace", "displayName", "Nobody {k}")),
    ),
]


def _put(label: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Template:
    return lambda n, base: Write(label, "PUT", f"/Groups/{{group:{n}}}", change(group_body(base)))


def _without(*keys: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: {k: v for k, v in d.items() if k not in keys}


PUTS: list[Template] = [
    _put("PUT as created", lambda d: d),
    _put("PUT renamed", lambda d: d | {"displayName": "Put {k}"}),
    _put(
        "PUT renamed, its own in upper case",
        lambda d: d | {"displayName": d["displayName"].upper()},
    ),
    _put("PUT renamed to a taken name", lambda d: d | {"displayName": "{gname:0}"}),
    _put("PUT renamed to a taken name, other case", lambda d: d | {"displayName": "{GNAME:0}"}),
    _put("PUT other members", lambda d: d | {"members": members(1, 8, 9)}),
    _put("PUT no members", lambda d: d | {"members": []}),
    _put("PUT without members", _without("members")),
    _put("PUT duplicate members", lambda d: d | {"members": members(3, 3)}),
    _put("PUT an unknown member", lambda d: d | {"members": members(1, UNKNOWN_UUID)}),
    _put("PUT a member not an id", lambda d: d | {"members": members("no-such-user")}),
    _put("PUT new externalId", lambda d: d | {"externalId": "put-{k}"}),
    _put("PUT without externalId", _without("externalId")),
    _put("PUT without displayName", _without("displayName")),
    _put("PUT displayName empty", lambda d: d | {"displayName": ""}),
    _put("PUT displayName wrong type", lambda d: d | {"displayName": 12}),
    _put("PUT without schemas", _without("schemas")),
    _put("PUT with the User schema", lambda d: d | {"schemas": [USER]}),
    _put(
        "PUT with id and meta",
        lambda d: d | {"id": "{group:{n}}", "meta": {"resourceType": "Group"}},
    ),
    _put("PUT with another id", lambda d: d | {"id": "not-the-id"}),
    _put("PUT unknown attribute", lambda d: d | {"shoeSize": "42"}),
    _put(
        "PUT whole group (Okta without PATCH)",
        lambda d: d | {"id": "{group:{n}}", "members": members(0, 2, display="Someone")},
    ),
    _put("PUT members as one object", lambda d: d | {"members": {"value": "{user:4}"}}),
    _put("PUT a nested group", lambda d: d | {"members": members("{group:0}", type="Group")}),
    _conditional("PUT If-Match current", "PUT", "If-Match", "{etag}"),
    _conditional("PUT If-Match stale", "PUT", "If-Match", STALE),
    _conditional("PUT If-None-Match *", "PUT", "If-None-Match", "*"),
    lambda n, base: Write("PUT unknown id", "PUT", f"/Groups/{UNKNOWN_UUID}", group_body(base)),
    # A body that is no object is invalidSyntax (RFC 7644 section 3.12); it was invalidValue.
    lambda n, base: Write("PUT a list", "PUT", f"/Groups/{{group:{n}}}", [group_body(base)]),
]


def _post(label: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Template:
    def make(n: int, base: dict[str, Any]) -> Write:
        fresh = group_body(base) | {"displayName": f"New {{k}} {base['displayName']}"}
        if "externalId" in fresh:
            fresh["externalId"] = "new-{k}"
        return Write(label, "POST", "/Groups", change(fresh))

    return make


POSTS: list[Template] = [
    lambda n, base: Write("POST a string", "POST", "/Groups", "a group"),
    _post("POST", lambda d: d),
    _post("POST no members", _without("members")),
    _post("POST empty members", lambda d: d | {"members": []}),
    _post("POST with externalId", lambda d: d | {"externalId": "Grp-{k}"}),
    _post("POST duplicate members", lambda d: d | {"members": members(2, 2, 5)}),
    _post("POST an unknown member", lambda d: d | {"members": members(0, UNKNOWN_UUID)}),
    _post("POST a member not an id", lambda d: d | {"members": members("no-such-user")}),
    _post("POST a nested group", lambda d: d | {"members": members("{group:0}", type="Group")}),
    _post("POST with display (Okta)", lambda d: d | {"members": members(1, 2, display="P")}),
    _post("POST name taken", lambda d: d | {"displayName": "{gname:0}"}),
    _post("POST name taken, other case", lambda d: d | {"displayName": "{GNAME:0}"}),
    _post("POST a mapped name", lambda d: d | {"displayName": "Odock Managers"}),
    _post("POST without displayName", _without("displayName")),
    _post("POST displayName empty", lambda d: d | {"displayName": ""}),
    _post("POST displayName wrong type", lambda d: d | {"displayName": 12}),
    _post("POST without schemas", _without("schemas")),
    _post("POST with the User schema", lambda d: d | {"schemas": [USER]}),
    _post(
        "POST with Entra ID's schema",
        lambda d: d | {"schemas": [GROUP, MICROSOFT_GROUP], "externalId": "entra-{k}"},
    ),
    _post("POST with id and meta", lambda d: d | {"id": "mine", "meta": {"resourceType": "Group"}}),
    _post("POST unknown attribute", lambda d: d | {"shoeSize": "42"}),
    _post("POST members not a list", lambda d: d | {"members": "{user:1}"}),
]


DELETES: list[Template] = [
    lambda n, base: Write("DELETE", "DELETE", f"/Groups/{{group:{n}}}"),
    lambda n, base: Write("DELETE unknown id", "DELETE", f"/Groups/{UNKNOWN_UUID}"),
    _conditional("DELETE If-Match current", "DELETE", "If-Match", "{etag}"),
    _conditional("DELETE If-Match stale", "DELETE", "If-Match", STALE),
]


class Servers:
    """Both servers, with each one's ids of the users and of the groups in slots 0..N."""

    def __init__(self, scim: Any) -> None:
        self.scim = scim
        self.servers = {"ours": Ours(scim), "theirs": Reference()}
        self.users: dict[str, list[str]] = {"ours": [], "theirs": []}
        self.user_names: dict[str, dict[str, str]] = {"ours": {}, "theirs": {}}
        self.slots: dict[str, list[str]] = {"ours": [], "theirs": []}
        self.bases: list[dict[str, Any]] = []

    def text(self, side: str, text: str, n: int, k: int) -> str:
        text = text.replace("{n}", str(n)).replace("{k}", str(k))
        if "{etag}" in text:
            text = text.replace("{etag}", self.etag(side, n))
        for key, make in (
            ("user", lambda i: self.users[side][i]),
            ("group", lambda i: self.slots[side][i]),
            ("gname", lambda i: self.bases[i]["displayName"]),
            ("GNAME", lambda i: self.bases[i]["displayName"].upper()),
        ):
            text = re.sub(r"\{" + key + r":(\d+)\}", lambda m, f=make: f(int(m[1])), text)
        return text

    def etag(self, side: str, n: int) -> str:
        answer = self.servers[side].request("GET", f"/Groups/{self.slots[side][n]}")
        return str(answer.body["meta"]["version"])

    def send(self, side: str, write: Write, n: int, k: int) -> Answer:
        path = self.text(side, write.path, n, k)
        headers = {name: self.text(side, value, n, k) for name, value in write.headers}
        body = _substitute(write.body, lambda t: self.text(side, t, n, k))
        if side == "ours":
            response = self.scim.request(write.method, path, body, **headers)
        else:
            headers |= {"Accept": SCIM, "Content-Type": SCIM}
            response = self.servers["theirs"].client.open(
                "/v2" + path, method=write.method, json=body, headers=headers
            )
        return Answer(response.status_code, response.get_json(silent=True))

    def add_user(self, document: dict[str, Any]) -> None:
        for side, server in self.servers.items():
            answer = server.request("POST", "/Users", document)
            assert answer.status == 201, (side, answer.body)
            self.users[side].append(answer.body["id"])
            self.user_names[side][answer.body["id"]] = answer.body["userName"]

    def fill(self, n: int, spec: dict[str, Any]) -> None:
        """Group slot n, created in both from `spec`."""
        if n == len(self.bases):
            self.bases.append(spec)
            for side in self.slots:
                self.slots[side].append("")
        self.bases[n] = spec
        for side, server in self.servers.items():
            body = _substitute(group_body(spec), lambda t, s=side: self.text(s, t, n, 0))
            answer = server.request("POST", "/Groups", body)
            assert answer.status == 201, (side, answer.body)
            self.slots[side][n] = answer.body["id"]

    def read(self, side: str, group_id: str) -> dict[str, Any] | None:
        answer = self.servers[side].request("GET", f"/Groups/{group_id}")
        if answer.status == 404:
            return None
        assert answer.status == 200, (side, answer.body)
        return self.document(side, answer.body)

    def document(self, side: str, resource: dict[str, Any]) -> dict[str, Any]:
        """What both should agree on: no ids, meta or schemas; members as a set of userNames
        (an id neither server knows stands as itself)."""
        document = {
            k: v for k, v in resource.items() if k not in ("id", "meta", "schemas", "members")
        }
        names = self.user_names[side]
        values = {m.get("value") for m in resource.get("members") or [] if isinstance(m, dict)}
        document["members"] = sorted(names.get(str(v), str(v)) for v in values)
        return document


def scim_audits(sessions: SessionFactory) -> int:
    with sessions() as session:
        return (
            session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.source == Source.SCIM)
            )
            or 0
        )


def refill_specs() -> list[dict[str, Any]]:
    """Groups to put in a slot whose group a difference or a DELETE took away."""
    rng = random.Random(SEED + 1)
    return [
        {
            "displayName": f"Refill {i} {rng.choice(NAMES)}",
            **({"externalId": f"refill-{i}"} if rng.random() < 0.5 else {}),
            "members": sorted(rng.sample(range(USER_COUNT), rng.choice([0, 1, 3, 6]))),
        }
        for i in range(400)
    ]


@pytest.fixture
def servers(scim, session, org, monkeypatch) -> Servers:
    return loaded_servers(scim, session, org, monkeypatch)


def loaded_servers(
    scim: Any, session: Session, org: Organisation, monkeypatch: pytest.MonkeyPatch
) -> Servers:
    """Both servers with the same users, groups and group roles (test_differential_patch_lists
    .py too)."""
    # As in the user writes' differential: the reference's PatchOp model built once.
    monkeypatch.setattr(service, "parametrize", functools.cache(service.parametrize))
    for name, role in MAPPED.items():
        set_group_role(session, organisation=org, group_name=name, role=role, actor=factories.SETUP)
    session.commit()
    servers = Servers(scim)
    for user in generated_users(USER_COUNT):
        servers.add_user(user)
    for n, spec in enumerate(generated_groups(USER_COUNT)):
        servers.fill(n, spec)
    return servers


def generated_writes(count: int, slots: int) -> list[tuple[Template, int]]:
    """Every template once, then random ones, each on a random group slot (slot 0 is never
    written: it is the one whose displayName the clashes take)."""
    rng = random.Random(SEED)
    templates = [*PATCHES, *PUTS, *POSTS, *DELETES]
    chosen = list(templates) + [rng.choice(templates) for _ in range(count - len(templates))]
    rng.shuffle(chosen)
    return [(t, rng.randrange(1, slots)) for t in chosen]


# The rows the user writes' differential lists too: one rule for both resources.
UNKNOWN_IGNORED = Listed(
    "POST or PUT with an attribute or sub-attribute no schema has",
    (201, None),
    (400, "invalidSyntax"),
)
UNKNOWN_IGNORED_PUT = Listed(UNKNOWN_IGNORED.row, (200, None), UNKNOWN_IGNORED.theirs)
PATCH_OP_MALFORMED = Listed(
    "a PatchOp without Operations, or an operation without a known op",
    (400, "invalidSyntax"),
    (400, "invalidValue"),
)
REMOVE_BY_VALUES = Listed("remove with a value list (Entra ID)", (200, None), (400, "invalidValue"))
# The groups' own.
NAME_TAKEN = Listed(
    "a group's displayName another group has, in any case", (409, "uniqueness"), (200, None)
)
NAME_TAKEN_POST = Listed(NAME_TAKEN.row, (409, "uniqueness"), (201, None))
NOT_A_USER = Listed(
    "a member that is not a user of the organisation", (400, "invalidValue"), (200, None)
)
NOT_A_USER_POST = Listed(NOT_A_USER.row, (400, "invalidValue"), (201, None))
NO_MEMBER_VALUE = Listed("a member without value", (400, "invalidValue"), (200, None))
NAME_EMPTY = Listed("an empty displayName", (400, "invalidValue"), (200, None))
NAME_EMPTY_POST = Listed(NAME_EMPTY.row, (400, "invalidValue"), (201, None))
ENTRA_SCHEMA = Listed("Entra ID's Group schema URN", (201, None), (400, "invalidSyntax"))
MEMBER_BARE_ID = Listed("a member as a bare id", (200, None), (400, "invalidValue"))
MEMBERS_ONE_OBJECT = Listed("members as one object on PUT", (200, None), (400, "invalidValue"))
NAME_NULL = Listed("replace displayName null", (400, "invalidValue"), (400, "mutability"))
MEMBER_DISPLAY_PATH = Listed(
    "a PATCH path to a member's display", (400, "invalidPath"), (200, None)
)

# Each generated request's label -> the listed difference it may show. An unlisted
# difference fails the test, and so does a listed one no request showed.
KNOWN_DIFFERENCES: dict[str, Listed] = {
    "POST unknown attribute": UNKNOWN_IGNORED,
    "PUT unknown attribute": UNKNOWN_IGNORED_PUT,
    "Operations missing": PATCH_OP_MALFORMED,
    "Operations not a list": PATCH_OP_MALFORMED,
    "Operations empty": PATCH_OP_MALFORMED,
    "unknown op": PATCH_OP_MALFORMED,
    "missing op": PATCH_OP_MALFORMED,
    "Remove members by value list (Entra ID)": REMOVE_BY_VALUES,
    "remove members by value list, a non-member": REMOVE_BY_VALUES,
    "remove members by value list, an unknown id": REMOVE_BY_VALUES,
    "remove members by empty value list": REMOVE_BY_VALUES,
    "POST name taken": NAME_TAKEN_POST,
    "POST name taken, other case": NAME_TAKEN_POST,
    "POST a mapped name": NAME_TAKEN_POST,
    "PUT renamed to a taken name": NAME_TAKEN,
    "PUT renamed to a taken name, other case": NAME_TAKEN,
    "replace displayName taken": NAME_TAKEN,
    "replace displayName taken, other case": NAME_TAKEN,
    "replace displayName, a mapped name": NAME_TAKEN,
    "replace no path, taken name": NAME_TAKEN,
    "a rename then a taken name": NAME_TAKEN,
    "add an unknown member": NOT_A_USER,
    "add a member not an id": NOT_A_USER,
    "add a group as member": NOT_A_USER,
    "add a nested group member": NOT_A_USER,
    "replace members, an unknown id": NOT_A_USER,
    "PUT an unknown member": NOT_A_USER,
    "PUT a member not an id": NOT_A_USER,
    "PUT a nested group": NOT_A_USER,
    "POST an unknown member": NOT_A_USER_POST,
    "POST a member not an id": NOT_A_USER_POST,
    "POST a nested group": NOT_A_USER_POST,
    "add a member without value": NO_MEMBER_VALUE,
    "replace displayName empty": NAME_EMPTY,
    "PUT displayName empty": NAME_EMPTY,
    "POST displayName empty": NAME_EMPTY_POST,
    "replace displayName null": NAME_NULL,
    "POST with Entra ID's schema": ENTRA_SCHEMA,
    "add a member as a bare id": MEMBER_BARE_ID,
    "PUT members as one object": MEMBERS_ONE_OBJECT,
    "replace members[value eq].display": MEMBER_DISPLAY_PATH,
}


def test_group_writes_agree_with_the_reference_server(servers, sessions):
    pool = iter(refill_specs())
    differences: list[Difference] = []
    read_back: dict[int, dict[str, Any] | None] = {}
    stored: State | None = None
    audited: int | None = None
    generated = generated_writes(360, len(servers.bases))
    for k, (template, n) in enumerate(generated):
        write = template(n, servers.bases[n])
        before = read_back.pop(n, None) or servers.read("ours", servers.slots["ours"][n])
        if audited is None:
            audited = scim_audits(sessions)
        if stored is None:  # the tables as they are now, only read again after a change
            stored = database_state(sessions, SCIM_TABLES)
        outcomes = {}
        for side in ("ours", "theirs"):
            answer = servers.send(side, write, n, k)
            if write.method == "POST":
                created = answer.body.get("id") if answer.status == 201 else None
                document = servers.read(side, created) if created else None
            else:
                document = servers.read(side, servers.slots[side][n])
            outcomes[side] = outcome(write, answer.status, answer.body, document)
        ours, theirs = outcomes["ours"], outcomes["theirs"]
        audits = scim_audits(sessions)
        if ours.status >= 400:
            if write.method != "POST":
                assert ours.document == before, write  # a refusal changes nothing
            assert database_state(sessions, SCIM_TABLES) == stored, write
            assert audits == audited, write  # and audits nothing
        else:
            if ours.document != before or write.method in ("POST", "DELETE"):
                assert audits > audited, write  # every change of state is audited
            stored = None
        audited = audits
        if ours != theirs:
            differences.append(Difference(write, ours, theirs))
        if ours != theirs or (write.method == "DELETE" and ours.status < 400):
            servers.fill(n, next(pool))
            stored = audited = None
        elif write.method != "POST":
            read_back[n] = ours.document  # the next write's "before"
    assert len(generated) >= 300
    assert_only_listed(differences, KNOWN_DIFFERENCES)
