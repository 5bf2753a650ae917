"""Team names through the admin API: one team per name however it is composed, and names
saved before the rule of team names shown marked, renamed and deleted."""

from __future__ import annotations

import uuid

from models.entities import Team
from tests.admin_api.conftest import World, assert_problem


def test_a_name_typed_decomposed_is_stored_composed_and_is_one_team(client, world: World):
    """ "Café" typed with a decomposed é (macOS, some LDAP servers) and the composed one are
    one team (connectors.name_keys), as SCIM, LDAP and IdP events find it."""
    headers = world.auth("admin")
    created = client.post("/api/v1/teams", json={"name": "Cafe\u0301"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["name"] == "Caf\u00e9"
    again = client.post("/api/v1/teams", json={"name": "CAF\u00c9"}, headers=headers)
    assert_problem(again, 409, detail="already exists")
    renamed = client.patch(
        f"/api/v1/teams/{world.beta}", json={"name": "caf\u00e9"}, headers=headers
    )
    assert_problem(renamed, 409, detail="already exists")


def test_a_name_saved_before_the_rule_is_shown_marked_renamed_and_deleted(
    client, sessions, world: World
):
    """A team named with a zero-width space before such names were refused: the API shows
    it marked (name_shown, models.text.visible; the console shows names so), an admin can
    rename it to a clean name (the rule bites on the new name only) and delete another."""
    legacy = {"Ad\u200bmins": uuid.uuid4(), "Op\u202es": uuid.uuid4()}
    with sessions() as session:
        for name, team_id in legacy.items():
            session.add(
                Team(id=team_id, organisation_id=world.org_a, name=name, name_key=name.lower())
            )
        session.commit()
    headers = world.auth("admin")
    listed = {t["id"]: t for t in client.get("/api/v1/teams", headers=headers).get_json()["items"]}
    admins, ops = (listed[str(team_id)] for team_id in legacy.values())
    assert (admins["name"], admins["name_shown"]) == ("Ad\u200bmins", "Ad<U+200B>mins")
    assert ops["name_shown"] == "Op<U+202E>s"
    assert listed[str(world.alpha)]["name_shown"] == "Alpha"
    path = f"/api/v1/teams/{admins['id']}"
    spoof = client.patch(path, json={"name": "Ad\u200bmins 2"}, headers=headers)
    assert_problem(spoof, 400, detail="invisible")
    renamed = client.patch(path, json={"name": "Admins"}, headers=headers)
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["name"] == renamed.get_json()["name_shown"] == "Admins"
    deleted = client.delete(f"/api/v1/teams/{ops['id']}", headers=headers)
    assert deleted.status_code == 200, deleted.get_json()
    names = [t["name"] for t in client.get("/api/v1/teams", headers=headers).get_json()["items"]]
    assert names == ["Admins", "Alpha", "Beta"]
