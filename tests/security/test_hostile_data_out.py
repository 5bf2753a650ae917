"""Names someone else chose, on their way out: a key named through Odock's push, a person named
by their identity provider, rendered where they could be read as markup or structure (Slack
mrkdwn, email headers and bodies, console pages). Each format's own rules hold: the value is
shown, never interpreted."""

from __future__ import annotations

import json
import logging
import re
import uuid
from email.message import EmailMessage
from html.parser import HTMLParser

import structlog
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.actions import lifecycle, reviews
from models.actions.notification_deliveries import AttemptResult, plan_deliveries
from models.entities import NotificationDelivery, NotificationHook, Organisation, User
from models.enums import HookKind, Role
from models.observability import configure_logging, configure_stdlib_logging
from models.settings import Settings
from tests.cli.conftest import cli_env, run  # noqa: F401 (fixtures)
from tests.console.conftest import sign_in
from tests.odock_inbound.conftest import Bridged, Ref, bridge, key_body
from tests.reviews.conftest import dispatched
from tests.support import factories as f
from tests.support.smtp import Mailbox
from worker.tasks.notifications import send_delivery

# A key name as Odock's management plane pushes it (a user names their own keys): a line
# break that would start a forged finding, Slack's mentions and a link, a URL and a channel.
FORGED_LINE = "\u2022 [low] api_key nothing to see: keep (done)"
HOSTILE_KEY_NAME = f"ci\n{FORGED_LINE}\r\n<!channel> @here <https://evil.example|review> #general"


def _push_hostile_key(bridged: Bridged) -> None:
    key_id = uuid.uuid4()
    answer = bridged.put("keys", key_id, key_body(bridged.owner, name=HOSTILE_KEY_NAME))
    assert answer.status_code == 200, answer.get_data(as_text=True)


def _revoke_owner_and_send(
    session: Session, settings: Settings, bridged: Bridged
) -> list[tuple[NotificationDelivery, AttemptResult]]:
    """Revoke the key's owner (a review opens) and send each delivery of the notifications
    it queued through the worker's sending path."""
    owner = session.get(User, bridged.owner.id)
    assert owner is not None
    revocation = lifecycle.revoke(session, user=owner, actor=f.SETUP)
    session.flush()
    reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    session.commit()
    planned = [
        delivery
        for queued in dispatched(session)
        for delivery in plan_deliveries(
            session,
            event_id=queued["event_id"],
            organisation_id=uuid.UUID(queued["organisation_id"]),
            event=queued["event"],
            payload=queued["payload"],
            recipient_user_ids=[uuid.UUID(u) for u in queued["recipient_user_ids"]],
        )
    ]
    session.commit()
    sent = [(delivery, _send(session, settings, delivery)) for delivery in planned]
    session.commit()
    return sent


def _send(session: Session, settings: Settings, delivery: NotificationDelivery) -> AttemptResult:
    hook = session.get(NotificationHook, delivery.hook_id) if delivery.hook_id else None
    return send_delivery(session, settings, delivery, hook)


def _slack_sections(httpserver: HTTPServer) -> list[dict]:
    bodies = [json.loads(request.get_data()) for request, _ in httpserver.log]
    return [
        block["text"]
        for body in bodies
        for block in body["blocks"]
        if block["type"] == "section" and HOSTILE_KEY_NAME[:2] in block["text"]["text"]
    ]


def test_a_key_name_forges_no_slack_line_link_or_mention(
    session, settings, client, httpserver: HTTPServer
):
    """Slack reads a section's mrkdwn: the name's &, < and > escaped (its <!channel> and
    <url|text> are text), its line breaks shown, not started as a forged finding, and the
    text verbatim, so Slack's automatic parsing links no URL, channel or @here in it
    (Slack's text object: `verbatim`)."""
    httpserver.expect_request("/slack").respond_with_data("ok")
    bridged = bridge(session, settings, client)
    f.make_hook(
        session,
        bridged.org.id,
        httpserver.url_for("/slack"),
        secret_key=settings.secret_key,
        kind=HookKind.SLACK,
        name="chat",
    )
    session.commit()
    _push_hostile_key(bridged)

    assert all(result.ok for _, result in _revoke_owner_and_send(session, settings, bridged))

    (section,) = _slack_sections(httpserver)
    assert section["type"] == "mrkdwn" and section.get("verbatim") is True
    text = section["text"]
    assert "<" not in text.replace("&lt;", "") and ">" not in text.replace("&gt;", "")
    assert "&lt;!channel&gt;" in text
    assert not any(line.startswith(FORGED_LINE[:8]) for line in text.split("\n"))
    assert "ci&lt;U+000A&gt;" in text


def test_a_key_name_forges_no_line_in_an_owners_email(session, settings, client, mailbox: Mailbox):
    """The plain-text alert lists one finding per line: a name's line breaks are shown as
    markers, so no forged line ("- [low] ... keep (done)") appears in it."""
    bridged = bridge(session, settings, client)
    secops = f"secops-{bridged.org.slug}@example.com"
    f.make_hook(
        session,
        bridged.org.id,
        secops,
        secret_key=settings.secret_key,
        kind=HookKind.EMAIL,
        name="secops",
    )
    session.commit()
    _push_hostile_key(bridged)

    assert all(result.ok for _, result in _revoke_owner_and_send(session, settings, bridged))

    mails = mailbox.to(secops)
    assert mails
    for mail in mails:
        _assert_one_subject_and_no_forged_line(mail)


def _assert_one_subject_and_no_forged_line(mail: EmailMessage) -> None:
    assert len(mail.get_all("Subject") or []) == 1 and mail["Bcc"] is None
    content = mail.get_content()
    lines = content.split("\n")
    assert not any(line.startswith(f"- {FORGED_LINE[:8]}") for line in lines), content
    assert not any(re.match(r"^\u2022 \[low\]", line) for line in lines), content
    if "ci" in content:
        assert "ci<U+000A>" in content


def test_an_address_stored_before_the_intake_refused_it_adds_no_recipient(
    session, settings, client, mailbox: Mailbox
):
    """An address is one mailbox: "admin@corp,all-staff" made the To header two addresses, and
    the review meant for one admin went to a mailbox named all-staff as well. The intake now
    refuses it (tests/scim/test_hostile_input.py); one stored before that is refused by the
    mail builder for good, sent to nobody."""
    bridged = bridge(session, settings, client)
    org = session.get(Organisation, bridged.org.id)
    address = f"admin-{bridged.org.slug}@corp.example,all-staff"
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    admin.set_email(address)  # as an earlier release stored it
    session.commit()
    _push_hostile_key(bridged)

    sent = _revoke_owner_and_send(session, settings, bridged)

    (to_admin,) = [(d, r) for d, r in sent if d.recipient_email == address]
    assert not to_admin[1].ok and to_admin[1].permanent
    assert mailbox.to("all-staff") == []
    for mail in mailbox.messages:
        assert len(mail["To"].addresses) == 1


# Markup in a name: closing an attribute, a script, an event handler, a javascript: URL.
MARKUP = "\"'><script>alert(1)</script><img src=x onerror=alert(2)><a href=javascript:alert(3)>"


def test_guard_markup_in_names_is_text_on_every_console_page(session, settings, client):
    """Guard (passed before): a display name set through SCIM and a key name pushed by Odock,
    each holding markup, are escaped text on the person, review, reviews and audit pages
    (Jinja's autoescape, the audit's before/after JSON through tojson): no element, no
    attribute, no URL of theirs."""
    bridged = bridge(session, settings, client)
    org = session.get(Organisation, bridged.org.id)
    admin = f.make_user(session, org, role=Role.ORG_ADMIN)
    admin_token = f.admin_token(session, org, admin)
    scim = {"Authorization": f"Bearer {f.scim_token(session, org)}"}
    session.commit()
    created = client.post(
        "/scim/v2/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"leaver-{bridged.org.slug}@example.com",
            "displayName": MARKUP,
            "name": {"givenName": MARKUP, "familyName": "x"},
            "emails": [{"value": f"leaver-{bridged.org.slug}@example.com", "primary": True}],
        },
        headers=scim,
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    leaver = session.scalars(select(User).where(User.email.startswith("leaver-"))).one()
    key = key_body(Ref(leaver.id), name=MARKUP)
    session.commit()  # SQLite: a reading transaction holds the write lock
    assert bridged.put("keys", uuid.uuid4(), key).status_code == 200
    revocation = lifecycle.revoke(session, user=leaver, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    assert review is not None
    session.commit()
    sign_in(client, admin_token)

    pages = [
        f"/console/people/{leaver.id}",
        f"/console/reviews/{review.id}",
        "/console/reviews",
        "/console/audit",
        f"/console/audit?user_id={leaver.id}",
    ]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert _injected(answer.get_data(as_text=True)) == [], path
    person = client.get(f"/console/people/{leaver.id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in person


class _Elements(HTMLParser):
    """What a browser would build from a page that the markup in a name could have made."""

    def __init__(self) -> None:
        super().__init__()
        self.injected: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" or (tag == "script" and not dict(attrs).get("src")):
            self.injected.append(tag)
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.injected.append(f"{tag} {name}={value}")


def _injected(page: str) -> list[str]:
    parser = _Elements()
    parser.feed(page)
    return parser.injected


def test_guard_a_line_break_in_a_request_is_one_json_log_record(settings, client, capsys):
    """Guard (passed before): what a caller chose (here a hook address with CR LF and a
    forged record after it) is logged inside one JSON line (LOG_JSON, the default), escaped."""
    forged = '{"event":"user.revoked","level":"critical"}'
    configure_logging(settings.model_copy(update={"log_level": "INFO"}))
    try:
        capsys.readouterr()
        client.post(f"/hooks/okta/nobody%0d%0a{forged}", data=b"{}")
        logged = capsys.readouterr().err
    finally:
        configure_logging(settings)
    records = [json.loads(line) for line in logged.splitlines()]
    (refused,) = [r for r in records if r["event"] == "idp_hook.refused"]
    assert refused["path"].endswith(f"\r\n{forged}")
    assert not any(r.get("level") == "critical" for r in records)


def test_a_line_break_or_escape_in_a_value_stays_on_one_console_log_line(settings, capsys):
    """With LOG_JSON false (development) the console renderer writes the message raw (a
    standard `logging` record's, Celery's, has its arguments in it): a CR LF and a forged
    record, a screen clear and a hyperlink (OSC 8) in a logged value are shown as markers,
    each record on its one line."""
    forged = "2026-12-07T00:00:00Z [critical ] user.revoked"
    value = f"nobody\r\n{forged}\x1b[2J\x1b]8;;https://evil.example\x07ci bot\x1b]8;;\x07"
    console = settings.model_copy(update={"log_json": False, "log_level": "INFO"})
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(console)
    configure_stdlib_logging(console)
    try:
        structlog.get_logger().warning(f"refused {value}", path=value)
        logging.getLogger("celery.worker").warning("Received task: %s", value)
        logged = capsys.readouterr().err
    finally:
        configure_logging(settings)
        root.handlers[:], root.level = handlers, level
    shown = f"nobody<U+000D><U+000A>{forged}<U+001B>[2J<U+001B>]8;;https://evil.example<U+0007>"
    own_colours = re.sub(r"\x1b\[[0-9;]*m", "", logged)  # the renderer's, not the value's
    assert len(logged.splitlines()) == 2, repr(logged)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", own_colours), repr(logged)
    assert own_colours.count(shown) == 3, repr(logged)


# A key name that would drive an admin's terminal: clear the screen, a hyperlink (OSC 8) over
# innocent text, a carriage return that writes over the line, a right-to-left override.
TERMINAL = "\x1b[2J\x1b]8;;https://evil.example\x07ci bot\x1b]8;;\x07\rkeep\u202eyek\n  forged"


def test_a_key_name_drives_no_terminal_through_the_command_line(
    session,
    settings,
    client,
    run,  # noqa: F811 (the CLI fixture)
):
    """`odock-sync reviews show` (text output) prints a key name Odock pushed: its escape,
    bell and carriage return characters and its override are shown as markers, the lines
    the command writes stay its own."""
    bridged = bridge(session, settings, client)
    answer = bridged.put("keys", uuid.uuid4(), key_body(bridged.owner, name=TERMINAL))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    owner = session.get(User, bridged.owner.id)
    assert owner is not None
    revocation = lifecycle.revoke(session, user=owner, actor=f.SETUP)
    session.flush()
    review = reviews.open_revocation_review(session, revocation_id=revocation.id, actor=f.SETUP)
    assert review is not None
    review_id = str(review.id)
    session.commit()

    output = run("reviews", "show", review_id, "--org", bridged.org.slug).output

    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", output), repr(output)
    assert "<U+001B>]8;;https://evil.example<U+0007>ci bot" in output
    assert "<U+000D>keep<U+202E>yek<U+000A>  forged" in output
    assert len(output.splitlines()) == 2  # the review, its one finding
