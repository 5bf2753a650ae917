"""A name server on loopback (UDP) that holds every query until the test lets it answer: a
slow or hanging DNS server, for as long as the test needs. Settings point odock-sync at it
with OUTBOUND_DNS_SERVERS."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

HOLD_AT_MOST = 60.0  # a test that failed before letting it answer does not hang the run


@dataclass
class HeldNameServer:
    addresses: dict[str, str]  # name -> its one IPv4 address; other names do not exist
    port: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)  # a query came in
    answer: threading.Event = field(default_factory=threading.Event)  # let them all answer
    asked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def servers(self) -> str:
        """The OUTBOUND_DNS_SERVERS value that points at it."""
        return f"127.0.0.1:{self.port}"

    def reply(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        address = self.addresses.get(name)
        if address is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", address))
        return response.to_wire()


@contextmanager
def held_name_server(addresses: dict[str, str]) -> Iterator[HeldNameServer]:
    """A name server answering `addresses` (A records) once `answer` is set."""
    server = HeldNameServer({name.lower(): ip for name, ip in addresses.items()})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    server.port = sock.getsockname()[1]

    def hold_then_answer(wire: bytes, client: tuple[str, int]) -> None:
        server.answer.wait(HOLD_AT_MOST)
        with suppress(OSError):
            sock.sendto(server.reply(wire), client)

    stopping = threading.Event()

    def serve() -> None:
        while True:
            try:
                wire, client = sock.recvfrom(4096)
            except OSError:
                return
            if stopping.is_set():
                return
            with server.lock:
                server.asked.append(dns.message.from_wire(wire).question[0].name.to_text())
            server.arrived.set()
            threading.Thread(target=hold_then_answer, args=(wire, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.answer.set()
        # close() does not wake a thread blocked in recvfrom() on Linux: a datagram does.
        stopping.set()
        with suppress(OSError):
            sock.sendto(b"", ("127.0.0.1", server.port))
        thread.join(HOLD_AT_MOST)
        sock.close()
