"""A drain batch's revocations read what the people own (admin tokens, sent invitations,
budgets) once for the batch, and still end all of it for whoever owns any."""

from __future__ import annotations

from sqlalchemy import select

from models.actions import idp_events
from models.actions.identities import link_identity
from models.entities import ApiToken, Budget, Invitation
from models.enums import InvitationStatus, Source, UserStatus
from tests.events.conftest import generic
from tests.events.test_drain import sent_tasks  # noqa: F401 (fixture)
from tests.events.test_drain_gate import counting, deactivations, gate, linked_people
from tests.lifecycle.test_leavers import inviting_manager, manager_invites
from tests.support import factories as f


def test_what_some_people_of_a_batch_own_is_ended_and_the_others_cost_no_lookups(
    session, sessions, settings, engine
):
    from worker.runtime import runtime
    from worker.tasks.idp_events import drain_deliveries

    org, manager = inviting_manager(session)
    gate(session, org, threshold=1000)
    people = linked_people(session, org, 9)
    link_identity(session, user=manager, source=Source.EVENTS, external_id="ext-9", actor=f.SETUP)
    invited = manager_invites(session, settings, org, manager, "new@example.com").invitation
    f.admin_token(session, org, people[3])
    budget = f.make_budget(session, org, people[7])
    deactivations(session, org, [f"ext-{n}" for n in range(10)])
    session.commit()

    with counting(runtime().engine) as seen:
        assert drain_deliveries(str(org.id)) == 10

    session.expire_all()
    assert {p.status for p in [*people, manager]} == {UserStatus.REVOKED}
    token = session.scalars(select(ApiToken).where(ApiToken.user_id == people[3].id)).one()
    assert token.revoked_at is not None
    assert session.get_one(Invitation, invited.id).status is InvitationStatus.REVOKED
    assert session.get_one(Budget, budget.id).frozen_at is not None
    if engine.dialect.name == "postgresql":
        # 16.6 statements an event before the batch read them up front (each revocation looked
        # for tokens and invitations and updated budgets, for everyone); 14.2 after
        assert seen["statements"] / 10 <= 15


def test_a_budget_thawed_and_frozen_again_in_one_batch_is_frozen(session, sessions):
    """Holdings are 'owns any budget', frozen or not: a reactivation earlier in the batch thaws
    it, and the revocation after it must freeze it again."""
    from worker.tasks.idp_events import drain_deliveries

    org = f.make_org(session)
    gate(session, org, threshold=1000)
    (person,) = linked_people(session, org, 1)
    budget = f.make_budget(session, org, person)
    deactivations(session, org, ["ext-0"])
    session.commit()
    assert drain_deliveries(str(org.id)) == 1
    session.expire_all()
    assert session.get_one(Budget, budget.id).frozen_at is not None

    for n, event_type in enumerate(["user.reactivated", "user.deactivated"]):
        payload = generic(event_type, user={"external_id": "ext-0"})
        idp_events.accept_delivery(
            session,
            organisation_id=org.id,
            channel="events",
            delivery_id=f"again-{n}",
            payload=payload,
        )
    session.commit()
    assert drain_deliveries(str(org.id)) == 2

    session.expire_all()
    assert session.get_one(type(person), person.id).status is UserStatus.REVOKED
    frozen = session.get_one(Budget, budget.id)
    assert frozen.frozen_at is not None and frozen.frozen_by_revocation_id is not None
