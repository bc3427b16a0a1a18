"""A TCP proxy on loopback that injects network and device faults between a client and a plug.

One job: stand between a client (our ``TuyaDevice``, later Home Assistant's hub client) and a
server (the simulator, later the hub) and misbehave on demand, one scenario at a time:

* ``reset()``: RST every open connection;
* ``blackhole(accepting=True)``: connections stay open but nothing is forwarded either way;
  ``accepting=False`` also stops new TCP handshakes from completing (a connect hangs);
* ``power_off()`` / ``power_on()``: close every connection and refuse new ones until power on;
* ``slow(seconds)``: delay every chunk from the server;
* ``lose(n, cmds=None, skip=0)``: drop the next ``n`` frames from the server (optionally only
  those with a command in ``cmds``, after letting ``skip`` of them through); ``lose_up(n, cmds)``
  drops frames from the client (a command that never reaches the plug);
* ``corrupt(n, cmds=None)``: flip one byte in the next ``n`` such frames (a bad CRC/HMAC/tag);
* ``ignore_cmds = {...}``: permanently drop frames with these commands (a plug that ignores
  heartbeats: ``{0x09}``); ``only_cmds = {...}``: forward only these (a push-only plug: ``{0x08}``);
* ``second_client(after)``: another client takes the plug: each of our connections is reset
  ``after`` seconds after it was opened (the plug drops the older connection, spec §4);
* ``retarget(port)``: send new connections to another server (a rebooted plug).

It is frame-aware with its own tiny parser of the 55AA and 6699 framings (spec §1.1/§1.2 in
``../shared/docs/tuya-protocol.md``): a frame is cut from the byte stream by its length field,
everything else passes through untouched. It never decrypts anything and holds no key.
With ``frames=False`` it cuts nothing and forwards bytes as they come (any other protocol, e.g.
the hub channel between Home Assistant and the hub); the frame-level faults then do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from tuya_sim import port_outside_ephemeral_range

__all__ = ["FaultProxy", "ProxyStats", "port_outside_ephemeral_range", "split_frames"]

_P55 = b"\x00\x00\x55\xaa"
_P66 = b"\x00\x00\x66\x99"


def split_frames(buf: bytearray) -> list[tuple[int | None, bytes]]:
    """Cut complete frames off the front of ``buf``: ``(cmd, bytes)``; ``cmd`` None for junk.

    55AA: ``prefix seqno cmd length ...`` with ``length`` counting the bytes after it.
    6699: ``prefix reserved(2) seqno cmd length ... suffix(4)`` with ``length`` = iv+ct+tag.
    """
    out: list[tuple[int | None, bytes]] = []
    while len(buf) >= 4:
        if buf[:4] not in (_P55, _P66):
            nxt = min((i for i in (buf.find(_P55, 1), buf.find(_P66, 1)) if i > 0), default=-1)
            cut = nxt if nxt > 0 else len(buf) - 3
            out.append((None, bytes(buf[:cut])))
            del buf[:cut]
            continue
        if buf[:4] == _P55:
            if len(buf) < 16:
                break
            _, cmd, length = struct.unpack_from(">III", buf, 4)
            total = 16 + length
        else:
            if len(buf) < 18:
                break
            _, cmd, length = struct.unpack_from(">III", buf, 6)
            total = 18 + length + 4
        if length > 0x10000:  # not a frame: pass one byte through and resynchronise
            out.append((None, bytes(buf[:1])))
            del buf[:1]
            continue
        if len(buf) < total:
            break
        out.append((cmd, bytes(buf[:total])))
        del buf[:total]
    return out


@dataclass
class ProxyStats:
    """What the proxy saw and did (for assertions and benchmarks)."""

    accepted: int = 0
    refused: int = 0
    frames_down: int = 0
    dropped: int = 0
    dropped_up: int = 0
    corrupted: int = 0
    resets: int = 0
    #: commands of the client's frames swallowed while blackholed (None: not framed)
    swallowed_up: list[int | None] = field(default_factory=list)
    #: loop time of every accepted connection
    accept_times: list[float] = field(default_factory=list)


class _Pipe:
    """One proxied connection: client <-> server."""

    def __init__(
        self,
        proxy: FaultProxy,
        c_reader: asyncio.StreamReader,
        c_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.c_reader = c_reader
        self.c_writer = c_writer
        self.s_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.opened = asyncio.get_running_loop().time()

    async def run(self) -> None:
        proxy = self.proxy
        if proxy.blackholed:  # nobody answers: swallow what the client sends
            with contextlib.suppress(OSError):
                while await self.c_reader.read(4096):
                    pass
            self.close()
            return
        try:
            s_reader, self.s_writer = await asyncio.open_connection(
                proxy.target_host, proxy.target_port
            )
        except OSError:
            self.close(reset=True)
            return
        self.tasks = [
            asyncio.create_task(self._up(self.c_reader, self.s_writer)),
            asyncio.create_task(self._down(s_reader, self.c_writer)),
        ]
        await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        self.close()

    async def _up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        with contextlib.suppress(OSError):
            while data := await reader.read(4096):
                buf += data
                if self.proxy.blackholed:
                    self.proxy.stats.swallowed_up += [c for c, _ in self.proxy.cut(buf)]
                    continue
                out = b"".join(self.proxy.filter_up(cmd, raw) for cmd, raw in self.proxy.cut(buf))
                if out:
                    writer.write(out)
                    await writer.drain()

    async def _down(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        with contextlib.suppress(OSError):
            while data := await reader.read(4096):
                if self.proxy.blackholed:
                    continue
                buf += data
                out = b"".join(
                    self.proxy.filter_frame(cmd, raw) for cmd, raw in self.proxy.cut(buf)
                )
                if not out:
                    continue
                if self.proxy.delay:
                    await asyncio.sleep(self.proxy.delay)
                writer.write(out)
                await writer.drain()

    def close(self, *, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.pipes.discard(self)
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for writer in (self.c_writer, self.s_writer):
            if writer is None:
                continue
            if reset:
                _abort(writer)
            else:
                writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Proxy ``host:port`` -> ``target_host:target_port`` with injectable faults.

    Args:
        target_port: the server's port.
        target_host: the server's address.
        host: address to listen on.
        port: port to listen on (0: a free one; see :attr:`port`).
        frames: cut Tuya frames (False: forward raw bytes; frame-level faults do nothing).

    """

    def __init__(
        self,
        target_port: int,
        target_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        frames: bool = True,
    ) -> None:
        self.frames = frames
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self._port = port
        self.pipes: set[_Pipe] = set()
        self.stats = ProxyStats()
        self.blackholed = False
        self.powered = True
        self.delay = 0.0
        self.ignore_cmds: set[int] = set()
        self.only_cmds: set[int] | None = None
        self._lose: list[_Rule] = []
        self._lose_up: list[_Rule] = []
        self._corrupt: list[_Rule] = []
        self._kick_after: float | None = None
        #: The listening socket: accepted by hand (not asyncio.Server), so that closing it is
        #: one synchronous step that no incoming connection can race (asyncio's
        #: ``Server._attach`` asserts when a connection is accepted while the server closes).
        self._lsock: socket.socket | None = None
        self._jammed: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._kicks: set[asyncio.TimerHandle] = set()

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self._port

    async def start(self) -> None:
        """Listen (again, on the same port)."""
        self._unjam()
        if self._port == 0:
            self._port = port_outside_ephemeral_range(self.host)
        if self._lsock is None:
            lsock = socket.socket()
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((self.host, self._port))
            lsock.listen(64)
            lsock.setblocking(False)
            self._lsock = lsock
            self._port = lsock.getsockname()[1]
            asyncio.get_running_loop().add_reader(lsock.fileno(), self._accept_ready, lsock)

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self._close_server()
        self._unjam()
        self.drop_all()
        for handle in self._kicks:
            handle.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------ faults
    def drop_all(self, *, reset: bool = False) -> None:
        """Close every open connection (FIN; RST with ``reset``)."""
        for pipe in list(self.pipes):
            pipe.close(reset=reset)

    def reset(self) -> None:
        """RST every open connection."""
        self.stats.resets += len(self.pipes)
        self.drop_all(reset=True)

    async def blackhole(self, *, accepting: bool = True) -> None:
        """Forward nothing; ``accepting=False``: new TCP handshakes do not complete either."""
        self.blackholed = True
        if not accepting:
            self._close_server()
            self._jam()

    async def power_off(self) -> None:
        """The plug loses power: every connection closes, new ones are refused."""
        self.powered = False
        self._close_server()
        self.drop_all(reset=True)

    async def power_on(self) -> None:
        """Power back: accept and forward again (also ends a blackhole)."""
        self.powered = True
        self.blackholed = False
        await self.start()

    def slow(self, seconds: float) -> None:
        """Delay every chunk from the server by ``seconds`` (0 restores)."""
        self.delay = seconds

    def lose(self, n: int = 1, cmds: Collection[int] | None = None, skip: int = 0) -> None:
        """Drop ``n`` frames from the server (with a command in ``cmds``) after ``skip``."""
        self._lose.append(_Rule(n, cmds, skip))

    def lose_up(self, n: int = 1, cmds: Collection[int] | None = None) -> None:
        """Drop the next ``n`` frames from the client (with a command in ``cmds``)."""
        self._lose_up.append(_Rule(n, cmds))

    def corrupt(self, n: int = 1, cmds: Collection[int] | None = None) -> None:
        """Flip a byte in the next ``n`` frames from the server (with a command in ``cmds``)."""
        self._corrupt.append(_Rule(n, cmds))

    def second_client(self, after: float | None) -> None:
        """Reset each connection ``after`` s after it opened (None: stop), as a rival client."""
        self._kick_after = after
        if after is not None:
            for pipe in list(self.pipes):
                self._schedule_kick(pipe, after)

    def retarget(self, port: int, host: str | None = None) -> None:
        """Send new connections to another server."""
        self.target_port = port
        if host is not None:
            self.target_host = host

    def clear(self) -> None:
        """End every fault (power stays as it is)."""
        self.blackholed = False
        self.delay = 0.0
        self.ignore_cmds.clear()
        self.only_cmds = None
        self._lose.clear()
        self._lose_up.clear()
        self._corrupt.clear()
        self.second_client(None)

    # ------------------------------------------------------------ internals
    def cut(self, buf: bytearray) -> list[tuple[int | None, bytes]]:
        """Frames to forward from ``buf`` (everything at once, as junk, without ``frames``)."""
        if self.frames:
            return split_frames(buf)
        out: list[tuple[int | None, bytes]] = [(None, bytes(buf))]
        buf.clear()
        return out

    def filter_up(self, cmd: int | None, raw: bytes) -> bytes:
        """What reaches the server for one frame from the client."""
        if cmd is not None and _take(self._lose_up, cmd):
            self.stats.dropped_up += 1
            return b""
        return raw

    def filter_frame(self, cmd: int | None, raw: bytes) -> bytes:
        """What reaches the client for one frame from the server."""
        if cmd is None:
            return raw
        self.stats.frames_down += 1
        if cmd in self.ignore_cmds or (self.only_cmds is not None and cmd not in self.only_cmds):
            self.stats.dropped += 1
            return b""
        if _take(self._lose, cmd):
            self.stats.dropped += 1
            return b""
        if _take(self._corrupt, cmd):
            self.stats.corrupted += 1
            flipped = bytearray(raw)
            flipped[len(raw) - 6] ^= 0xFF  # inside the CRC/HMAC/tag: integrity fails
            return bytes(flipped)
        return raw

    def _accept_ready(self, lsock: socket.socket) -> None:
        """Accept every pending connection and serve each in its own task."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = lsock.accept()
            except BlockingIOError, InterruptedError:
                return
            except OSError:  # the listener was closed meanwhile
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._serve_socket(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve_socket(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except BaseException:
            conn.close()
            raise
        await self._on_client(reader, writer)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.powered:
            self.stats.refused += 1
            _abort(writer)
            return
        self.stats.accepted += 1
        self.stats.accept_times.append(asyncio.get_running_loop().time())
        pipe = _Pipe(self, reader, writer)
        self.pipes.add(pipe)
        if self._kick_after is not None:
            self._schedule_kick(pipe, self._kick_after)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await pipe.run()
        finally:
            self._tasks.discard(task)

    def _schedule_kick(self, pipe: _Pipe, after: float) -> None:
        delay = max(0.0, pipe.opened + after - asyncio.get_running_loop().time())

        def kick() -> None:
            self._kicks.discard(handle)
            if not pipe.closed and self._kick_after is not None:
                self.stats.resets += 1
                pipe.close(reset=True)

        handle = asyncio.get_running_loop().call_later(delay, kick)
        self._kicks.add(handle)

    def _close_server(self) -> None:
        """Stop listening at once; open connections stay."""
        lsock, self._lsock = self._lsock, None
        if lsock is not None:
            asyncio.get_running_loop().remove_reader(lsock.fileno())
            lsock.close()

    def _jam(self) -> None:
        """Listen without accepting and fill the backlog: further SYNs go unanswered."""
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.host, self._port))
        lsock.listen(0)
        self._jammed.append(lsock)
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                filler.connect((self.host, self._port))
            self._jammed.append(filler)

    def _unjam(self) -> None:
        for sock in self._jammed:
            sock.close()
        self._jammed.clear()


@dataclass
class _Rule:
    """Apply to ``n`` frames with a command in ``cmds`` (None: any), after passing ``skip``."""

    n: int
    cmds: Collection[int] | None = None
    skip: int = 0


def _take(rules: list[_Rule], cmd: int) -> bool:
    """Consume one use of the first rule matching ``cmd``; True when it applies to this frame."""
    for rule in rules:
        if rule.cmds is not None and cmd not in rule.cmds:
            continue
        if rule.skip > 0:
            rule.skip -= 1
            return False
        rule.n -= 1
        if rule.n <= 0:
            rules.remove(rule)
        return True
    return False
