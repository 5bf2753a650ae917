"""A key Odock brings in for a person revoked here goes to their review at once, by the key
policy (revoked, or held with a finding), not at the next review sweep (an hour later)."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import lifecycle, odock_events, odock_reconcile
from models.actions.leaver_checks import TASK_CHECK
from models.entities import OutboxMessage, ReviewFinding, User, VirtualApiKey
from models.enums import Severity
from tests.odock_inbound.conftest import key_body
from tests.odock_inbound.leaver_races import written_while_the_owner_is_revoked
from tests.odock_inbound.test_reconcile import listed, listing
from tests.odock_inbound.test_usage import record
from tests.support import factories as f


def _revoke(session, user_id) -> None:
    lifecycle.revoke(session, user=session.get_one(User, user_id), actor=f.SETUP)
    session.commit()


def _key(session, key_id) -> VirtualApiKey:
    session.expire_all()
    key = session.get_one(VirtualApiKey, key_id)
    session.rollback()  # SQLite: a reading transaction holds the write lock
    return key


def _findings(session, key_id) -> list[ReviewFinding]:
    session.expire_all()
    found = list(session.scalars(select(ReviewFinding).where(ReviewFinding.subject_id == key_id)))
    session.rollback()
    return found


def test_a_key_pushed_for_a_revoked_owner_is_revoked_at_once(bridged, session):
    _revoke(session, bridged.owner.id)
    key_id = uuid.uuid4()

    response = bridged.put("keys", key_id, key_body(bridged.owner))

    assert response.status_code == 200
    assert _key(session, key_id).revoked is True
    (finding,) = _findings(session, key_id)
    assert (finding.action, finding.action_taken) == ("revoked", True)


def test_a_key_event_for_a_revoked_owner_is_revoked_as_it_is_applied(bridged, session):
    _revoke(session, bridged.owner.id)
    key_id = uuid.uuid4()
    event = {"type": "key.upserted", "id": str(key_id), "version": 1}

    odock_events.apply_event(session, bridged.org.id, {**event, "data": key_body(bridged.owner)})
    session.commit()

    assert _key(session, key_id).revoked is True


def test_an_org_key_a_revoked_person_created_is_held_with_an_urgent_finding(bridged, session):
    _revoke(session, bridged.owner.id)
    key_id = uuid.uuid4()

    bridged.put("keys", key_id, key_body(created_by_user_id=str(bridged.owner.id)))

    assert _key(session, key_id).revoked is False  # the organisation's key: held, not revoked
    (finding,) = _findings(session, key_id)
    assert finding.severity is Severity.URGENT


def test_a_key_pushed_for_an_active_owner_is_left_alone(bridged, session):
    key_id = uuid.uuid4()

    bridged.put("keys", key_id, key_body(bridged.owner))

    assert _key(session, key_id).revoked is False
    assert _findings(session, key_id) == []


def test_a_revoked_key_pushed_for_a_revoked_owner_opens_nothing_new(bridged, session):
    _revoke(session, bridged.owner.id)
    key_id = uuid.uuid4()

    bridged.put("keys", key_id, key_body(bridged.owner, revoked=True))

    assert _findings(session, key_id) == []


def test_an_import_puts_a_revoked_owners_key_to_their_review(run, bridged, tmp_path, session):
    _revoke(session, bridged.owner.id)
    key_id, others = uuid.uuid4(), uuid.uuid4()
    path = tmp_path / "odock.jsonl"
    lines = [
        {"kind": "key", "id": str(key_id), **key_body(bridged.owner)},
        {"kind": "key", "id": str(others), **key_body(bridged.other)},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines))

    run("odock", "import", "--org", bridged.org.slug, str(path))

    assert _key(session, key_id).revoked is True
    assert _key(session, others).revoked is False


def test_a_load_that_died_before_its_check_left_a_backstop_that_revokes_the_key(
    bridged, session, engine
):
    """The import's process died after the load, before review_loaded_keys: the check armed
    with the keys' chunk runs in a worker (here: its task's body). Before, the key stayed
    active until the review sweep (an hour)."""
    from worker.tasks.reviews import check_leavers

    _revoke(session, bridged.owner.id)
    key_id = uuid.uuid4()
    line = {"kind": "key", "id": str(key_id), **key_body(bridged.owner)}

    odock_reconcile.import_lines(
        engine, organisation_id=bridged.org.id, lines=[json.dumps(line).encode()]
    )

    (backstop,) = _backstops(session)
    assert backstop["deferred"]  # left to the relay, once due
    check_leavers.run(**backstop["kwargs"])
    assert _key(session, key_id).revoked is True


def test_each_writers_own_check_disarms_its_backstop(bridged, session):
    """Guard: a push (key, usage) and an event drain check after their commit, so nothing is
    left for a worker to check."""
    from worker.tasks.idp_events import drain_deliveries

    key_id = uuid.uuid4()
    bridged.put("keys", key_id, key_body(bridged.owner))
    bridged.usage({"records": [record(api_key_id=str(key_id))]})
    event = {"type": "key.upserted", "id": str(uuid.uuid4()), "version": 1}
    assert bridged.event({**event, "data": key_body(bridged.owner)}).status_code == 202
    drain_deliveries.run(str(bridged.org.id))

    assert _backstops(session) == []
    assert _key(session, uuid.UUID(event["id"])).revoked is False  # the drain applied it


def test_only_a_pushed_key_arms_a_leaver_check(bridged, session):
    """A budget or quota grants no access to take away; a key does (leaver_checks.grants_access,
    which the push route and the event drain both ask)."""
    from models.actions import leaver_checks
    from models.actions.odock_objects import KIND_BUDGET, KIND_KEY, KIND_QUOTA
    from models.actor import Actor

    def armed(kind: str) -> bool:
        backstop = leaver_checks.arm_for_object(
            session,
            organisation_id=bridged.org.id,
            actor=Actor.system("test"),
            kind=kind,
            object_id=uuid.uuid4(),
        )
        return backstop is not None

    assert [armed(kind) for kind in (KIND_KEY, KIND_BUDGET, KIND_QUOTA)] == [True, False, False]
    session.rollback()


def _backstops(session) -> list[dict]:
    """The leaver checks armed and not disarmed, as plain values (read, then let go)."""
    session.expire_all()
    found = [
        {"kwargs": message.kwargs, "deferred": message.available_at > message.created_at}
        for message in session.scalars(
            select(OutboxMessage).where(OutboxMessage.task == TASK_CHECK)
        )
    ]
    session.rollback()
    return found


def test_a_load_that_brought_no_key_reviews_nothing(bridged, session, engine):
    _revoke(session, bridged.owner.id)
    run = odock_reconcile.import_lines(engine, organisation_id=bridged.org.id, lines=[])

    assert odock_reconcile.review_loaded_keys(session, run) == []


def test_the_reconcile_task_puts_a_revoked_owners_listed_key_to_their_review(
    bridged, session, httpserver, bridged_settings, monkeypatch
):
    from worker.celery_app import celery_app
    from worker.runtime import runtime
    from worker.tasks.odock_reconcile import reconcile_organisation

    monkeypatch.setattr(runtime(), "settings", bridged_settings)
    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **_kw: None)
    _revoke(session, bridged.owner.id)
    key_id = uuid.uuid4()
    listing(httpserver, bridged.org.id, {"keys": [listed(key_id, key_body(bridged.owner))]})

    assert reconcile_organisation.run(str(bridged.org.id))["status"] == "succeeded"

    assert _key(session, key_id).revoked is True
    (finding,) = _findings(session, key_id)
    assert (finding.action, finding.action_taken) == ("revoked", True)


def _holds_key(session: Session, key_id: uuid.UUID) -> bool:
    """Whether the session wrote (or read) the key, without a statement."""
    return any(isinstance(held, VirtualApiKey) and held.id == key_id for held in session)


def test_a_key_pushed_while_its_owner_is_revoked_is_revoked_without_the_sweep(bridged, session):
    """Before, the key stayed active until the review sweep (an hour)."""
    key_id = uuid.uuid4()

    written_while_the_owner_is_revoked(
        bridged,
        session,
        lambda writing: _holds_key(writing, key_id),
        lambda: bridged.put("keys", key_id, key_body(bridged.owner)),
    )

    assert _key(session, key_id).revoked is True
    (finding,) = _findings(session, key_id)
    assert (finding.action, finding.action_taken) == ("revoked", True)


def test_a_key_event_applied_while_its_owner_is_revoked_is_revoked_without_the_sweep(
    bridged, session
):
    from worker.tasks.idp_events import drain_deliveries

    key_id = uuid.uuid4()
    event = {"type": "key.upserted", "id": str(key_id), "version": 1}
    assert bridged.event({**event, "data": key_body(bridged.owner)}).status_code == 202

    written_while_the_owner_is_revoked(
        bridged,
        session,
        lambda writing: _holds_key(writing, key_id),
        lambda: drain_deliveries.run(str(bridged.org.id)),
    )

    assert _key(session, key_id).revoked is True
    (finding,) = _findings(session, key_id)
    assert (finding.action, finding.action_taken) == ("revoked", True)
