"""One authenticated connection to the hub: handshake and secure records over one socket.

See ``docs/hub-protocol.md`` §4-§5.
"""

from __future__ import annotations

import asyncio
import contextlib

from .errors import HubConnectionError, HubProtocolError
from .protocol import (
    MAX_HANDSHAKE_RECORD,
    ClientHandshake,
    JsonObject,
    RecordReader,
    SecureChannel,
)


class Connection:
    """One authenticated TCP connection; it dies with its socket."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channel: SecureChannel,
        records: RecordReader,
        pending: list[bytes],
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.channel = channel
        self.records = records
        self.pending = pending
        self.task: asyncio.Task[None] | None = None

    def send(self, message: JsonObject) -> None:
        """Seal ``message`` and write it."""
        # seal() and write() run without an await in between, so sequence numbers follow
        # the order of the bytes on the wire.
        self.writer.write(self.channel.seal(message))

    async def recv(self) -> JsonObject:
        """The next message; raises HubConnectionError (closed) or HubProtocolError."""
        while not self.pending:
            data = await self.reader.read(8192)
            if not data:
                raise HubConnectionError("hub closed the connection")
            self.pending.extend(self.records.feed(data))
        return self.channel.open(self.pending.pop(0))

    async def close(self) -> None:
        """Close the socket."""
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()


async def handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: str | bytes
) -> Connection:
    """Run the client side of the handshake (§4) on an open socket; return the connection."""
    hs = ClientHandshake(secret)
    writer.write(hs.hello())
    await writer.drain()
    records = RecordReader()
    bodies: list[bytes] = []
    while not bodies:
        data = await reader.read(1024)
        if not data:
            raise HubConnectionError("hub closed the connection during the handshake")
        bodies = records.feed(data)
    if len(bodies[0]) > MAX_HANDSHAKE_RECORD or len(bodies) > 1:
        raise HubProtocolError("unexpected server hello")
    writer.write(hs.receive_server_hello(bodies[0]))
    await writer.drain()
    assert hs.channel is not None
    return Connection(reader, writer, hs.channel, records, [])
