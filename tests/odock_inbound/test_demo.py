"""`odock-sync demo` builds its keys, budgets, quotas and usage through the inbound bridge."""

from __future__ import annotations

from sqlalchemy import select

from models.entities import AuditEvent, Budget, Quota, UsageRecord, VirtualApiKey


def test_the_demo_data_arrives_as_odock_would_send_it(run_json, sessions):
    run_json("demo", "--slug", "demo-bridge")

    with sessions() as session:
        keys = session.scalars(select(VirtualApiKey)).all()
        assert len(keys) == 4 and {key.version for key in keys} == {1}
        assert len(session.scalars(select(Budget)).all()) == 2
        assert len(session.scalars(select(Quota)).all()) == 2
        usage = session.scalars(select(UsageRecord)).all()
        assert len(usage) == 12 and all(r.external_id.startswith("demo-") for r in usage)
        by_bridge = session.scalars(
            select(AuditEvent.action).where(AuditEvent.actor == "odock demo")
        ).all()
    assert by_bridge.count("odock.key.created") == 4
    assert by_bridge.count("odock.budget.created") == 2
    assert by_bridge.count("odock.quota.created") == 2
    assert by_bridge.count("odock.usage.ingested") == 1
