"""A user read again unchanged is answered from its kept rendering (webhooks.scim_documents);
anything that changes what its document shows gives another answer at once, projections
never change the kept document, and its ETag is the whole resource's."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from models.actions import scim as scim_actions
from models.entities import Organisation, ScimUser, User
from tests.scim import payloads
from tests.scim.conftest import ScimClient
from tests.support import factories

HR = "urn:example:params:scim:schemas:extension:hr:2.0:User"


def _create(scim: ScimClient, n: int) -> str:
    email = f"kept{n}@example.com"
    made = scim.post("/Users", {"userName": email, "emails": [{"value": email, "type": "work"}]})
    assert made.status_code == 201, made.json
    return str(made.json["id"])


def test_a_read_again_is_the_same_and_a_group_change_shows_at_once(scim: ScimClient) -> None:
    scim_id = _create(scim, 1)
    first, again = scim.get(f"/Users/{scim_id}"), scim.get(f"/Users/{scim_id}")
    assert first.data == again.data and first.headers["ETag"] == again.headers["ETag"]
    assert "groups" not in first.json

    group = scim.post("/Groups", payloads.okta_create_group("Kept")).json["id"]
    added = scim.patch(f"/Groups/{group}", payloads.okta_add_members((scim_id, "kept1")))
    assert added.status_code in (200, 204)
    joined = scim.get(f"/Users/{scim_id}")
    assert [g["display"] for g in joined.json["groups"]] == ["Kept"]
    assert joined.headers["ETag"] != first.headers["ETag"]

    renamed = scim.patch(f"/Groups/{group}", payloads.okta_rename_group(group, "Renamed"))
    assert renamed.status_code in (200, 204)
    listed = scim.get('/Users?filter=userName eq "kept1@example.com"').json["Resources"][0]
    assert [g["display"] for g in listed["groups"]] == ["Renamed"]
    assert scim.get(f"/Users/{scim_id}").json["groups"][0]["display"] == "Renamed"


def test_a_new_end_date_attribute_shows_at_once(
    scim: ScimClient, session: Session, org: Organisation
) -> None:
    scim_id = _create(scim, 2)
    scim_user = session.get_one(ScimUser, uuid.UUID(scim_id))
    session.get_one(User, scim_user.user_id).access_ends_at = datetime(2027, 1, 31, 17, tzinfo=UTC)
    session.commit()
    before = scim.get(f"/Users/{scim_id}").json
    assert HR not in before
    scim_actions.set_access_end_attribute(
        session, organisation=org, attribute=f"{HR}:lastDay", actor=factories.SETUP
    )
    session.commit()
    after = scim.get(f"/Users/{scim_id}").json
    assert after[HR] == {"lastDay": "2027-01-31T17:00:00.000Z"}


def test_projections_leave_the_kept_document_whole(scim: ScimClient) -> None:
    scim_id = _create(scim, 3)
    whole = scim.get(f"/Users/{scim_id}")
    only_name = scim.get(f"/Users/{scim_id}?attributes=userName")
    no_emails = scim.get(f"/Users/{scim_id}?excludedAttributes=emails,name")
    assert set(only_name.json) == {"schemas", "id", "userName"}
    assert "emails" not in no_emails.json
    assert only_name.headers["ETag"] == no_emails.headers["ETag"] == whole.headers["ETag"]
    assert scim.get(f"/Users/{scim_id}").data == whole.data
    listed = scim.get('/Users?filter=userName eq "kept3@example.com"&attributes=emails').json
    assert set(listed["Resources"][0]) == {"schemas", "id", "emails"}
    assert scim.get(f"/Users/{scim_id}").json == whole.json


def test_a_page_of_kept_users_is_the_json_of_its_documents(scim: ScimClient) -> None:
    ids = [_create(scim, n) for n in range(10, 14)]
    singles = [scim.get(f"/Users/{scim_id}").json for scim_id in ids]
    page = scim.get('/Users?filter=userName sw "kept1"&count=10')
    body = json.loads(page.data)
    assert body["totalResults"] == 4 and body["itemsPerPage"] == 4
    assert sorted(body["Resources"], key=lambda d: d["id"]) == sorted(
        singles, key=lambda d: d["id"]
    )
    assert page.data == json.dumps(body).encode()
    empty = scim.get('/Users?filter=userName eq "nobody@example.com"')
    assert empty.json["Resources"] == [] and empty.json["totalResults"] == 0
    assert empty.data == json.dumps(empty.json).encode()
