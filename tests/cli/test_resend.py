"""`odock-sync hooks resend` and `hooks delivery`: the same domain operation as the API."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from models.entities import AuditEvent, OutboxMessage
from models.enums import HookKind
from tests.reviews.test_deliveries import add_hook
from tests.reviews.test_resend import failed_delivery
from tests.support import factories as f


def test_the_cli_resends_and_is_audited(run_json, session, sessions, settings) -> None:
    org = f.make_org(session)
    hook, _ = add_hook(session, settings, org, HookKind.WEBHOOK, "http://127.0.0.1:9/x")
    delivery = failed_delivery(session, org, hook.id)
    shown = run_json("hooks", "resend", "--org", org.slug, str(delivery.id))
    assert shown["id"] == str(delivery.id) and shown["resends"] == 1
    assert run_json("hooks", "delivery", "--org", org.slug, str(delivery.id))["resends"] == 1
    with sessions() as fresh:
        event = fresh.scalar(
            select(AuditEvent).where(AuditEvent.action == "notification_delivery.resent")
        )
        assert event.actor == "cli" and event.target_id == str(delivery.id)
        queued = fresh.scalars(select(OutboxMessage.kwargs)).all()
        assert {"delivery_id": str(delivery.id)} in queued


def test_the_cli_names_a_bad_id(run, session) -> None:
    org = f.make_org(session)
    session.commit()
    result = run("hooks", "resend", "--org", org.slug, "nope", ok=False)
    assert "not a delivery id" in result.output
    result = run("hooks", "resend", "--org", org.slug, str(uuid.uuid4()), ok=False)
    assert "notification delivery not found" in result.output
