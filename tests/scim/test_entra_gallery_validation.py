"""The direct SCIM tests of Microsoft's Entra gallery validation (tests/scim/vendor_payloads.py
cites SCIMTests_Workflow.json), with what each checks, and what odock-sync made of it."""

from __future__ import annotations

from typing import Any

import pytest

from models.enums import UserStatus
from tests.scim.payloads import ENTERPRISE, GROUP, USER, rfc7644_3_5_2_patch
from tests.scim.test_vendor_replays import created, listed, person
from tests.scim.vendor_payloads import (
    ENTRA_DEFAULT_GROUP_TARGETS,
    ENTRA_DEFAULT_TARGETS,
    ENTRA_NULLABLE_PATHS,
    ENTRA_NULLABLE_SCALARS,
    entra_null_patch,
    entra_null_read,
    entra_validator_user,
    flattened_schema_names,
)


def test_schema_discoverability_finds_every_default_target(scim):
    """Every target of Entra ID's default mappings is among the names the test makes of
    /Schemas (compared in any case), so none is reported missing: externalId (mailNickname,
    a group's objectId) included, which /Schemas left out as a common attribute."""
    schemas = scim.get("/Schemas").json["Resources"]
    users = [s for s in schemas if s["id"] != GROUP]
    groups = [s for s in schemas if s["id"] == GROUP]
    for listed_schemas, targets in (
        (users, ENTRA_DEFAULT_TARGETS),
        (groups, ENTRA_DEFAULT_GROUP_TARGETS),
    ):
        found = {name.lower() for name in flattened_schema_names(listed_schemas)}
        assert [t for t in targets if t.lower() not in found] == []
    (external_id,) = (a for a in users[0]["attributes"] if a["name"] == "externalId")
    assert external_id["caseExact"] is True  # as filters compare it


@pytest.mark.parametrize("verbose", [True, False], ids=["one op each", "value without path"])
def test_null_update_clears_each_optional_target_and_keeps_the_person(scim, session, verbose):
    """Phase 1 sends "", phase 2 null: each answered 200 or 204, every target read back
    empty; the person stays active with their email (a cleared profile is no leaver)."""
    email = "scnull1a2b@contoso.example"
    user = created(scim.post("/Users", entra_validator_user(email)), "User")
    for value in ("", None):
        patched = scim.patch(f"/Users/{user['id']}", entra_null_patch(value, verbose))
        assert patched.status_code in (200, 204), patched.json
        read = scim.get(f"/Users/{user['id']}").json
        for target in ENTRA_NULLABLE_PATHS + ENTRA_NULLABLE_SCALARS:
            assert entra_null_read(read, target) in ("", None), (value, target, read)
        assert read["active"] is True
        assert read["phoneNumbers"] == [{"value": "18-569-6230", "type": "work", "primary": True}]
    assert person(session, email)[0] is UserStatus.ACTIVE


def _manager(scim: Any, user_id: str) -> Any:
    return scim.get(f"/Users/{user_id}").json.get(ENTERPRISE, {}).get("manager")


def test_update_manager_set_change_and_clear(scim):
    """Add by a bare id, replace by another, replace with "": the manager read back each
    time is the one set, then none."""
    body = {"schemas": [USER, ENTERPRISE], "userName": "scmgr-test@contoso.example"}
    user = created(scim.post("/Users", body), "User")
    first, second = (
        created(scim.post("/Users", {**body, "userName": f"scmgr-{n}@contoso.example"}), "User")
        for n in ("mgr", "mgr2")
    )
    path = f"{ENTERPRISE}:manager"
    for op, value, expected in (
        ("Add", first["id"], first["id"]),
        ("replace", second["id"], second["id"]),
        ("replace", "", None),
    ):
        patch = rfc7644_3_5_2_patch({"op": op, "path": path, "value": value})
        assert scim.patch(f"/Users/{user['id']}", patch).status_code in (200, 204)
        manager = _manager(scim, user["id"])
        assert (manager or {}).get("value") == expected


def test_pagination_pages_of_five(scim):
    """At least 11 users, read five at a time: each page starts where it was asked to."""
    for n in range(11):
        created(
            scim.post("/Users", {"schemas": [USER], "userName": f"scp{n}@contoso.example"}), "User"
        )
    seen: list[str] = []
    for page in range(3):
        answer = scim.get(f"/Users?startIndex={page * 5 + 1}&count=5")
        resources = listed(answer, 11) if page < 2 else answer.json["Resources"]
        assert answer.json["startIndex"] == page * 5 + 1
        seen += [r["id"] for r in resources]
    assert len(seen) == len(set(seen)) == 11


def test_group_update_of_its_single_valued_attributes(scim):
    """displayName and externalId replaced; each read back as sent."""
    group = created(scim.post("/Groups", {"schemas": [GROUP], "displayName": "scgrp1"}), "Group")
    patch = rfc7644_3_5_2_patch(
        {"op": "replace", "path": "displayName", "value": "scgrp1-updated"},
        {"op": "replace", "path": "externalId", "value": "b5c2e0a4"},
    )
    assert scim.patch(f"/Groups/{group['id']}", patch).status_code in (200, 204)
    read = scim.get(f"/Groups/{group['id']}").json
    assert (read["displayName"], read["externalId"]) == ("scgrp1-updated", "b5c2e0a4")
