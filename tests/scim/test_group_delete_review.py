"""SCIM DELETE /Groups/{id} goes through the one team deletion: the team's keys leave a real
(loopback) gateway and a review opens; an unknown group is a SCIM 404 and changes nothing."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from models.actions.scim import set_group_role
from models.entities import AuditEvent, RevocationReview, Team, User, VirtualApiKey
from models.enums import KeyType, ReviewCause, Role, TeamRole
from tests.reviews.conftest import gateway  # noqa: F401  (the loopback gateway fixture)
from tests.scim.payloads import (
    okta_add_members,
    okta_create_group,
    okta_create_user,
    okta_remove_member,
)
from tests.support import factories
from tests.support.factories import SETUP
from tests.support.relay import wait_relaying


def test_deleting_a_group_revokes_its_team_keys_at_the_gateway_and_opens_a_review(
    scim,
    session,
    sessions,
    org,
    worker,
    gateway,  # noqa: F811
):
    ann = scim.post("/Users", okta_create_user("ann@example.com", external_id="ann")).json["id"]
    group = scim.post("/Groups", {**okta_create_group("Eng"), "members": [{"value": ann}]}).json
    team = session.scalar(select(Team))
    manager = factories.make_user(session, org, email="lead@example.com")
    factories.add_member(session, team, manager, TeamRole.MANAGER)
    key = factories.make_key(session, org, team=team, created_by=manager)
    session.commit()
    key_id, team_id = str(key.id), team.id

    deleted = scim.delete(f"/Groups/{group['id']}")

    assert deleted.status_code == 204
    wait_relaying(lambda: gateway.keys_for({key_id}), what="the gateway invalidation")
    assert gateway.keys_for({key_id}) == [{key_id}]
    with sessions() as fresh:
        assert fresh.get(VirtualApiKey, key.id).revoked is True
        review = fresh.scalars(select(RevocationReview)).one()
        assert (review.cause, review.team_id) == (ReviewCause.TEAM_DELETED, team_id)
        assert [(fi.subject_id, fi.action) for fi in review.findings] == [(key.id, "revoked")]
        deletion = fresh.scalars(
            select(AuditEvent).where(AuditEvent.action == "team.deleted")
        ).one()
        assert deletion.source.value == "scim"
        assert deletion.before["review_id"] == str(review.id)


def test_deleting_an_unknown_group_is_a_scim_404_and_changes_nothing(scim, session, org):
    group = scim.post("/Groups", okta_create_group("Eng")).json
    team = session.scalar(select(Team))
    key = factories.make_key(session, org, team=team)
    session.commit()
    key_id = key.id
    audits = session.scalar(select(func.count(AuditEvent.id)))
    session.rollback()

    unknown = scim.delete(f"/Groups/{uuid.uuid4()}")
    garbage = scim.delete("/Groups/not-an-id")

    for response in (unknown, garbage):
        assert response.status_code == 404
        assert response.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert response.json["status"] == "404"
    assert scim.get(f"/Groups/{group['id']}").status_code == 200
    assert session.get(VirtualApiKey, key_id).revoked is False
    assert session.scalar(select(func.count(AuditEvent.id))) == audits
    assert session.scalars(select(RevocationReview)).all() == []


def test_leaving_the_idp_group_that_made_someone_org_admin_opens_a_role_drop_review(
    scim, session, org
):
    set_group_role(
        session, organisation=org, group_name="Odock Admins", role=Role.ORG_ADMIN, actor=SETUP
    )
    session.commit()
    ann = scim.post("/Users", okta_create_user("ann@example.com", external_id="ann")).json["id"]
    group = scim.post("/Groups", okta_create_group("Odock Admins")).json
    scim.patch(f"/Groups/{group['id']}", okta_add_members((ann, "Ann")))
    person = session.scalar(select(User).where(User.email == "ann@example.com"))
    assert person.role is Role.ORG_ADMIN
    key = factories.make_key(session, org, key_type=KeyType.ORGANISATION, created_by=person)
    session.commit()
    key_id, person_id = key.id, person.id

    removed = scim.patch(f"/Groups/{group['id']}", okta_remove_member(ann))

    assert removed.status_code in (200, 204)
    session.expire_all()
    assert session.get(User, person_id).role is Role.USER
    review = session.scalars(select(RevocationReview)).one()
    assert (review.cause, review.user_id) == (ReviewCause.ORG_ROLE_DROPPED, person_id)
    assert review.context == {"role_before": "ORG_ADMIN", "role_after": "USER"}
    assert [(fi.kind, fi.subject_id) for fi in review.findings] == [("org_key", key_id)]
    # held for review, not revoked: the person is still ACTIVE
    assert session.get(VirtualApiKey, key_id).revoked is False
