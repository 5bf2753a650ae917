"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.net import free_port


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    failures_left: int = 0

    def fail_next(self, count: int) -> None:
        """Answer the next `count` messages with a temporary failure (451)."""
        self.failures_left = count

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        if self.failures_left > 0:
            self.failures_left -= 1
            return "451 4.3.0 temporary failure, try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def clear(self) -> None:
        self.messages.clear()
        self.failures_left = 0


def start_smtp_server() -> tuple[Controller, Mailbox]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller, mailbox
