"""The SMTP server that carries invitations and email notifications, through faults: a loopback
front (tests/support/smtp_front.py) before the real test server that closes every connection
(a server going away) or trickles its greeting a byte at a time, each within the read timeout
(a server that never finishes answering). A send through a fault fails in bounded time as
EmailUnavailable (retried later), never holding its worker for as long as the server likes."""

from __future__ import annotations

import pytest

from connectors import email
from tests.support.smtp_front import CLOSE, PASS, TRICKLE, smtp_front


def config(port: int) -> email.SmtpConfig:
    return email.SmtpConfig(
        host="127.0.0.1", port=port, sender="odock-sync@example.test", timeout=1.0, deadline=2.0
    )


MESSAGE = email.Email(to="pat@example.com", subject="Invitation", text="Join us")


def test_a_server_trickling_its_greeting_is_hung_up_on_at_the_deadline(smtp_server, mailbox):
    with smtp_front(smtp_server[0].port, TRICKLE) as front:
        with pytest.raises(email.EmailUnavailable, match="not done within 2 s"):
            email.send(config(front.port), MESSAGE)
        # Before: every byte came within the read timeout, so the client read on for as
        # long as the server trickled (here a minute), and never hung up.
        assert front.hung_up.wait(10)
    assert mailbox.messages == []


def test_a_server_gone_away_fails_the_send_and_the_next_one_goes_through(smtp_server, mailbox):
    with smtp_front(smtp_server[0].port, CLOSE) as front:
        with pytest.raises(email.EmailUnavailable):
            email.send(config(front.port), MESSAGE)
        front.mode = PASS
        email.send(config(front.port), MESSAGE)
    (sent,) = mailbox.to("pat@example.com")
    assert sent["Subject"] == "Invitation"
