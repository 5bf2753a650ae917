"""The fast path's task was renamed (0033_store_commands); its old name still works, for the
messages an older release left in the broker or in the outbox."""

from __future__ import annotations

import uuid

import worker.tasks.odock as odock_tasks
from worker.celery_app import celery_app, route_urgent


def test_a_message_under_the_old_name_is_carried_out_as_a_store_command_send(monkeypatch):
    sent: list[tuple] = []
    monkeypatch.setattr(
        odock_tasks,
        "send_store_commands",
        lambda command_ids, source="", arrived_at=None: sent.append(
            (command_ids, source, arrived_at)
        ),
    )
    command_id = str(uuid.uuid4())

    celery_app.tasks["odock.send_key_commands"](
        command_ids=[command_id], source="scim", arrived_at=12.5
    )

    assert sent == [([command_id], "scim", 12.5)]


def test_both_names_go_to_the_urgent_queue():
    for name in ("odock.send_store_commands", "odock.send_key_commands"):
        assert name in celery_app.tasks
        route = route_urgent(name, (), {}, {}) or {}
        assert route.get("queue", "").endswith(".urgent"), name
