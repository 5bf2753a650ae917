"""Delivery by the real worker over real SMTP, retries, idempotency, and the expiry task."""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta

import pytest
from sqlalchemy import select

from models.actions import invitations as inv
from models.base import utcnow
from models.entities import Invitation, InvitationDelivery
from models.enums import InvitationStatus, Role
from models.outbox import take_new_messages
from tests.support.relay import wait_relaying
from tests.support.wait import wait_until
from worker.celery_app import beat_schedule, celery_app
from worker.tasks.base import TransientError

LEASE_LEFT = timedelta(seconds=3)


def _deliveries(sessions, invitation_id):
    with sessions() as s:
        rows = s.scalars(
            select(InvitationDelivery)
            .where(InvitationDelivery.invitation_id == invitation_id)
            .order_by(InvitationDelivery.occurred_at)
        ).all()
        return [(d.send_number, d.attempt, d.status) for d in rows]


def _body(message, subtype):
    return message.get_body(preferencelist=(subtype,)).get_content()


def test_invitation_email_has_link_org_role_inviter_expiry(
    session, sessions, scene, worker, mailbox, settings
):
    issued = scene.invite(session, "pat@example.com", role=Role.MANAGER)
    session.commit()
    [message] = wait_relaying(
        lambda: mailbox.to("pat@example.com"), timeout=90, what="invitation email"
    )
    link = f"{settings.public_base_url}/enroll/{issued.token}"
    text, html = _body(message, "plain"), _body(message, "html")
    for part in (text, html):
        assert link in part and "Acme Labs" in part and "Manager" in part and "Ada Admin" in part
        assert issued.invitation.expires_at.strftime("%d %B %Y") in part
    assert message["Message-ID"] == f"<invitation-{issued.invitation.id}-1@odock-sync>"
    wait_relaying(
        lambda: _deliveries(sessions, issued.invitation.id) == [(1, 1, "sent")],
        timeout=90,
        what="history",
    )


def test_an_inviter_or_organisation_named_with_invisible_characters_is_shown_marked(
    session, sessions, scene, worker, mailbox
):
    """The invitee reads who invited them: a right-to-left override in the inviter's name or
    a zero-width space in the organisation's is marked ("<U+202E>"), in the subject, the text
    and the HTML (where the names are also bidi isolated)."""
    scene.admin.name = "Ada \u202enimdA"
    scene.org.name = "Acme\u200b Labs"
    scene.invite(session, "pia@example.com")
    session.commit()
    [message] = wait_relaying(lambda: mailbox.to("pia@example.com"), timeout=90, what="email")
    text, html = _body(message, "plain"), _body(message, "html")
    assert "Ada <U+202E>nimdA (" in text and "join Acme<U+200B> Labs on Odock" in text
    assert "<bdi>Ada &lt;U+202E&gt;nimdA (" in html
    assert "<bdi>Acme&lt;U+200B&gt; Labs</bdi>" in html
    assert "Acme<U+200B> Labs" in str(message["Subject"])
    for part in (text, html, str(message["Subject"])):
        assert "\u202e" not in part and "\u200b" not in part


def test_guard_markup_in_the_inviter_or_organisation_name_is_text_in_the_email(
    session, scene, mailbox
):
    """Guard (passed before): the HTML part escapes the names (a script, an attribute break,
    a link), the text part and the subject carry them as text, one Subject header."""
    from worker.tasks.invitations import deliver

    scene.admin.name = 'Ada "><script>alert(1)</script>'
    scene.org.name = "Acme <a href=javascript:alert(2)>Labs</a>"
    issued = scene.invite(session, "mia@example.com")
    session.commit()
    deliver.run(str(issued.invitation.id), 1)
    [message] = mailbox.to("mia@example.com")
    html = _body(message, "html")
    assert "<script>" not in html and "<a href=javascript" not in html
    assert "Ada &#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'Ada "><script>alert(1)</script>' in _body(message, "plain")
    assert len(message.get_all("Subject")) == 1
    subject = "You are invited to join Acme <a href=javascript:alert(2)>Labs</a> on Odock"
    assert str(message["Subject"]).strip() == subject


def test_failed_delivery_is_retried_and_recorded(session, sessions, scene, worker, mailbox):
    mailbox.fail_next(1)
    issued = scene.invite(session, "retry@example.com")
    session.commit()
    wait_relaying(lambda: mailbox.to("retry@example.com"), timeout=90, what="retried email")
    wait_relaying(
        lambda: _deliveries(sessions, issued.invitation.id) == [(1, 1, "failed"), (1, 2, "sent")],
        timeout=90,
        what="both attempts recorded",
    )
    assert len(mailbox.to("retry@example.com")) == 1


def test_one_email_per_send_even_if_the_task_runs_again(session, sessions, scene, worker, mailbox):
    from worker.tasks.invitations import deliver

    issued = scene.invite(session, "once@example.com")
    session.commit()  # the worker delivers it too, concurrently with the runs below
    invitation_id = str(issued.invitation.id)
    for _ in range(2):
        with suppress(TransientError):  # the worker's attempt holds the claim: retried later
            deliver.run(invitation_id, 1)
    celery_app.send_task("invitations.deliver", args=[invitation_id, 1])
    wait_relaying(
        lambda: [d[2] for d in _deliveries(sessions, issued.invitation.id)] == ["sent"],
        timeout=90,
        what="one sent attempt",
    )
    wait_relaying(lambda: mailbox.to("once@example.com"), timeout=90, what="the email")
    _drain(sessions)
    assert len(mailbox.to("once@example.com")) == 1


def test_a_claim_abandoned_by_a_dead_worker_is_taken_over(session, sessions, scene, mailbox):
    from worker.tasks.invitations import deliver

    issued = scene.invite(session, "lost@example.com")
    session.flush()
    plan = inv.plan_delivery(
        session, invitation_id=issued.invitation.id, send_number=1, secret_key=scene.secret_key
    )
    # A worker claimed the send ten minutes ago, then died.
    assert inv.claim_send(session, plan=plan, now=utcnow() - timedelta(minutes=10))
    session.commit()
    deliver.run(str(issued.invitation.id), 1)
    wait_until(
        lambda: [d[2] for d in _deliveries(sessions, issued.invitation.id)] == ["failed", "sent"],
        timeout=90,
        what="the abandoned claim replaced by a sent attempt",
    )
    assert len(mailbox.to("lost@example.com")) == 1
    with sessions() as s:
        plan = inv.plan_delivery(
            s, invitation_id=issued.invitation.id, send_number=1, secret_key=scene.secret_key
        )
    assert plan is None


def test_a_claim_whose_end_was_never_recorded_is_retried_until_its_lease_ends(
    session, sessions, scene, worker, mailbox, monkeypatch
):
    """An attempt that sent (or not) and then lost the database before recording how it
    ended leaves its claim "sending": the retry waits for the claim's lease and sends, rather
    than finding the claim and dropping the send for good."""
    issued = scene.invite(session, "unrecorded@example.com")
    take_new_messages(session)  # the worker gets only the delivery published below
    plan = inv.plan_delivery(
        session, invitation_id=issued.invitation.id, send_number=1, secret_key=scene.secret_key
    )
    assert inv.claim_send(session, plan=plan, now=utcnow() - inv.SEND_LEASE + LEASE_LEFT)
    session.commit()
    celery_app.send_task("invitations.deliver", args=[str(issued.invitation.id), 1])
    wait_until(
        lambda: [d[2] for d in _deliveries(sessions, issued.invitation.id)] == ["failed", "sent"],
        timeout=60,
        what="the unrecorded claim taken over once its lease ended, and the mail sent",
    )
    assert len(mailbox.to("unrecorded@example.com")) == 1


def test_resend_supersedes_the_older_send(session, sessions, scene, mailbox):
    from worker.tasks.invitations import deliver

    scene.org.settings.resend_cooldown_seconds = 0
    issued = scene.invite(session, "again@example.com")
    again = inv.resend(
        session,
        viewer=scene.admin_viewer,
        invitation_id=issued.invitation.id,
        actor=scene.actor(scene.admin_viewer),
        secret_key=scene.secret_key,
    )
    session.commit()
    deliver.run(str(issued.invitation.id), 1)  # stale: the old link is dead, send nothing
    deliver.run(str(issued.invitation.id), 2)
    [message] = wait_until(lambda: mailbox.to("again@example.com"), timeout=90, what="the email")
    assert again.token in _body(message, "plain") and issued.token not in _body(message, "plain")
    assert {d[0] for d in _deliveries(sessions, issued.invitation.id)} == {2}


def _drain(sessions) -> None:
    """Wait until the outbox holds no unfinished work (the worker is idle for this test)."""
    from models.entities import OutboxMessage

    def idle() -> bool:
        with sessions() as s:
            return not s.scalars(
                select(OutboxMessage.id).where(OutboxMessage.completed_at.is_(None))
            ).first()

    wait_relaying(idle, timeout=90, what="outbox drained")


def test_expiry_task_on_the_worker(session, sessions, scene, worker):
    now = utcnow()
    overdue = [scene.invite(session, f"late{i}@example.com").invitation for i in range(3)]
    for invitation in overdue:
        invitation.expires_at = now - timedelta(minutes=5)
    fresh = scene.invite(session, "fresh@example.com").invitation
    session.commit()
    celery_app.send_task("invitations.expire_overdue")

    def statuses():
        with sessions() as s:
            return {i.id: i.status for i in s.scalars(select(Invitation))}

    wait_until(
        lambda: all(statuses()[i.id] is InvitationStatus.EXPIRED for i in overdue),
        timeout=90,
        what="overdue invitations expired",
    )
    assert statuses()[fresh.id] is InvitationStatus.PENDING


def test_expiry_is_on_the_beat_schedule(settings):
    entry = beat_schedule(settings)["invitations-expire"]
    assert entry["task"] == "invitations.expire_overdue"
    celery_app.loader.import_default_modules()  # as a worker starting up (alone, nothing has)
    assert "invitations.expire_overdue" in celery_app.tasks


def test_changed_secret_key_rejects_the_send_clearly(
    session, sessions, scene, mailbox, monkeypatch
):
    from worker.runtime import runtime
    from worker.tasks.invitations import deliver

    issued = scene.invite(session, "rotated@example.com")
    take_new_messages(session)  # keep the running worker out of it: only the run below sends
    session.commit()
    current = runtime()
    monkeypatch.setattr(
        current, "settings", current.settings.model_copy(update={"secret_key": "another-key-0123"})
    )
    deliver.run(str(issued.invitation.id), 1)
    assert _deliveries(sessions, issued.invitation.id) == [(1, 1, "rejected")]
    assert mailbox.to("rotated@example.com") == []


def test_a_second_copy_of_a_send_waiting_out_its_backoff_does_not_send_it_early(
    session, sessions, scene, mailbox, monkeypatch
):
    """A send whose attempt failed (the SMTP server answered 451) is not tried again by
    another copy of its task before its next attempt is due: the outbox relay publishes the
    task again once its message has not completed for OUTBOX_REDISPATCH_AFTER (a retry chain
    never completes it until it succeeds). That copy waits until the send is due. Before, it
    found no live claim, talked to SMTP at once and started a second retry chain."""
    from celery.exceptions import Retry

    from worker.runtime import runtime
    from worker.tasks.invitations import deliver

    waiting = {"invitation_retry_base": 300.0, "invitation_retry_max": 3600.0}
    monkeypatch.setattr(runtime(), "settings", runtime().settings.model_copy(update=waiting))
    held: list[dict] = []  # messages kept from the broker: only this test delivers it
    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **kw: held.append(kw))
    mailbox.fail_next(5)
    issued = scene.invite(session, "greylisted@example.com")
    take_new_messages(session)
    session.commit()
    invitation_id = str(issued.invitation.id)

    def run_copy(task_id: str) -> Retry:
        deliver.push_request(
            id=task_id, called_directly=False, retries=0, args=[invitation_id, 1], kwargs={}
        )
        try:
            with pytest.raises(Retry) as retried:
                deliver.run(invitation_id, 1)
        finally:
            deliver.pop_request()
        return retried.value

    first = run_copy("outbox-first")
    redispatched = run_copy("outbox-redispatched")  # the relay's copy, minutes later

    assert mailbox.failures_left == 4  # one SMTP conversation: the copy did not send
    assert first.when == 300.0
    assert isinstance(redispatched.when, float) and 299.0 <= redispatched.when <= 302.0
    assert _deliveries(sessions, issued.invitation.id) == [(1, 1, "failed")]


def test_a_copy_finding_the_send_under_way_looks_again_soon(session, sessions, scene, monkeypatch):
    """A copy of the task that finds another attempt sending now (a redelivery, a second
    worker) looks again with its backoff, not only when that claim's lease ends: the send
    may end any moment, and the copy's message completes once it finds it sent. Waiting the
    whole lease (5 minutes) left its outbox message open that long."""
    from celery.exceptions import Retry

    from worker.runtime import runtime
    from worker.tasks.invitations import deliver

    monkeypatch.setattr(celery_app, "send_task", lambda *_args, **_kw: None)  # kept here
    issued = scene.invite(session, "busy@example.com")
    take_new_messages(session)
    plan = inv.plan_delivery(
        session, invitation_id=issued.invitation.id, send_number=1, secret_key=scene.secret_key
    )
    assert inv.claim_send(session, plan=plan, now=utcnow())  # another attempt, sending now
    session.commit()
    invitation_id = str(issued.invitation.id)

    deliver.push_request(id="copy", called_directly=False, retries=0, args=[invitation_id, 1])
    try:
        with pytest.raises(Retry) as retried:
            deliver.run(invitation_id, 1)
    finally:
        deliver.pop_request()

    assert retried.value.when == runtime().settings.invitation_retry_base
