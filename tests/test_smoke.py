from models.enums import Role
from tests.support import factories as f


def test_admin_sees_user_detail(session, client):
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    person = f.make_user(session, org)
    team = f.make_team(session, org)
    f.add_member(session, team, person)
    key = f.make_key(session, org, owner=person)
    f.make_budget(session, org, person)
    f.make_quota(session, org, person)
    f.make_usage(session, org, person, key)
    token = f.admin_token(session, org, admin)
    session.commit()
    response = client.get(
        f"/api/v1/users/{person.id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert body["teams"][0]["name"] == team.name
    assert body["api_keys"][0]["masked_value"] == key.masked_value
    assert body["usage"]["last_30_days"]["requests"] == 1
    assert len(body["budgets"]) == 1 and len(body["quotas"]) == 1
