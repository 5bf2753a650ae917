"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Awaitable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


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


class LoopbackController(Controller):
    """aiosmtpd's controller on a loopback port of its own: it binds port 0 and reads back the
    port it got (before `start` connects to it), so no other process can take it first."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        creating = super()._create_server()

        async def bound() -> asyncio.AbstractServer:
            server = await creating
            self.port = server.sockets[0].getsockname()[1]
            return server

        return bound()


def start_smtp_server() -> tuple[Controller, Mailbox]:
    mailbox = Mailbox()
    controller = LoopbackController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    return controller, mailbox
