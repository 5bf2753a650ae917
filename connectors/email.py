"""Sending email over SMTP (plain text with an HTML alternative)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from connectors.outbound import socket_deadline


class EmailUnavailable(Exception):
    """The SMTP server did not take the message; sending again is safe to try."""


class EmailRejected(Exception):
    """The server refused the message for good (a bad recipient); do not retry."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    starttls: bool = False
    timeout: float = 10.0  # each read and write
    # The whole send, greeting to goodbye: smtplib bounds only each read, and a server that
    # trickles its answers a byte within every timeout would hold the worker for as long as
    # it liked.
    deadline: float = 60.0


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str | None = None
    message_id: str | None = None


def build_message(config: SmtpConfig, email: Email) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = email.to
    # An address someone else chose is one mailbox: "admin@corp.example,all-staff" has one @
    # and passes for an address, but read as a To header (RFC 5322 address-list) it is two.
    if len(message["To"].addresses) != 1:
        raise EmailRejected(f"not one mailbox: {email.to!r}")
    message["Subject"] = email.subject
    message["Message-ID"] = email.message_id or make_msgid(domain="odock-sync")
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    return message


def send(config: SmtpConfig, email: Email) -> None:
    message = build_message(config, email)
    with socket_deadline(config.deadline) as watchdog:
        try:
            with _WatchedSMTP(watchdog, timeout=config.timeout) as smtp:
                smtp.connect(config.host, config.port)
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    watchdog.watch(smtp.sock)  # the TLS socket that replaced the plain one
                if config.username:
                    smtp.login(config.username, config.password)
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise EmailRejected(f"recipient refused: {email.to}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            why = f"not done within {config.deadline:g} s" if watchdog.expired else ""
            raise EmailUnavailable(f"SMTP server unavailable: {why or type(exc).__name__}") from exc


class _WatchedSMTP(smtplib.SMTP):
    """smtplib's client whose socket the send's deadline shuts down: watched as soon as it is
    connected, before the server's greeting is read."""

    def __init__(self, watchdog: Any, **kwargs: Any) -> None:
        self._watchdog = watchdog
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self._watchdog.watch(sock)
        return sock
