"""With SMTP_HOST unset, mail is kept in the local outbox (readable with `odock-sync mail`)
instead of failing and being retried forever; with a server, it is sent and nothing is kept."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from models.entities import AuditEvent, InvitationDelivery, LocalMail
from models.queries.local_mail import links_in
from tests.support.fuzz import hold_tasks
from tests.support.worker import settings_env
from worker.runtime import KEPT_LOCALLY, init_runtime
from worker.tasks.invitations import deliver


@pytest.fixture(autouse=True)
def held(monkeypatch):
    """The tasks these commits send are held, so that only this test runs `deliver` (a worker
    left from another test would otherwise send through the run's SMTP server first)."""
    return hold_tasks(monkeypatch)


@pytest.fixture
def no_smtp(settings):
    """The task runtime of this process without an SMTP server, as `make serve` runs."""
    local = settings.model_copy(update={"smtp_host": ""})
    init_runtime(local)
    yield local
    init_runtime(settings)


def cli(settings, monkeypatch, *args: str):
    for name, value in settings_env(settings).items():
        if name.isupper() and name.lower() in settings.model_dump():
            monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_without_smtp_the_invitation_is_kept_with_its_link(
    session, sessions, scene, no_smtp, mailbox, monkeypatch, enroll_client, held
):
    issued = scene.invite(session, "local@example.com")
    session.commit()
    invitation_id = str(issued.invitation.id)
    assert [(name, sent["kwargs"]["invitation_id"]) for name, sent in held] == [
        ("invitations.deliver", invitation_id)
    ]
    deliver.run(invitation_id, 1)
    deliver.run(invitation_id, 1)  # a second run of the same send keeps nothing more

    with sessions() as s:
        [kept] = s.scalars(select(LocalMail)).all()
        assert kept.recipient == "local@example.com" and kept.organisation_id == scene.org.id
        # The link is a credential: only its hash may be readable in the database.
        assert issued.token not in kept.sealed_body
        [attempt] = s.scalars(select(InvitationDelivery)).all()
        assert (attempt.status, attempt.detail) == ("sent", KEPT_LOCALLY)
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.action == "mail.kept")).all()
    assert mailbox.messages == []

    link = f"{no_smtp.public_base_url}/enroll/{issued.token}"
    listed = json.loads(cli(no_smtp, monkeypatch, "mail", "list", "--json").stdout)
    assert [(m["id"], m["to"]) for m in listed] == [(str(kept.id), "local@example.com")]
    table = cli(no_smtp, monkeypatch, "mail", "list").stdout
    assert table.splitlines()[0].split() == ["ID", "CREATED", "AT", "TO", "SUBJECT"]
    assert str(kept.id) in table and "local@example.com" in table
    shown = cli(no_smtp, monkeypatch, "mail", "show", str(kept.id)).stdout
    assert "To:      local@example.com" in shown and f"  {link}" in shown
    newest = json.loads(cli(no_smtp, monkeypatch, "mail", "show", "--json").stdout)
    assert newest["id"] == str(kept.id) and link in newest["links"] and link in newest["html"]

    page = enroll_client.get(link.removeprefix(no_smtp.public_base_url))
    assert page.status_code == 200 and b"Acme Labs" in page.data


def test_with_smtp_the_invitation_is_sent_and_nothing_is_kept(
    session, sessions, scene, settings, mailbox
):
    issued = scene.invite(session, "smtp@example.com")
    session.commit()
    deliver.run(str(issued.invitation.id), 1)
    [message] = mailbox.to("smtp@example.com")
    assert f"/enroll/{issued.token}" in message.get_body(preferencelist=("plain",)).get_content()
    with sessions() as s:
        assert s.scalars(select(LocalMail)).all() == []
        assert [d.status for d in s.scalars(select(InvitationDelivery))] == ["sent"]


@pytest.mark.parametrize("smtp", [False, True], ids=["local outbox", "smtp"])
def test_invitations_create_says_where_the_email_goes(scene, settings, monkeypatch, smtp: bool):
    configured = settings if smtp else settings.model_copy(update={"smtp_host": ""})
    org = scene.org.slug
    result = cli(
        configured,
        monkeypatch,
        "invitations",
        "create",
        "--org",
        org,
        "--email",
        "w@example.com",
        "--json",
    )
    assert json.loads(result.stdout)["email"] == "w@example.com"  # the note is on stderr
    if smtp:
        assert f"through SMTP at 127.0.0.1:{settings.smtp_port}" in result.stderr
    else:
        assert "local outbox" in result.stderr and "odock-sync mail show" in result.stderr


def test_mail_show_on_an_empty_outbox_is_a_clear_error(settings, monkeypatch, clean_db):
    for name, value in settings_env(settings).items():
        if name.isupper() and name.lower() in settings.model_dump():
            monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["mail", "show"])
    assert result.exit_code == 1 and "the local outbox is empty" in result.output


def test_links_are_found_once_without_trailing_punctuation():
    text = "Open https://x.test/enroll/inv_a-b_c. Or (https://x.test/help), https://x.test/enroll/inv_a-b_c"
    assert links_in(text) == ["https://x.test/enroll/inv_a-b_c", "https://x.test/help"]
