"""A change of state and its side effects commit together; the relay hands them to a real worker."""

import json

from sqlalchemy import select
from werkzeug import Request, Response

from models.actions import lifecycle
from models.entities import OutboxMessage
from models.enums import Role
from tests.support import factories as f
from tests.support.wait import wait_until

INVALIDATE = "/gateway/v1/internal/cache/invalidate"


def test_revocation_invalidates_the_revoked_keys_at_the_gateway(
    session, sessions, client, worker, httpserver
):
    received: list[dict] = []

    def handler(request: Request) -> Response:
        received.append(
            {"auth": request.headers.get("Authorization"), "body": json.loads(request.data)}
        )
        return Response("{}", status=200, content_type="application/json")

    httpserver.expect_request(INVALIDATE, method="POST").respond_with_handler(handler)
    org = f.make_org(session)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    person = f.make_user(session, org)
    keys = [f.make_key(session, org, owner=person) for _ in range(2)]
    token = f.admin_token(session, org, admin)
    session.commit()

    response = client.post(
        f"/api/v1/users/{person.id}/revoke", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200, response.json
    wanted = sorted(str(k.id) for k in keys)

    def ours() -> list[dict]:
        # Earlier tests may have left invalidations of their own keys in the queue.
        return [r for r in received if sorted(r["body"]["key_ids"]) == wanted]

    call = wait_until(ours, what="the gateway invalidation call")[0]
    assert call["auth"] == "Bearer gateway-shared-secret"

    def completed() -> bool:
        with sessions() as fresh:
            query = select(OutboxMessage).where(OutboxMessage.task == "gateway.invalidate_keys")
            message = fresh.scalars(query).one()
            return message.dispatched_at is not None and message.completed_at is not None

    wait_until(completed, what="the outbox message marked completed")


def test_work_is_kept_when_the_broker_is_down_at_commit_and_relayed_later(
    session, sessions, monkeypatch
):
    from worker import outbox_relay
    from worker.celery_app import celery_app

    org = f.make_org(session)
    person = f.make_user(session, org)
    f.make_key(session, org, owner=person)
    session.commit()

    def broker_down(*_args, **_kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    with sessions() as tx:
        lifecycle.revoke(tx, user=tx.merge(person), actor=f.SETUP)
        tx.commit()
    pending = session.scalars(
        select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))
    ).all()
    assert {m.task for m in pending} == {"gateway.invalidate_keys", "reviews.open_for_revocation"}
    assert all("broker down" in (m.last_error or "") for m in pending)
    session.rollback()  # end the read: on SQLite every transaction holds the write lock

    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))
    assert outbox_relay.relay_outbox() == 2
    assert sorted(sent) == ["gateway.invalidate_keys", "reviews.open_for_revocation"]
    assert outbox_relay.relay_outbox() == 0


def test_installing_the_relay_twice_publishes_each_message_once(session, sessions, monkeypatch):
    from worker import outbox_relay
    from worker.celery_app import celery_app

    outbox_relay.install_after_commit_relay(sessions)  # already installed by the fixture
    assert sessions in outbox_relay._RELAYED_FACTORIES
    sent: list[str] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kw: sent.append(name))
    org = f.make_org(session)
    person = f.make_user(session, org)
    session.commit()
    with sessions() as tx:
        lifecycle.revoke(tx, user=tx.merge(person), actor=f.SETUP)
        tx.commit()
    assert sent == ["reviews.open_for_revocation"]
