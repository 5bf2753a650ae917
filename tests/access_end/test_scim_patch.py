"""SCIM PATCH of the end-date attribute an organisation configured (`odock-sync scim
access-end-attribute`): in an extension of its own, in the enterprise extension under another
name, or a core attribute; add, replace and remove with a path, and without one as Okta and
Entra ID send them; a bad value is 400 invalidValue and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from connectors.scim.schemas import ENTERPRISE, USER
from models.actions import scim as scim_actions
from models.entities import User
from tests.access_end.conftest import scim_user_id
from tests.scim.conftest import SCIM_TABLES, ScimClient, ops
from tests.support import factories as f
from tests.support.state import change_checker

HR = "urn:example:params:scim:schemas:extension:hr:2.0:User"
FIRST, SECOND = "2027-01-31T17:00:00Z", "2027-02-28T09:00:00+01:00"
FIRST_AT = datetime(2027, 1, 31, 17, tzinfo=UTC)
SECOND_AT = datetime(2027, 2, 28, 8, tzinfo=UTC)

# (configured attribute, its URN or None for core, its name)
ATTRIBUTES = [
    pytest.param(f"{HR}:lastDay", HR, "lastDay", id="own-extension"),
    pytest.param(f"{ENTERPRISE}:terminationDate", ENTERPRISE, "terminationDate", id="enterprise"),
    pytest.param("leaveDate", None, "leaveDate", id="core"),
]


def _scim_with(session: Session, client: Any, attribute: str) -> ScimClient:
    org = f.make_org(session)
    scim_actions.set_access_end_attribute(
        session, organisation=org, attribute=attribute, actor=f.SETUP
    )
    secret = f.scim_token(session, org)
    session.commit()
    return ScimClient(client, secret)


def _create(scim: ScimClient) -> str:
    created = scim.post(
        "/Users",
        {
            "schemas": [USER],
            "userName": "lee@example.com",
            "emails": [{"value": "lee@example.com", "primary": True}],
            "active": True,
        },
    )
    assert created.status_code == 201, created.json
    return str(created.json["id"])


def _ends_at(session: Session, scim_id: str) -> datetime | None:
    session.expire_all()
    ends = session.get_one(User, scim_user_id(session, scim_id)).access_ends_at
    session.commit()  # SQLite: a session that read holds the write lock until it ends
    return ends


def _patched(scim: ScimClient, scim_id: str, *operations: dict[str, Any]) -> dict[str, Any]:
    answer = scim.patch(f"/Users/{scim_id}", ops(*operations))
    assert answer.status_code == 200, answer.json
    return dict(answer.json)


def _path(urn: str | None, name: str) -> str:
    return f"{urn}:{name}" if urn else name


def _nested(urn: str | None, name: str, value: Any) -> dict[str, Any]:
    """Okta's no-path form: the extension's object (or the core attribute itself)."""
    return {urn: {name: value}} if urn else {name: value}


@pytest.mark.parametrize(("attribute", "urn", "name"), ATTRIBUTES)
def test_entra_patch_adds_replaces_and_removes_the_date_by_path(
    client, session, attribute, urn, name
) -> None:
    scim = _scim_with(session, client, attribute)
    scim_id = _create(scim)
    path = _path(urn, name)

    added = _patched(scim, scim_id, {"op": "Add", "path": path, "value": FIRST})
    assert _ends_at(session, scim_id) == FIRST_AT
    shown = added[urn] if urn else added
    assert shown[name] == "2027-01-31T17:00:00.000Z"

    _patched(scim, scim_id, {"op": "Replace", "path": path, "value": SECOND})
    assert _ends_at(session, scim_id) == SECOND_AT

    _patched(scim, scim_id, {"op": "Remove", "path": path})
    assert _ends_at(session, scim_id) is None


@pytest.mark.parametrize(("attribute", "urn", "name"), ATTRIBUTES)
def test_patch_without_a_path_sets_and_clears_the_date(
    client, session, attribute, urn, name
) -> None:
    scim = _scim_with(session, client, attribute)
    scim_id = _create(scim)

    # Okta: the value is the extension's object.
    _patched(scim, scim_id, {"op": "replace", "value": _nested(urn, name, FIRST)})
    assert _ends_at(session, scim_id) == FIRST_AT
    # Entra ID: the value's keys are whole paths.
    _patched(scim, scim_id, {"op": "Replace", "value": {_path(urn, name): SECOND}})
    assert _ends_at(session, scim_id) == SECOND_AT
    # Entra ID clears an attribute by sending it empty.
    _patched(scim, scim_id, {"op": "Replace", "value": {_path(urn, name): ""}})
    assert _ends_at(session, scim_id) is None
    _patched(scim, scim_id, {"op": "add", "value": {_path(urn, name): FIRST}})
    assert _ends_at(session, scim_id) == FIRST_AT


def test_an_extension_path_sets_and_removes_its_whole_object(client, session) -> None:
    scim = _scim_with(session, client, f"{HR}:lastDay")
    scim_id = _create(scim)

    _patched(scim, scim_id, {"op": "add", "path": HR, "value": {"lastDay": FIRST}})
    assert _ends_at(session, scim_id) == FIRST_AT
    _patched(scim, scim_id, {"op": "remove", "path": HR})
    assert _ends_at(session, scim_id) is None


def test_other_attributes_of_an_unknown_extension_are_still_ignored(client, session) -> None:
    scim = _scim_with(session, client, f"{HR}:lastDay")
    scim_id = _create(scim)

    _patched(
        scim,
        scim_id,
        {"op": "add", "path": f"{HR}:costCentre", "value": "X1"},
        {"op": "add", "value": {HR: {"lastDay": FIRST, "badge": 7}}},
    )
    assert _ends_at(session, scim_id) == FIRST_AT


@pytest.mark.parametrize("bad", ["31/01/2027", "2027-01-31T17:00:00", 20270131, {"a": 1}, [FIRST]])
@pytest.mark.parametrize(("attribute", "urn", "name"), ATTRIBUTES)
def test_a_bad_date_is_invalid_value_and_changes_nothing(
    client, session, sessions, attribute, urn, name, bad
) -> None:
    scim = _scim_with(session, client, attribute)
    scim_id = _create(scim)
    _patched(scim, scim_id, {"op": "add", "path": _path(urn, name), "value": FIRST})
    unchanged = change_checker(sessions, SCIM_TABLES)
    unchanged()

    for operation in (
        {"op": "replace", "path": _path(urn, name), "value": bad},
        {"op": "replace", "value": _nested(urn, name, bad)},
    ):
        answer = scim.patch(f"/Users/{scim_id}", ops(operation))
        assert answer.status_code == 400, answer.json
        assert answer.json["scimType"] == "invalidValue"
        assert name in answer.json["detail"]
    unchanged()
    assert _ends_at(session, scim_id) == FIRST_AT
