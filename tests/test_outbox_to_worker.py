"""A revocation's side effects reach a real worker through the outbox: the gateway is told."""

import json

from sqlalchemy import select
from werkzeug import Request, Response

from models.entities import OutboxMessage
from models.enums import Role
from tests.support import factories as f
from tests.support.relay import wait_relaying
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
        return [r for r in received if sorted(r["body"]["key_ids"]) == wanted]

    # With beat's relay played: a message the request could not publish is handed back and
    # relayed, as in a deployment (a fresh-clone CI run's eager publish failed with
    # outbox.no_producer, and the test waited 90 s for a relay no test ran).
    call = wait_relaying(ours, what="the gateway invalidation call")[0]
    assert call["auth"] == "Bearer gateway-shared-secret"

    def completed() -> bool:
        with sessions() as fresh:
            query = select(OutboxMessage).where(OutboxMessage.task == "gateway.invalidate_keys")
            message = fresh.scalars(query).one()
            return message.dispatched_at is not None and message.completed_at is not None

    wait_until(completed, what="the outbox message marked completed")
