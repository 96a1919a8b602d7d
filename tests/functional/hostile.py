"""Scripted attackers for the adversarial functional tests: peers that do what an honest
client library never would (stop reading, never say HELLO, flood).

:class:`RawWebSocket` is a websocket client on a bare socket with a tiny receive buffer:
it reads only when told to, so a test can make a node's send buffer to it fill up, the
way a slow or malicious reader does.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from urllib.parse import urlsplit


class RawWebSocket:
    """A client websocket that never reads unless asked (RFC 6455 framing, binary only)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, url: str, *, receive_buffer: int = 4096) -> RawWebSocket:
        """Open ``url`` (``http://host:port/path``) and upgrade it; the socket's receive
        buffer is ``receive_buffer`` bytes, so the peer's sends block early."""
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"upgrade refused: {head.splitlines()[0]!r}")
        return cls(reader, writer)

    async def send(self, payload: bytes) -> None:
        """One masked binary frame (the socket's own buffer permitting)."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x82, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x82, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)
        await asyncio.wait_for(self.writer.drain(), 10)

    def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        self.writer.transport.abort()
