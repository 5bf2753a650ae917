"""Groups, odock-sync against the reference SCIM server (scim2-server), as
test_differential.py does for users: the same users and groups loaded into both, then
filters, sorts, projections and PATCH operations sent to both and the answers compared.
Member ids differ between the servers, so members are compared by their userName."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.scim.payloads import GROUP, PATCH_OP
from tests.scim.test_differential import (
    Answer,
    Difference,
    Ours,
    Reference,
    generated_users,
    id_forms,
    json_string,
)

SEED = 20261205
USER_COUNT = 12
NAMES = [
    "Engineering",
    "engineering-EU",
    "Émile's team",
    "ÉQUIPE",
    "R&D",
    "50% club",
    "a_b",
    'Say "hi"',
    "Zürich Ops",
    "zurich ops",
    "Ирина",
    "Ops",
    "ops-eu",
    "Sales",
]


def generated_groups(user_count: int) -> list[dict[str, Any]]:
    """Groups named with case, non-ASCII letters and LIKE wildcards; members as user
    positions (each server's own ids are put in when the group is sent)."""
    rng = random.Random(SEED)
    groups = []
    for n, name in enumerate(NAMES):
        group: dict[str, Any] = {"displayName": name}
        if rng.random() < 0.6:
            group["externalId"] = f"{rng.choice(['grp', 'GRP'])}-{n}"
        group["members"] = sorted(rng.sample(range(user_count), rng.choice([0, 1, 3, 7])))
        groups.append(group)
    return groups


# `{user:N}`, also as a query string encodes it (a filter naming a member): it was left
# encoded, and both servers were asked for a member named "{user:3}".
PLACEHOLDER = re.compile(r"(?:\{|%7B)(?P<kind>user|group)(?::|%3A)(?P<n>\d+)(?:\}|%7D)")


class Pair:
    """One request sent to both servers, with `{user:N}` and `{group:N}` standing for each
    server's own id of the Nth user or group."""

    def __init__(self, ours: Ours, theirs: Reference) -> None:
        self.servers = {"ours": ours, "theirs": theirs}
        self.users: dict[str, list[str]] = {"ours": [], "theirs": []}
        self.groups: dict[str, list[str]] = {"ours": [], "theirs": []}
        self.user_names: dict[str, dict[str, str]] = {"ours": {}, "theirs": {}}

    def ids(self, side: str, text: str) -> str:
        def one(match: re.Match[str]) -> str:
            found = self.users if match["kind"] == "user" else self.groups
            return found[side][int(match["n"])]

        return PLACEHOLDER.sub(one, text)

    def send(self, method: str, path: str, body: Any = None) -> dict[str, Answer]:
        answers = {}
        for side, server in self.servers.items():
            sent = body if body is None else _substitute(body, lambda t, s=side: self.ids(s, t))
            answers[side] = server.request(method, self.ids(side, path), sent)
        return answers

    def document(self, side: str, resource: dict[str, Any]) -> dict[str, Any]:
        """What both should agree on: no ids or meta; members as sorted userNames, without
        the `$ref` and `type` odock-sync derives (the reference returns only what it got)."""
        document = {k: v for k, v in resource.items() if k not in ("id", "meta", "members")}
        names = self.user_names[side]
        members = [m["value"] for m in resource.get("members", []) if "value" in m]
        if members:
            document["members"] = sorted(names.get(value, "?") for value in members)
        return document


def _substitute(body: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(body, str):
        return replace(body)
    if isinstance(body, list):
        return [_substitute(item, replace) for item in body]
    if isinstance(body, dict):
        return {k: _substitute(v, replace) for k, v in body.items()}
    return body


@pytest.fixture
def pair(scim) -> Pair:
    return loaded_pair(scim, {})


def loaded_pair(scim, member_extra: dict[str, Any]) -> Pair:
    """Both servers loaded alike; `member_extra` is sent in every member beside its value."""
    pair = Pair(Ours(scim), Reference())
    for user in generated_users(USER_COUNT):
        answers = pair.send("POST", "/Users", user)
        for side, answer in answers.items():
            assert answer.status == 201, (side, answer.body)
            pair.users[side].append(answer.body["id"])
            pair.user_names[side][answer.body["id"]] = answer.body["userName"]
    for group in generated_groups(len(pair.users["ours"])):
        body = {"schemas": [GROUP], **group}
        body["members"] = [{"value": f"{{user:{n}}}", **member_extra} for n in group["members"]]
        answers = pair.send("POST", "/Groups", body)
        for side, answer in answers.items():
            assert answer.status == 201, (side, answer.body)
            pair.groups[side].append(answer.body["id"])
        assert pair.document("ours", answers["ours"].body) == pair.document(
            "theirs", answers["theirs"].body
        )
    return pair


def group_filters() -> list[str]:
    rng = random.Random(SEED + 1)
    shapes: list[Callable[[str], str]] = [
        lambda v: f"displayName eq {json_string(v)}",
        lambda v: f"displayName eq {json_string(v.upper())}",
        lambda v: f"displayName ne {json_string(v.lower())}",
        lambda v: f"displayName co {json_string(v[1:4].upper())}",
        lambda v: f"displayName sw {json_string(v[:2].lower())}",
        lambda v: f"displayName ew {json_string(v[-3:])}",
        lambda v: f"displayName gt {json_string(v)}",
        lambda v: f"displayName le {json_string(v.upper())}",
    ]
    generated = [rng.choice(shapes)(rng.choice(NAMES)) for _ in range(60)]
    return [
        *generated,
        "displayName pr",
        "externalId pr",
        "not (externalId pr)",
        'externalId eq "grp-1"',
        'externalId eq "GRP-1"',
        'externalId sw "GRP"',
        "members pr",
        "not (members pr)",
        'members.value eq "{user:3}"',
        'members[value eq "{user:3}"]',
        'members.value eq "{user:3}" or members.value eq "{user:5}"',
        'members.value eq "{user:3}" and displayName sw "e"',
        'displayName co "%"',
        'displayName co "_"',
        'displayName co "\\""',
        'displayName eq "ZURICH OPS"',
        'displayName sw "é"',
        'schemas eq "urn:ietf:params:scim:schemas:core:2.0:Group"',
        'schemas eq "urn:ietf:params:scim:schemas:core:2.0:User"',
        # the common attributes by the core URN (RFC 7643 section 3.1): they were invalidFilter
        f'{GROUP}:externalId eq "grp-1"',
        f"{GROUP}:externalId pr",
        f'{GROUP}:id eq "{{group:1}}"',
        f'{GROUP}:meta.created gt "2000-01-01T00:00:00Z"',
        f'{GROUP}:meta.lastModified lt "2000-01-01T00:00:00Z"',
        f'{GROUP}:schemas eq "{GROUP}"',
        f'{GROUP}:members.value eq "{{user:3}}"',
    ]


def member_type_filters() -> list[str]:
    """Every member is a user, whose `type` odock-sync answers `User`; scim2-server keeps only
    the members' sent sub-attributes, so these are compared with what it finds once the
    members carry `"type": "User"`."""
    return [
        'members[type eq "User"]',
        'members[type eq "user"]',
        'members[type eq "Group"]',
        "members.type pr",
        'members.type eq "User" and displayName sw "e"',
        'not (members[type eq "User"])',
        'members[value eq "{user:3}" and type eq "User"]',
    ]


GROUP_PATCHES: list[list[dict[str, Any]]] = [
    [{"op": "add", "path": "members", "value": [{"value": "{user:0}"}, {"value": "{user:1}"}]}],
    [{"op": "remove", "path": 'members[value eq "{user:0}"]'}],
    [{"op": "replace", "path": "displayName", "value": "Renamed {n}"}],
    [{"op": "replace", "value": {"displayName": "Renamed again {n}", "externalId": "new-ext-{n}"}}],
    [{"op": "replace", "path": "members", "value": [{"value": "{user:2}"}]}],
    [{"op": "add", "path": "members", "value": [{"value": "{user:2}"}]}],
    [{"op": "remove", "path": "members"}],
    [{"op": "remove", "path": "externalId"}],
]


def test_group_queries_agree_with_the_reference_server(pair):
    differences: list[Difference] = []

    def check(path: str, how: Callable[[str, Answer], Any]) -> None:
        answers = pair.send("GET", path)
        mine, theirs = answers["ours"], answers["theirs"]
        if mine.status != theirs.status:
            differences.append(
                Difference(path, (mine.status, mine.body), (theirs.status, theirs.body))
            )
        elif mine.status == 200 and how("ours", mine) != how("theirs", theirs):
            differences.append(Difference(path, how("ours", mine), how("theirs", theirs)))

    def names(side: str, answer: Answer) -> list[str]:
        return sorted(r.get("displayName", "?") for r in answer.body.get("Resources", []))

    def documents(side: str, answer: Answer) -> list[dict[str, Any]]:
        return [pair.document(side, r) for r in answer.body.get("Resources", [])]

    for expression in group_filters():
        check("/Groups?" + urlencode({"filter": expression, "attributes": "displayName"}), names)
    for attribute in ("displayName", "externalId", f"{GROUP}:externalId"):
        for order in ("ascending", "descending"):
            shown = f"displayName,{attribute}"
            query = {"sortBy": attribute, "sortOrder": order, "attributes": shown}
            check(
                "/Groups?" + urlencode(query),
                lambda side, a, at=attribute: (
                    [_sort_value(r, at) for r in a.body["Resources"]],
                    names(side, a),
                ),
            )
    # GROUP: the core schema's URN alone names every core attribute (it named none)
    for projection in ("displayName", "members", "members.value", "externalId,displayName", GROUP):
        for parameter in ("attributes", "excludedAttributes"):
            query = {parameter: projection, "sortBy": "displayName"}
            check("/Groups?" + urlencode(query), documents)
    for start, size in ((1, 3), (5, 4), (13, 10)):
        query = {"sortBy": "displayName", "startIndex": start, "count": size}
        check("/Groups?" + urlencode(query), names)
    report = "\n".join(f"{d.query}\n  ours:   {d.ours}\n  theirs: {d.theirs}" for d in differences)
    assert differences == [], report
    member = next(g["members"][0] for g in generated_groups(USER_COUNT) if g["members"])
    named = urlencode({"filter": f'members.value eq "{{user:{member}}}"'})
    for answer in pair.send("GET", f"/Groups?{named}").values():
        assert answer.body["totalResults"] >= 1  # the placeholder became the member's id


def test_member_type_filters_agree_with_the_reference_server(scim):
    """`members[type eq "User"]` was invalidFilter in a query while the same filter selected
    every member as a PATCH path; scim2-server matches the members sent with that type."""
    pair = loaded_pair(scim, {"type": "User"})
    differences = []
    for expression in member_type_filters():
        path = "/Groups?" + urlencode({"filter": expression, "attributes": "displayName"})
        answers = pair.send("GET", path)
        found = {
            side: (a.status, sorted(r["displayName"] for r in a.body.get("Resources", [])))
            for side, a in answers.items()
        }
        if found["ours"] != found["theirs"]:
            differences.append((expression, found["ours"], found["theirs"]))
    assert differences == [], "\n".join(map(str, differences))


def _sort_value(resource: dict[str, Any], attribute: str) -> Any:
    """Groups without the attribute tie (sorted last), so only the values are compared."""
    attribute = attribute.rsplit(":", 1)[-1]
    value = resource.get(attribute)
    return value.lower() if isinstance(value, str) and attribute == "displayName" else value


def _succeeded(answer: Answer) -> int:
    """RFC 7644 section 3.5.2: a PATCH answers 200 with the resource or 204 without."""
    return 200 if answer.status in (200, 204) else answer.status


def test_group_patches_agree_with_the_reference_server(pair):
    """Each PATCH in turn on groups with empty, small and larger member lists, then the
    groups read back from both."""
    sizes = [len(group["members"]) for group in generated_groups(USER_COUNT)]
    chosen = sorted({sizes.index(size) for size in set(sizes)})
    for operations in GROUP_PATCHES:
        for position in chosen:
            numbered = _substitute(operations, lambda t, n=position: t.replace("{n}", str(n)))
            body = {"schemas": [PATCH_OP], "Operations": numbered}
            answers = pair.send("PATCH", f"/Groups/{{group:{position}}}", body)
            mine, theirs = answers["ours"], answers["theirs"]
            assert _succeeded(mine) == _succeeded(theirs), (operations, mine.body, theirs.body)
            read = pair.send("GET", f"/Groups/{{group:{position}}}")
            assert pair.document("ours", read["ours"].body) == pair.document(
                "theirs", read["theirs"].body
            ), (operations, NAMES[position])


def test_a_group_id_matches_only_as_it_is_written(pair):
    """`id eq` and every verb on /Groups/{id} with another spelling of a group's id found the
    group; `members.value` with an id's braced, URN or bare-hex spelling matched the member
    (uuid.UUID read them). scim2-server finds nothing. A member id in another case is the
    member (members.value is caseExact false, RFC 7643 section 8.7.1; docs/scim.md)."""
    differences = []
    position, group = next(
        (n, g) for n, g in enumerate(generated_groups(USER_COUNT)) if g["members"]
    )
    for side, server in pair.servers.items():
        group_id = pair.groups[side][position]
        member_id = pair.users[side][group["members"][0]]
        for form, text in id_forms(group_id).items():
            found = server.request("GET", "/Groups?" + urlencode({"filter": f'id eq "{text}"'}))
            if found.body["totalResults"] != 0:
                differences.append((side, form, "id eq", found.body["totalResults"]))
            for method, body in (
                ("GET", None),
                ("PUT", {"schemas": [GROUP], "displayName": "Renamed"}),
                ("PATCH", {"schemas": [PATCH_OP], "Operations": [RENAME]}),
                ("DELETE", None),
            ):
                answer = server.request(method, f"/Groups/{text}", body)
                if answer.status != 404:
                    differences.append((side, form, method, answer.status))
        for form, text in id_forms(member_id).items():
            if form == "upper":
                continue
            expression = f'members.value eq "{text}"'
            found = server.request("GET", "/Groups?" + urlencode({"filter": expression}))
            if found.body["totalResults"] != 0:
                differences.append((side, form, expression, found.body["totalResults"]))
            remove = {"op": "remove", "path": f'members[value eq "{text}"]'}
            server.request(
                "PATCH", f"/Groups/{group_id}", {"schemas": [PATCH_OP], "Operations": [remove]}
            )
            members = server.request("GET", f"/Groups/{group_id}").body.get("members", [])
            if member_id not in [m["value"] for m in members]:
                differences.append((side, form, "removed by", remove["path"]))
    assert differences == [], "\n".join(map(str, differences))


RENAME = {"op": "replace", "path": "displayName", "value": "Renamed"}
