"""Sending email over SMTP (plain text with an HTML alternative)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid


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
    timeout: float = 10.0


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
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.username:
                smtp.login(config.username, config.password)
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise EmailRejected(f"recipient refused: {email.to}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise EmailUnavailable(f"SMTP server unavailable: {type(exc).__name__}") from exc
