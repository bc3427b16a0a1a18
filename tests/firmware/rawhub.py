"""A bare hub-channel client for firmware tests: the sans-I/O handshake and records of
``custom_components.tuya_local_esp.hub.protocol`` over one asyncio stream, sending any
request (including ones the HA client has no method for) and keeping every push."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from custom_components.tuya_local_esp.hub.protocol import (
    ClientHandshake,
    RecordReader,
    SecureChannel,
)

from .conftest import SECRET

type Msg = dict[str, Any]


class RawHub:
    """One authenticated connection. ``pushes`` holds every non-result message received."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.records = RecordReader()
        self.channel: SecureChannel | None = None
        self.pushes: list[Msg] = []
        self.hello: Msg = {}
        self._queue: list[bytes] = []
        self._rid = 0

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        source: str | None = None,
        rcvbuf: int | None = None,
        secret: str = SECRET,
    ) -> RawHub:
        """Connect (from ``source`` if given, with a small receive buffer if ``rcvbuf``),
        authenticate and read the inventory up to ``hello``."""
        sock = socket.socket()
        sock.setblocking(False)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        hub = cls(reader, writer)
        hs = ClientHandshake(secret)
        writer.write(hs.hello())
        try:
            writer.write(hs.receive_server_hello(await hub._body()))
        except BaseException:
            await hub.close()
            raise
        hub.channel = hs.channel
        while True:
            msg = await hub.recv()
            if msg["t"] == "hello":
                hub.hello = msg
                return hub
            hub.pushes.append(msg)

    async def _body(self, within: float = 10) -> bytes:
        async with asyncio.timeout(within):
            while not self._queue:
                data = await self.reader.read(8192)
                if not data:
                    raise ConnectionError("hub closed the connection")
                self._queue.extend(self.records.feed(data))
        return self._queue.pop(0)

    async def recv(self, within: float = 10) -> Msg:
        assert self.channel is not None
        return self.channel.open(await self._body(within))

    def send(self, msg: Msg) -> None:
        assert self.channel is not None
        self.writer.write(self.channel.seal(msg))

    async def request(self, kind: str, within: float = 15, **fields: Any) -> Msg:
        """Send one request; return its ``result`` (pushes received meanwhile are kept)."""
        self._rid += 1
        rid = self._rid
        self.send({"t": kind, "rid": rid, **fields})
        async with asyncio.timeout(within):
            while True:
                msg = await self.recv(within)
                if msg.get("t") == "result" and msg.get("rid") == rid:
                    return msg
                self.pushes.append(msg)

    async def wait_push(self, pred: Callable[[Msg], bool], within: float = 10) -> Msg:
        """Return the first push (kept or arriving within ``within`` s) matching ``pred``."""
        async with asyncio.timeout(within):
            while True:
                for msg in self.pushes:
                    if pred(msg):
                        return msg
                self.pushes.append(await self.recv(within))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def raw_header(length: int) -> bytes:
    """A record header announcing ``length`` body bytes (§3)."""
    return struct.pack(">H", length)


async def closed_by_peer(reader: asyncio.StreamReader, within: float = 10) -> bool:
    """Read until the hub closes the connection (True) or ``within`` s pass (TimeoutError)."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except ConnectionResetError:
        pass
    return True
