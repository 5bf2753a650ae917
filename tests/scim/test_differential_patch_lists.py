"""PATCH requests of several operations, odock-sync against the reference SCIM server
(scim2-server), on the users and groups of the user and group writes' differentials.

Each generated request is two to four operations drawn from ones both servers answer alike
when sent alone (test_differential_user_writes.py, test_differential_group_writes.py), sent
in sequence to the same users and groups: an operation acts on what the ones before it made
(RFC 7644 section 3.5.2), so the composed requests must agree too, and each resource read
back after them. Every difference left is one docs/scim.md lists (KNOWN_DIFFERENCES).

And a request whose third operation fails changes nothing: "if an error occurs, the
resource MUST NOT be modified" (RFC 7644 section 3.5.2). Ours must answer it as it answers
that operation alone, leave the resource and the SCIM tables as they were and audit
nothing, on either database; the reference must answer it as it answers the operation alone
(or as docs/scim.md lists)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from models.db import SessionFactory
from tests.scim import test_differential_group_writes as group_writes
from tests.scim import test_differential_user_writes as user_writes
from tests.scim.conftest import SCIM_TABLES
from tests.scim.payloads import ENTERPRISE
from tests.scim.test_differential import generated_users
from tests.support.scim_writes import (
    COMPOSED,
    Difference,
    Listed,
    Outcome,
    Write,
    assert_only_listed,
    explained,
    op,
    outcome,
    patch,
)
from tests.support.state import database_state

SEED = 20261208
WORK = 'emails[type eq "work"]'

# An operation made for one resource: from its slot and the spec it was made from.
Operation = Callable[[dict[str, Any]], dict[str, Any]]


def always(operation: dict[str, Any]) -> Operation:
    return lambda base: operation


USER_OPERATIONS: dict[str, Operation] = {
    "replace name.givenName": always(op("replace", "name.givenName", "Renée{k}")),
    "Replace Name.FamilyName": always(op("Replace", "Name.FamilyName", "Ørsted{k}")),
    "remove name.middleName": always(op("remove", "name.middleName")),
    "replace name object": always(op("replace", "name", {"givenName": "Ann", "formatted": "A"})),
    "add name object, no path": always(op("add", value={"name": {"middleName": "Mid{k}"}})),
    "add displayName": always(op("add", "displayName", "Shown {k}")),
    "REMOVE TITLE": always(op("REMOVE", "TITLE")),
    "add title": always(op("add", "title", "Title {k}")),
    "replace no path": always(op("replace", value={"nickName": "np{k}", "title": "Chief"})),
    "replace no path, dotted": always(op("replace", value={"name.familyName": "Dot{k}"})),
    "replace active false": always(op("replace", "active", False)),
    "Replace active True, no path": always(op("Replace", value={"active": True})),
    "replace externalId": always(op("replace", "externalId", "ext-{k}")),
    "add an email": always(op("add", "emails", [{"value": "x{k}@example.net", "type": "other"}])),
    "add a primary email": always(
        op("add", "emails", [{"value": "p{k}@example.net", "type": "work", "primary": True}])
    ),
    "add two emails": always(
        op(
            "add",
            "emails",
            [{"value": "a{k}@example.net", "type": "home"}, {"value": "b{k}@example.net"}],
        )
    ),
    "replace emails": always(op("replace", "emails", [{"value": "o{k}@example.net"}])),
    "remove home emails": always(op("remove", 'emails[type eq "home"]')),
    "remove other emails": always(op("remove", 'emails[type eq "other"]')),
    "remove emails": always(op("remove", "emails")),
    "remove the primary email": always(op("remove", "emails[primary eq true]")),
    "replace emails.type": always(op("replace", "emails.type", "other")),
    "add a phone": always(op("add", "phoneNumbers", [{"value": "+1 555 7{k}", "type": "work"}])),
    "remove phones": always(op("remove", "phoneNumbers")),
    "replace addresses": always(
        op("replace", "addresses", [{"locality": "Lyon", "country": "FR", "type": "work"}])
    ),
    "replace department by URN": always(op("replace", f"{ENTERPRISE}:department", "Legal{k}")),
    "remove employeeNumber by URN": always(op("remove", f"{ENTERPRISE}:employeeNumber")),
    "add enterprise object": always(op("add", ENTERPRISE, {"costCenter": "CC{k}"})),
    "Replace enterprise, no path": always(
        op("Replace", value={f"{ENTERPRISE}:division": "East{k}"})
    ),
    "remove enterprise": always(op("remove", ENTERPRISE)),
    "replace manager": always(op("replace", f"{ENTERPRISE}:manager", {"value": "{user:0}"})),
    "remove manager": always(op("remove", f"{ENTERPRISE}:manager")),
    "replace manager.value": always(op("replace", f"{ENTERPRISE}:manager.value", "{user:0}")),
    "remove department by URN": always(op("remove", f"{ENTERPRISE}:department")),
    "remove name.givenName": always(op("remove", "name.givenName")),
    "add name.givenName": always(op("add", "name.givenName", "Added{k}")),
    "Remove title (Entra ID)": always(op("Remove", "title")),
    # These name the email "add an email" makes, when it comes first.
    "remove the added email": always(op("remove", 'emails[value eq "x{k}@example.net"]')),
    "make the added email primary": always(
        op("replace", 'emails[value eq "x{k}@example.net"].primary', True)
    ),
    "add a second primary email": always(
        op("add", "emails", [{"value": "q{k}@example.net", "primary": True}])
    ),
    "replace other emails' type": always(op("replace", 'emails[type eq "other"].type', "home")),
    "replace work phones' type": always(
        op("replace", 'phoneNumbers[type eq "work"].type', "mobile")
    ),
    "add a primary phone": always(
        op("add", "phoneNumbers", [{"value": "+1 555 8{k}", "type": "mobile", "primary": True}])
    ),
    "remove the primary phone": always(op("remove", "phoneNumbers[primary eq true]")),
    "add emails, no path": always(
        op("add", value={"emails": [{"value": "n{k}@example.net", "type": "home"}]})
    ),
    "replace emails, no path": always(
        op("replace", value={"emails": [{"value": "r{k}@example.net", "primary": True}]})
    ),
    "Add a primary phone, no path": always(
        op("Add", value={"phoneNumbers": [{"value": "+1 555 6{k}", "primary": True}]})
    ),
    "replace Department, URN in upper case": always(
        op("replace", f"{ENTERPRISE.upper()}:Department", "Upper{k}")
    ),
    "Remove CostCenter by URN": always(op("Remove", f"{ENTERPRISE}:CostCenter")),
    "replace Emails[Type eq home].Type": always(
        op("replace", 'Emails[Type eq "home"].Type', "work")
    ),
    "remove PhoneNumbers[Type eq mobile]": always(op("remove", 'PhoneNumbers[Type eq "mobile"]')),
    "replace Addresses.Locality": always(op("replace", "Addresses.Locality", "Nice{k}")),
    "remove emails not of type work": always(op("remove", 'emails[not (type eq "work")]')),
    "remove emails ending .net": always(op("remove", 'emails[value ew ".net"]')),
    "remove work or home emails": always(op("remove", 'emails[type eq "work" or type eq "home"]')),
    "replace home non-primary emails' type": always(
        op("replace", 'emails[type eq "home" and primary eq false].type', "other")
    ),
    "replace emails containing x, primary": always(
        op("replace", 'emails[value co "x"].primary', True)
    ),
    "replace no path, enterprise object": always(
        op("replace", value={ENTERPRISE: {"department": "Obj{k}", "division": "W"}})
    ),
}

GROUP_OPERATIONS: dict[str, Operation] = {
    "add an outsider": lambda b: op(
        "add", "members", group_writes.members(group_writes.an_outsider(b))
    ),
    "Add members (Entra ID)": lambda b: op("Add", "members", group_writes.members(1, 3)),
    "add members with display (Okta)": lambda b: op(
        "add", "members", group_writes.members(2, display="Someone")
    ),
    "remove a member by filter": lambda b: op(
        "remove", f'members[value eq "{{user:{group_writes.a_member(b)}}}"]'
    ),
    "remove user 1 by filter": always(op("remove", 'members[value eq "{user:1}"]')),
    "remove members": always(op("remove", "members")),
    "replace members": always(op("replace", "members", group_writes.members(2, 4))),
    "replace displayName": always(op("replace", "displayName", "Renamed {k}")),
    "replace externalId": always(op("replace", "externalId", "grp-{k}")),
    "replace no path": always(op("replace", value={"displayName": "NoPath {k}"})),
    "add user 5": always(op("add", "members", group_writes.members(5))),
    "remove user 5 by filter": always(op("remove", 'members[value eq "{user:5}"]')),
    "remove users 5 and 6 by an or filter": always(
        op("remove", 'members[value eq "{user:5}" or value eq "{user:6}"]')
    ),
    "replace members with none": always(op("replace", "members", [])),
    "replace no path, with members": always(
        op("replace", value={"displayName": "With {k}", "members": group_writes.members(6)})
    ),
    "remove members pr": always(op("remove", "members[value pr]")),
    "Add Members (case)": always(op("Add", "Members", group_writes.members(7))),
    "remove MEMBERS[VALUE eq user 7]": always(op("remove", 'MEMBERS[VALUE eq "{user:7}"]')),
    "replace DisplayName (case)": always(op("replace", "DisplayName", "Cased {k}")),
    "remove all members but user 1": always(op("remove", 'members[value ne "{user:1}"]')),
    "remove members by not": always(op("remove", 'members[not (value eq "{user:2}")]')),
    "add members, no path": always(op("add", value={"members": group_writes.members(8)})),
}

# The differences the single-request differentials list, by the label of the operation
# that shows them in a composed request.
USER_OPERATIONS_LISTED: dict[str, Listed] = {
    # Without "add an email" before it, no email has the value the filter names.
    "make the added email primary": user_writes.PINNED_VALUE_MADE,
}

# Third operations that fail, with what each server answers them alone (docs/scim.md lists
# where the two differ, as the single-request differentials show).
USER_FAILURES: dict[str, Operation] = {
    "replace id": always(op("replace", "id", "new-id")),
    "replace unknown attribute": always(op("replace", "shoeSize", "42")),
    "bad path syntax": always(op("replace", "emails[type eq", "x")),
    "bad filter attribute": always(op("replace", 'emails[shoe eq "x"].value', "x")),
    "replace displayName wrong type": always(op("replace", "displayName", 12)),
    "replace name wrong type": always(op("replace", "name", "Ann")),
    "remove without path": always(op("remove")),
    "replace type of no email": always(op("replace", 'emails[type eq "nothing"].type', "h")),
    "value filter on name": always(op("replace", 'name[givenName eq "Ann"].familyName', "Q")),
    "replace userName clash": always(op("replace", "userName", "{name:0}")),
    "replace active wrong type": always(op("replace", "active", "yes")),
    "remove active": always(op("remove", "active")),
    # Another user's email is taken as the person's primary email only (their address).
    "add the email of another user, as primary": always(
        op("add", "emails", [{"value": "{email:0}", "primary": True}])
    ),
}
GROUP_FAILURES: dict[str, Operation] = {
    "replace id": always(op("replace", "id", "new-id")),
    "replace unknown attribute": always(op("replace", "shoeSize", "42")),
    "replace displayName wrong type": always(op("replace", "displayName", 12)),
    "replace displayName taken": always(op("replace", "displayName", "{gname:0}")),
    "add an unknown member": always(
        op("add", "members", group_writes.members(group_writes.UNKNOWN_UUID))
    ),
    "bad path syntax": always(op("remove", "members[value eq")),
}

# The differences the single-request differentials list, by the failing operation's label.
USER_FAILURES_LISTED: dict[str, Listed] = {
    "replace active wrong type": user_writes.NOT_A_BOOLEAN,
    "remove active": user_writes.ACTIVE_REQUIRED,
    "add the email of another user, as primary": user_writes.EMAIL_TAKEN,
}
GROUP_FAILURES_LISTED: dict[str, Listed] = {
    "replace displayName taken": group_writes.NAME_TAKEN,
    "add an unknown member": group_writes.NOT_A_USER,
}


@dataclass(frozen=True)
class Kind:
    """The users' or the groups' half of this test."""

    path: str  # the resource in slot {n}, as each server names it
    operations: dict[str, Operation]
    operations_listed: dict[str, Listed]
    leading: tuple[str, ...]  # operations that change any resource, put before a failure
    failures: dict[str, Operation]
    failures_listed: dict[str, Listed]

    def write(self, label: str, n: int, operations: list[dict[str, Any]]) -> Write:
        return Write(label, "PATCH", self.path.format(n=n), patch(*operations))


USERS = Kind(
    "/Users/{{user:{n}}}",
    USER_OPERATIONS,
    USER_OPERATIONS_LISTED,
    ("add displayName", "add an email", "replace department by URN", "replace active false"),
    USER_FAILURES,
    USER_FAILURES_LISTED,
)
GROUPS = Kind(
    "/Groups/{{group:{n}}}",
    GROUP_OPERATIONS,
    {},
    # The first two alone are member steps (scim_actions.patch_scim_group_members).
    ("add an outsider", "remove a member by filter", "replace displayName", "replace members"),
    GROUP_FAILURES,
    GROUP_FAILURES_LISTED,
)
SIDES = ("ours", "theirs")
# What a refused PATCH must not have written either: the work a deactivation or a role
# change sends (the outbox), and the mass-change gate's count of held changes.
REFUSED_WRITES_NOTHING_IN = (*SCIM_TABLES, "outbox", "mass_changes", "revocation_reviews")


@pytest.fixture
def user_servers(scim, monkeypatch) -> user_writes.Servers:
    return user_writes.loaded_servers(scim, monkeypatch)


@pytest.fixture
def group_servers(scim, session, org, monkeypatch) -> group_writes.Servers:
    return group_writes.loaded_servers(scim, session, org, monkeypatch)


def sent(servers: Any, side: str, write: Write, n: int, k: int) -> Outcome:
    """The answer to `write` on resource slot n, with the resource read back after it."""
    answer = servers.send(side, write, n, k)
    return outcome(write, answer.status, answer.body, servers.read(side, servers.slots[side][n]))


def composed_differences(
    servers: Any, kind: Kind, refills: Iterator[dict[str, Any]], count: int
) -> list[Difference]:
    """`count` requests of two to four operations, each on a random slot (slot 0, whose
    names the clashes take, is never written); a slot is filled afresh after a difference."""
    rng = random.Random(SEED)
    differences = []
    for k in range(count):
        n = rng.randrange(1, len(servers.bases))
        labels = rng.sample(sorted(kind.operations), rng.randint(2, 4))
        operations = [kind.operations[label](servers.bases[n]) for label in labels]
        write = kind.write(COMPOSED.join(labels), n, operations)
        ours, theirs = (sent(servers, side, write, n, k) for side in SIDES)
        if ours != theirs:
            differences.append(Difference(write, ours, theirs))
            servers.fill(n, next(refills))
    return differences


def assert_third_failures_change_nothing(
    servers: Any, kind: Kind, sessions: SessionFactory
) -> None:
    """Every failure of `kind` after every two of its leading operations, each on a random
    slot: each server answers as to the failure alone and changes nothing."""
    rng = random.Random(SEED + 1)
    cases = itertools.product(sorted(kind.failures), itertools.combinations(kind.leading, 2))
    for k, (label, leading) in enumerate(cases):
        n = rng.randrange(1, len(servers.bases))
        failure = kind.failures[label](servers.bases[n])
        first, second = (kind.operations[name] for name in leading)
        alone = kind.write(label, n, [failure])
        third = kind.write(label, n, [first(servers.bases[n]), second(servers.bases[n]), failure])
        stored, audited = (
            database_state(sessions, REFUSED_WRITES_NOTHING_IN),
            group_writes.scim_audits(sessions),
        )
        answers = {}
        for side in refusing(kind, label):
            before = servers.read(side, servers.slots[side][n])
            answers[side] = sent(servers, side, alone, n, k)
            assert answers[side].status >= 400, (side, alone)
            assert sent(servers, side, third, n, k) == answers[side], (side, third)
            assert answers[side].document == before, (side, third)
        assert database_state(sessions, REFUSED_WRITES_NOTHING_IN) == stored, third
        assert group_writes.scim_audits(sessions) == audited, third
        if answers.get("theirs", answers["ours"]) != answers["ours"]:
            difference = Difference(third, answers["ours"], answers["theirs"])
            assert explained(difference, kind.failures_listed), str(difference)


def refusing(kind: Kind, label: str) -> tuple[str, ...]:
    """The servers that refuse the failure `label` alone: both but where docs/scim.md lists
    that the reference takes it."""
    listed = kind.failures_listed.get(label)
    return ("ours",) if listed and listed.theirs[0] < 400 else SIDES


def test_user_patch_lists_agree_with_the_reference_server(user_servers):
    refills = iter(generated_users(user_writes.USER_COUNT + 200)[user_writes.USER_COUNT :])
    differences = composed_differences(user_servers, USERS, refills, 200)
    assert_only_listed(differences, USERS.operations_listed)


def test_group_patch_lists_agree_with_the_reference_server(group_servers):
    differences = composed_differences(
        group_servers, GROUPS, iter(group_writes.refill_specs()), 150
    )
    assert_only_listed(differences, GROUPS.operations_listed)


def test_a_user_patch_whose_third_operation_fails_changes_nothing(user_servers, sessions):
    assert_third_failures_change_nothing(user_servers, USERS, sessions)


def test_a_group_patch_whose_third_operation_fails_changes_nothing(group_servers, sessions):
    assert_third_failures_change_nothing(group_servers, GROUPS, sessions)
