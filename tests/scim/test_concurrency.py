"""Parallel SCIM writes against the live server (real HTTP, one thread per request) compose
as if they had been sent one after another: IdPs such as Okta and Entra ID push membership
changes in parallel, and none may be lost."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.scim.conftest import SCIM, ops
from tests.scim.payloads import ENTERPRISE, okta_create_group, okta_create_user
from tests.support.parallel import in_parallel


class LiveScim:
    """A SCIM client over real HTTP; one requests.Session per thread."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = f"{base_url}/scim/v2"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM}
        self.local = threading.local()

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        if not hasattr(self.local, "http"):
            self.local.http = requests.Session()
        return self.local.http.request(  # type: ignore[no-any-return]
            method, self.base + path, json=body, headers=self.headers, timeout=60
        )


def statuses(responses: list[requests.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


@pytest.fixture
def live(live_server: str, scim_secret: str) -> LiveScim:
    return LiveScim(live_server, scim_secret)


@pytest.fixture
def people(live: LiveScim) -> list[str]:
    created = [live("POST", "/Users", okta_create_user(f"p{n}@example.com")) for n in range(20)]
    assert {response.status_code for response in created} == {201}
    return [response.json()["id"] for response in created]


def member_ids(live: LiveScim, group_id: str) -> set[str]:
    group = live("GET", f"/Groups/{group_id}").json()
    return {member["value"] for member in group.get("members", [])}


def test_twenty_parallel_adds_then_ten_parallel_removes_lose_no_member(live, people):
    group_id = live("POST", "/Groups", okta_create_group("Engineering")).json()["id"]

    def add(user_id: str) -> Callable[[], requests.Response]:
        body = ops({"op": "add", "path": "members", "value": [{"value": user_id}]})
        return lambda: live("PATCH", f"/Groups/{group_id}", body)

    added = in_parallel([add(user_id) for user_id in people])
    assert statuses(added) == Counter({200: 20}), [r.text for r in added if r.status_code != 200]
    assert member_ids(live, group_id) == set(people)

    def remove(user_id: str) -> Callable[[], requests.Response]:
        body = ops({"op": "remove", "path": f'members[value eq "{user_id}"]'})
        return lambda: live("PATCH", f"/Groups/{group_id}", body)

    removed = in_parallel([remove(user_id) for user_id in people[:10]])
    assert statuses(removed) == Counter({200: 10}), [
        r.text for r in removed if r.status_code != 200
    ]
    assert member_ids(live, group_id) == set(people[10:])


# Ten different attributes of one user, each replaced by its own PATCH.
ATTRIBUTE_PATCHES: dict[str, Any] = {
    "displayName": "Ann Parallel",
    "name.givenName": "Ann",
    "name.familyName": "Parallel",
    "title": "Engineer",
    "nickName": "Annie",
    "externalId": "ext-42",
    "locale": "fr-FR",
    "timezone": "Europe/Paris",
    f"{ENTERPRISE}:employeeNumber": "42",
    f"{ENTERPRISE}:department": "R&D",
}


def test_ten_parallel_patches_of_different_attributes_all_land(live, people):
    user_path = f"/Users/{people[0]}"
    twin_path = f"/Users/{people[1]}"

    def replace(path: str, attribute: str, value: Any) -> Callable[[], requests.Response]:
        body = ops({"op": "replace", "path": attribute, "value": value})
        return lambda: live("PATCH", path, body)

    patched = in_parallel([replace(user_path, a, v) for a, v in ATTRIBUTE_PATCHES.items()])
    assert statuses(patched) == Counter({200: 10}), [
        r.text for r in patched if r.status_code != 200
    ]
    for attribute, value in ATTRIBUTE_PATCHES.items():  # the serial run, on a twin
        assert replace(twin_path, attribute, value)().status_code == 200

    parallel, serial = live("GET", user_path).json(), live("GET", twin_path).json()
    assert comparable(parallel) == comparable(serial)
    assert parallel["title"] == "Engineer" and parallel["name"]["familyName"] == "Parallel"
    assert parallel[ENTERPRISE]["department"] == "R&D" and parallel["locale"] == "fr-FR"


def comparable(user: dict[str, Any]) -> dict[str, Any]:
    """A user without what differs between twins (id, userName, emails, meta)."""
    return {k: v for k, v in user.items() if k not in ("id", "userName", "emails", "meta")}


def test_parallel_creates_of_one_user_name_give_one_201_and_409_uniqueness(live):
    body = okta_create_user("same@example.com")
    created = in_parallel([lambda: live("POST", "/Users", body) for _ in range(10)])
    assert statuses(created) == Counter({201: 1, 409: 9}), [r.text for r in created]
    refusals = [r.json() for r in created if r.status_code == 409]
    assert {refusal["scimType"] for refusal in refusals} == {"uniqueness"}
    listed = live("GET", '/Users?filter=userName eq "same@example.com"').json()
    assert listed["totalResults"] == 1


def test_parallel_deletes_of_one_resource_give_one_204_and_404s(live, people):
    group_id = live("POST", "/Groups", okta_create_group("Doomed")).json()["id"]
    for path in (f"/Groups/{group_id}", f"/Users/{people[0]}"):
        deleted = in_parallel([lambda path=path: live("DELETE", path) for _ in range(5)])
        assert statuses(deleted) == Counter({204: 1, 404: 4}), [r.text for r in deleted]
        assert live("GET", path).status_code == 404


def test_membership_patches_racing_a_put_of_the_group_end_as_some_serial_order(
    live: LiveScim, people: list[str]
) -> None:
    """Entra ID's membership PATCHes (the fast path, connectors.scim.member_patch) and a
    whole-group PUT of the same group at once: the PUT's members, plus any add that came
    after it, less any remove that came after it; every request answered."""
    for round_ in range(3):
        race_a_put(live, people, f"Race{round_}")


def race_a_put(live: LiveScim, people: list[str], name: str) -> None:
    start, put_set = people[:8], people[4:12]
    body = {**okta_create_group(name), "members": [{"value": p} for p in start]}
    group_id = live("POST", "/Groups", body).json()["id"]
    adds, removes = people[12:18], people[4:7]  # the removes are members before and after

    def patch(op: dict[str, Any]) -> Callable[[], requests.Response]:
        return lambda: live("PATCH", f"/Groups/{group_id}", ops(op))

    def put() -> requests.Response:
        document = {**okta_create_group(name), "members": [{"value": p} for p in put_set]}
        return live("PUT", f"/Groups/{group_id}", document)

    calls = [patch({"op": "add", "path": "members", "value": [{"value": p}]}) for p in adds]
    calls += [patch({"op": "remove", "path": f'members[value eq "{p}"]'}) for p in removes]
    answers = in_parallel([*calls, put])
    assert statuses(answers) == Counter({200: len(calls) + 1}), [r.text for r in answers]
    final = member_ids(live, group_id)
    # Some serial order: the PUT's set, each add kept when it came after the PUT, each
    # remove done when it came after it (before it, the PUT put the member back).
    assert set(put_set) - set(removes) <= final <= set(put_set) | set(adds), final
    for answer, person in zip(answers, adds, strict=False):
        assert person in {m["value"] for m in answer.json().get("members", [])}
