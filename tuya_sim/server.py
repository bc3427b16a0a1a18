"""asyncio TCP server playing one Tuya Wi-Fi plug on the local protocol (3.1-3.5).

Framing, crypto and the 3.4/3.5 session negotiation come from the simulator's own device-side
implementation (:mod:`tuya_sim.frames`, :mod:`tuya_sim.codec`, :mod:`tuya_sim.crypto`), which shares
no code with the integration; this module adds the behaviour of a real plug (``docs/design.md``
"Real plug behaviour the simulator must reproduce"; ``tuya-protocol.md`` = "spec" below):

* silent after accept until the client speaks; 3.4/3.5 ignore everything but the session
  negotiation 0x03/0x05 until a session key is agreed (spec §2.5-§2.7);
* CONTROL 0x07 / CONTROL_NEW 0x0d -> empty ACK with the request's command, then a STATUS 0x08 push
  with the reported DPs (spec §2.4, tuyapi ``_packetHandler`` "Got SET ack"); ``null`` values are
  read requests (spec §4 "Null DPS");
* DP_QUERY 0x0a / DP_QUERY_NEW 0x10 -> all DPs; "device22" firmware answers DP_QUERY with
  ``json obj data unvalid`` instead (spec §2.10);
* HEART_BEAT 0x09 -> empty 0x09 (seqno 0 below 3.3, spec §2.9);
* UPDATEDPS 0x12 -> empty 0x12, then a STATUS push with fresh values (spec §2.9, tuyapi
  ``index.js`` "Returned DP refresh response is always empty");
* seqno: replies echo the request's seqno up to 3.4; 3.5 and every negotiation RESP use the
  device's own counter (spec §2.6, §2.7 and §6 item 8); STATUS pushes carry seqno 0 up to 3.3
  (spec §2.9 "3.3 STATUS pushes observed with outer seqno 0") and the counter from 3.4;
* one TCP connection at a time, further ones reset at once (spec §4); connections idle longer
  than ``idle_timeout`` are dropped (spec §4, 30 s);
* ``t`` further than ``max_time_skew`` from real time -> no answer (design.md: ETIMEDOUT);
  a frame that does not verify/decrypt with the key -> no answer (3.1-3.3) or no answer and close
  (3.4/3.5, whose HMAC/GCM tag proves the key); valid frame but malformed JSON -> retcode 1 with
  the encrypted string ``data format error`` (spec §4, rust-tuyapi
  ``test_parse_data_format_error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

from . import frames as cmd
from .codec import (
    DATA_FORMAT_ERROR,
    DATA_UNVALID,
    VERSIONS,
    DeviceCodec,
    DeviceHandshake,
    Request,
    SimProtocolError,
    dps_of,
    dumps,
    source_header,
)
from .frames import HANDSHAKE, BadFrame, Frame, FrameSplitter
from .plug import PlugModel
from .profiles import Profile

_LOGGER = logging.getLogger(__name__)

RefuseMode = Literal["reset", "close"]

_JSON_CMDS = frozenset({cmd.CONTROL, cmd.CONTROL_NEW, cmd.DP_QUERY, cmd.UPDATEDPS})


def port_outside_ephemeral_range(host: str = "127.0.0.1", family: int = socket.AF_INET) -> int:
    """A free TCP port below the kernel's ephemeral range, handed out once per process.

    For a port listened on again later (a plug restarted by :meth:`SimulatedPlug.start` after
    :meth:`SimulatedPlug.stop`, a proxy "powered off", a hub process that starts later): a port
    inside the ephemeral range could meanwhile become any outgoing socket's source port (Linux
    even lets a socket connect to itself), and listening there again would fail with EADDRINUSE.

    Returns:
        the port, or 0 (let the kernel pick) when no free one is found.

    """
    low = 32768
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as fh,
    ):
        low = int(fh.read().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, max(10001, low))
        if port in _HANDED_OUT:
            continue
        with socket.socket(family) as probe, contextlib.suppress(OSError):
            probe.bind((host, port))
            _HANDED_OUT.add(port)
            return port
    return 0


_HANDED_OUT: set[int] = set()


@dataclass(slots=True)
class PlugStats:
    """Counters for tests and benchmarks (never contain key material)."""

    accepted: int = 0
    refused: int = 0
    idle_drops: int = 0
    bad_frames: int = 0
    bad_key: int = 0
    stale_timestamps: int = 0
    pushes: int = 0
    #: Every command decoded successfully, in arrival order.
    commands: list[int] = field(default_factory=list)


class SimulatedPlug:
    """One simulated plug listening on ``host:port``.

    Use as ``async with SimulatedPlug(device_id=..., local_key=..., version="3.3") as plug:`` or
    call :meth:`start` / :meth:`stop` (which can be repeated; a restart reuses the port).

    Args:
        device_id: the Tuya device id (``gwId``/``devId``).
        local_key: the 16-character local key.
        version: protocol version ``"3.1"`` ... ``"3.5"``.
        host: address to bind.
        port: TCP port; 0 picks a free one below the ephemeral range, kept across restarts
            (see :func:`port_outside_ephemeral_range` and :attr:`port`).
        dps: initial DPs, merged over the plug's defaults.
        load_w: power of the simulated appliance while the relay is on, watts.
        noise: relative noise of the power reading.
        seed: random seed (readings and device seqno start).
        idle_timeout: seconds without a frame after which the plug closes the connection.
        max_connections: simultaneous TCP connections accepted; more are refused.
        refuse_mode: ``"reset"`` (RST) or ``"close"`` (FIN) for refused connections.
        reject_stale_timestamp: ignore requests whose ``t`` is off by more than ``max_time_skew``.
        max_time_skew: tolerated ``|t - now|`` in seconds.
        power_needs_updatedps: DPs 18/19/20 are refreshed only by UPDATEDPS 0x12 (queries return the
            cached values; switching on does not report power).
        push_interval: seconds between spontaneous meter updates pushed as STATUS (None: never).
            Ignored when ``power_needs_updatedps``.
        device22: 3.3 "device22" firmware: DP_QUERY answers ``json obj data unvalid``.
        close_on_bad_key: close the connection after a frame that fails to verify/decrypt;
            default: True for 3.4/3.5, False below.
        energy_speedup: energy (DP 17) accrues this many times faster than real time.
        source_header: 3.2-3.5 STATUS pushes carry a real device's source header
            (``"3.x"|0|seq|1``) instead of ``"3.x"`` + 12 zero bytes.
        status_delay: seconds between the ACK of a CONTROL/UPDATEDPS and its STATUS push (real
            plugs need a few ms; 0 sends both at once).
        profile: DP layout (:mod:`tuya_sim.profiles`): a name such as ``"standard"`` (default),
            ``"strip4"``, ``"legacy"``, ``"inwall"``, ``"vendor"``, ``"power-x1"``,
            ``"swapped"``, ``"relay-digits"``, ``"aubess"``, or a
            :class:`~tuya_sim.profiles.Profile`.
        record: keep a message-level :attr:`transcript` of every connection (for recorded
            conversations replayed by ``tests/replay.py``). Never contains key material: nonces
            and proofs of the handshake are left out, except the device nonce.

    """

    def __init__(
        self,
        *,
        device_id: str,
        local_key: str | bytes,
        version: str = "3.3",
        host: str = "127.0.0.1",
        port: int = 0,
        dps: Mapping[str, Any] | None = None,
        load_w: float = 100.0,
        noise: float = 0.03,
        seed: int | None = None,
        idle_timeout: float = 30.0,
        max_connections: int = 1,
        refuse_mode: RefuseMode = "reset",
        reject_stale_timestamp: bool = True,
        max_time_skew: float = 3600.0,
        power_needs_updatedps: bool = False,
        push_interval: float | None = None,
        device22: bool = False,
        close_on_bad_key: bool | None = None,
        energy_speedup: float = 1.0,
        source_header: bool = True,
        status_delay: float = 0.0,
        record: bool = False,
        profile: str | Profile | None = None,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unsupported protocol version {version!r}")
        key = local_key.encode("latin1") if isinstance(local_key, str) else bytes(local_key)
        if len(key) != 16:
            raise ValueError("local key must be 16 bytes")
        self.device_id = device_id
        self.version = version
        self._key = key
        self.host = host
        self._port = port
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.refuse_mode: RefuseMode = refuse_mode
        self.reject_stale_timestamp = reject_stale_timestamp
        self.max_time_skew = max_time_skew
        self.power_needs_updatedps = power_needs_updatedps
        self.push_interval = push_interval
        self.device22 = device22
        self.source_header = source_header
        self.status_delay = status_delay
        self.record = record
        #: With ``record``: one dict per message, in wire order (see :meth:`_note`).
        self.transcript: list[dict[str, Any]] = []
        self._delayed: set[asyncio.TimerHandle] = set()
        self._source_seq = 0
        self.close_on_bad_key = (
            float(version) >= 3.4 if close_on_bad_key is None else close_on_bad_key
        )
        self.model = PlugModel(
            load_w=load_w,
            noise=noise,
            seed=seed,
            dps=dps,
            energy_speedup=energy_speedup,
            profile=profile,
        )
        self.profile = self.model.profile
        self.stats = PlugStats()
        self._seq = random.Random(seed).randrange(1, 0x8000)
        self._listener: socket.socket | None = None
        #: accepted sockets whose transport does not exist yet (closed if their task never runs)
        self._unattached: set[socket.socket] = set()
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._countdowns: dict[str, asyncio.TimerHandle] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._conn_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # ------------------------------------------------------------------ public API
    @property
    def port(self) -> int:
        """The TCP port (the real one once started with ``port=0``)."""
        return self._port

    @property
    def dps(self) -> dict[str, Any]:
        """A copy of the DPs as the plug currently reports them."""
        return dict(self.model.dps)

    @property
    def connections(self) -> int:
        """Number of open client connections."""
        return len(self._conns)

    @property
    def running(self) -> bool:
        """True while the server is listening."""
        return self._listener is not None

    def info(self) -> dict[str, Any]:
        """Connection details for a client (includes the local key: print, never log)."""
        return {
            "host": self.host,
            "port": self.port,
            "device_id": self.device_id,
            "local_key": self._key.decode("latin1"),
            "version": self.version,
        }

    async def start(self) -> None:
        """Start listening (again, on the same port after a :meth:`stop`).

        Raises:
            OSError: the address cannot be bound (port in use, ...).

        """
        if self._listener is not None:
            return
        loop = asyncio.get_running_loop()
        info = await loop.getaddrinfo(self.host or "0.0.0.0", self._port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = info[0]
        if self._port == 0:
            port = port_outside_ephemeral_range(str(address[0]), family)
            address = (address[0], port, *address[2:])
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(16)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._listener = sock
        self._port = sock.getsockname()[1]
        # Accepting in a synchronous reader callback (not asyncio.Server): every accepted socket is
        # handed to a tracked task before control returns to the loop, and stop() removes the
        # reader and closes the socket in one step, so no accept can slip in while stopping.
        loop.add_reader(sock.fileno(), self._accept_ready, sock)
        if self.push_interval and not self.power_needs_updatedps:
            self._ticker = asyncio.create_task(self._tick(self.push_interval))
        _LOGGER.info(
            "plug %s (v%s) listening on %s:%d", self.device_id, self.version, self.host, self._port
        )

    async def stop(self) -> None:
        """Stop listening and drop every connection (the plug is unplugged).

        Order (no await before step 3, so nothing can be accepted meanwhile): 1. stop accepting and
        close the listening socket; 2. close every connection (FIN) and cancel the timers; 3. cancel
        the connection handlers and wait for them; 4. abort what is still open and wait until the
        transports are gone. Accepted sockets whose handler never started are closed.
        """
        sock, self._listener = self._listener, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        writers = [conn.writer for conn in self._conns]
        self.kick()
        for handle in self._countdowns.values():
            handle.cancel()
        self._countdowns.clear()
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()
        tasks = list(self._tasks)
        if self._ticker is not None:
            tasks.append(self._ticker)
            self._ticker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn_sock in list(self._unattached):
            conn_sock.close()
        self._unattached.clear()
        for writer in writers:
            writer.transport.abort()  # drops unsent data of a peer that does not read
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def kick(self, *, reset: bool = False) -> None:
        """Close every current connection (FIN; RST with ``reset``), as after a Wi-Fi drop."""
        for conn in list(self._conns):
            conn.close(reset=reset)

    def set_dps_local(self, dps: Mapping[str, Any]) -> dict[str, Any]:
        """Change DPs on the device itself (button press, meter reading) and push STATUS.

        Unlike a CONTROL request any DP may be written, including measured ones (17 also resets
        the energy counter; 18-20 hold until the next measurement; to change the power drawn set
        ``plug.model.load_w``). Returns the DPs pushed. Must be called from the plug's event loop
        thread.
        """
        changed: dict[str, Any] = {}
        writes: dict[str, Any] = {}
        for key, value in dps.items():
            dp = str(key)
            if dp in self.model.writable:
                writes[dp] = value
            elif dp == self.profile.energy and isinstance(value, int | float):
                self.model.set_energy(value)
                changed[dp] = self.model.dps[dp]
            else:
                self.model.dps[dp] = value
                changed[dp] = value
        if writes:
            changed.update(self.model.apply(writes, report_power=not self.power_needs_updatedps))
        self.report(changed)
        return changed

    async def wait_connections(self, count: int) -> None:
        """Wait until exactly ``count`` connections are open (wrap in ``asyncio.timeout``)."""
        if len(self._conns) == count:
            return
        waiter = (count, asyncio.get_running_loop().create_future())
        self._conn_waiters.append(waiter)
        try:
            await waiter[1]
        finally:
            self._conn_waiters.remove(waiter)

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

    # ------------------------------------------------------------------ internals
    def next_seqno(self) -> int:
        """The device's own frame counter (3.5 replies, 3.4/3.5 negotiation and pushes)."""
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def next_source_seq(self) -> int:
        """Sequence number of the source header of STATUS pushes."""
        self._source_seq = (self._source_seq + 1) & 0xFFFFFFFF
        return self._source_seq

    def key_bytes(self) -> bytes:
        """The local key as bytes (for the codec; never log it)."""
        return self._key

    def push(self, dps: Mapping[str, Any]) -> None:
        """Send a STATUS push with ``dps`` to every connection that has a session."""
        if not dps:
            return
        for conn in list(self._conns):
            conn.push(dps)

    def report_after_ack(self, changed: Mapping[str, Any]) -> None:
        """:meth:`report` now, or ``status_delay`` seconds later."""
        if self.status_delay <= 0:
            self.report(changed)
            return

        def fire() -> None:
            self._delayed.discard(handle)
            self.report(changed)

        handle = asyncio.get_running_loop().call_later(self.status_delay, fire)
        self._delayed.add(handle)

    def report(self, changed: Mapping[str, Any]) -> None:
        """Schedule the countdowns that were set, then push the change."""
        loop = asyncio.get_running_loop()
        for countdown in self.profile.countdowns.values():
            if countdown not in changed:
                continue
            handle = self._countdowns.pop(countdown, None)
            if handle is not None:
                handle.cancel()
            steps = self.model.dps.get(countdown, 0)
            if steps:
                self._countdowns[countdown] = loop.call_later(
                    steps * self.profile.countdown_unit, self._countdown_fired, countdown
                )
        self.push(changed)

    def _countdown_fired(self, countdown: str) -> None:
        self._countdowns.pop(countdown, None)
        report_power = not self.power_needs_updatedps
        self.push(self.model.countdown_expired(countdown, report_power=report_power))

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self._conns:
                self.push(self.model.drift())

    def _note(self, entry: dict[str, Any]) -> None:
        """Append a transcript entry when recording.

        Entries: ``{"event": "connect"|"close"}``; ``{"from": "client", "cmd", "seqno", "json"}``
        (``json`` absent for handshake frames and non-JSON payloads, ``payload`` then holds text
        that is not secret); ``{"from": "device", "cmd", "seqno", "retcode", "payload"}`` with
        ``"header": "source"`` and ``source_seq`` for STATUS frames carrying a source header and
        ``device_nonce`` (ASCII) for SESS_KEY_NEG_RESP.
        """
        if self.record:
            self.transcript.append(entry)

    def _conn_event(self) -> None:
        """Wake :meth:`wait_connections` callers (synchronously: no task outlives stop())."""
        count = len(self._conns)
        for wanted, future in self._conn_waiters:
            if wanted == count and not future.done():
                future.set_result(None)

    def _accept_ready(self, listener: socket.socket) -> None:
        """Reader callback of the listening socket: accept and hand over at once."""
        try:
            conn, _ = listener.accept()
        except BlockingIOError, InterruptedError:
            return
        except OSError as err:  # ECONNABORTED, EMFILE, ...: the next connection may work
            _LOGGER.debug("plug %s: accept failed: %s", self.device_id, err)
            return
        conn.setblocking(False)
        # like real plugs (and asyncio's own servers), answer without Nagle delays: an ACK and
        # its STATUS are back-to-back writes
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._unattached.add(conn)
        task = asyncio.get_running_loop().create_task(self._serve_socket(conn))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._handler_done, conn))

    def _handler_done(self, conn: socket.socket, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            _LOGGER.error("plug %s: connection handler failed: %r", self.device_id, err)
        if conn in self._unattached:  # cancelled before its transport existed
            self._unattached.discard(conn)
            conn.close()

    async def _serve_socket(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock=conn)
        self._unattached.discard(conn)  # the transport owns it now
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._on_client(reader, writer)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= self.max_connections or self._listener is None:
            self.stats.refused += 1
            _LOGGER.info(
                "plug %s: refusing connection from %s (busy)",
                self.device_id,
                writer.get_extra_info("peername"),
            )
            _close_writer(writer, reset=self.refuse_mode == "reset")
            return
        conn = _Connection(self, reader, writer)
        self._conns.add(conn)
        self.stats.accepted += 1
        self._note({"event": "connect"})
        self._conn_event()
        try:
            await conn.serve()
        finally:
            self._conns.discard(conn)
            conn.close()
            self._note({"event": "close"})
            self._conn_event()


def _client_entry(msg: Request) -> dict[str, Any]:
    entry: dict[str, Any] = {"from": "client", "cmd": msg.cmd, "seqno": msg.seqno}
    if msg.cmd in HANDSHAKE:
        return entry  # nonce and proof: random per connection, and not to be stored
    try:
        entry["json"] = json.loads(msg.payload)
    except ValueError:
        entry["payload"] = msg.payload.decode("utf-8", "replace")
    return entry


def _close_writer(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()


def _timestamp(obj: Mapping[str, Any]) -> float | None:
    """The request's ``t`` as a number, or None when absent or not numeric."""
    raw = obj.get("t")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            return float(raw)
    return None


def _has_dps(obj: Mapping[str, Any]) -> bool:
    data = obj.get("data")
    return isinstance(obj.get("dps"), dict) or (
        isinstance(data, dict) and isinstance(data.get("dps"), dict)
    )


class _Connection:
    """One client connection: reads frames, answers them, receives pushes."""

    def __init__(
        self, plug: SimulatedPlug, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.plug = plug
        self.reader = reader
        self.writer = writer
        self.codec = DeviceCodec(plug.version, plug.key_bytes())
        self.parser = FrameSplitter()
        self.vnum = float(plug.version)
        self.negotiation: DeviceHandshake | None = None
        #: 3.4/3.5: True once the session key is agreed; always True below.
        self.ready = not self.codec.needs_handshake
        self.closed = False

    # ------------------------------------------------------------------ I/O
    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plug.idle_timeout
        while not self.closed:
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self.reader.read(4096)
            except TimeoutError:
                self.plug.stats.idle_drops += 1
                _LOGGER.info("plug %s: closing idle connection", self.plug.device_id)
                return
            except OSError:
                return
            if not data:
                return
            for item in self.parser.feed(data):
                if isinstance(item, BadFrame):
                    self.plug.stats.bad_frames += 1
                    continue
                deadline = loop.time() + self.plug.idle_timeout
                if not self.handle(item):
                    return

    def close(self, *, reset: bool = False) -> None:
        if not self.closed:
            self.closed = True
            _close_writer(self.writer, reset=reset)

    def send(self, seqno: int, command: int, payload: bytes = b"", retcode: int = 0) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(self.codec.encode(seqno, command, payload, retcode=retcode))
        entry: dict[str, Any] = {"from": "device", "cmd": command, "seqno": seqno}
        entry["retcode"] = retcode
        if command == cmd.SESS_KEY_NEG_RESP:
            entry["device_nonce"] = payload[:16].decode("latin1")
        else:
            entry["payload"] = payload.decode("utf-8", "replace")
        self.plug._note(entry)

    def reply_seqno(self, request: int) -> int:
        """Seqno of a reply: the request's up to 3.4, the device counter for 3.5."""
        return self.plug.next_seqno() if self.vnum >= 3.5 else request

    def push(self, dps: Mapping[str, Any]) -> None:
        """STATUS 0x08 with ``dps`` (spec §2.9 payload shapes)."""
        if not self.ready:
            return
        now = int(time.time())
        if self.vnum >= 3.4:
            body: dict[str, Any] = {"protocol": 4, "t": now, "data": {"dps": dict(dps)}}
            seqno = self.plug.next_seqno()
        else:
            body = {"devId": self.plug.device_id, "dps": dict(dps), "t": now}
            seqno = 0
        self.plug.stats.pushes += 1
        payload = dumps(body)
        if self.plug.source_header and self.vnum >= 3.2:
            # real firmware fills the header slot with "3.x"|crc=0|seq|source_id=1 (spec §2.1;
            # real 3.3 captures in vectors/real_captures_no_key_weather-or-not.json)
            head = source_header(self.plug.version, self.plug.next_source_seq())
            if not (self.closed or self.writer.is_closing()):
                self.writer.write(self.codec.encode(seqno, cmd.STATUS, payload, header=head))
                self.plug._note(
                    {
                        "from": "device",
                        "cmd": cmd.STATUS,
                        "seqno": seqno,
                        "retcode": 0,
                        "payload": payload.decode(),
                        "header": "source",
                        "source_seq": int.from_bytes(head[7:11], "big"),
                    }
                )
        else:
            self.send(seqno, cmd.STATUS, payload)

    # ------------------------------------------------------------------ frames
    def handle(self, frame: Frame) -> bool:
        """Answer one frame; False closes the connection."""
        if not self.ready and frame.cmd not in HANDSHAKE:
            return True  # 3.4/3.5 before the handshake: silence
        try:
            msg = self.codec.decode(frame)  # 3.1 CONTROL must be signed (spec §2.2)
        except SimProtocolError:
            self.plug.stats.bad_key += 1
            _LOGGER.debug(
                "plug %s: frame cmd 0x%02x does not verify", self.plug.device_id, frame.cmd
            )
            return not self.plug.close_on_bad_key
        self.plug.stats.commands.append(msg.cmd)
        self.plug._note(_client_entry(msg))
        if msg.cmd in HANDSHAKE:
            return self.negotiate(msg)
        if msg.cmd == cmd.HEART_BEAT:
            self.send(0 if self.vnum < 3.3 else self.reply_seqno(msg.seqno), cmd.HEART_BEAT)
            return True
        if msg.cmd not in _JSON_CMDS and msg.cmd != cmd.DP_QUERY_NEW:
            return True  # unknown to a plug: ignored
        obj = self.parse_json(msg)
        if obj is None:
            self.send(self.reply_seqno(msg.seqno), msg.cmd, DATA_FORMAT_ERROR, retcode=1)
            return True
        if self.stale(obj):
            self.plug.stats.stale_timestamps += 1
            return True
        if msg.cmd in (cmd.DP_QUERY, cmd.DP_QUERY_NEW):
            self.query(msg)
        elif msg.cmd in (cmd.CONTROL, cmd.CONTROL_NEW):
            self.control(msg, obj)
        else:
            self.updatedps(msg, obj)
        return True

    def parse_json(self, msg: Request) -> dict[str, Any] | None:
        if not msg.payload and msg.cmd in (cmd.DP_QUERY_NEW, cmd.UPDATEDPS):
            return {}
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None

    def stale(self, obj: Mapping[str, Any]) -> bool:
        if not self.plug.reject_stale_timestamp:
            return False
        t = _timestamp(obj)
        return t is not None and abs(t - time.time()) > self.plug.max_time_skew

    def negotiate(self, msg: Request) -> bool:
        """3.4/3.5 session key exchange (spec §2.7); ignored below 3.4."""
        if not self.codec.needs_handshake:
            return True
        try:
            if msg.cmd == cmd.SESS_KEY_NEG_START:
                self.negotiation = DeviceHandshake(self.plug.version, self.plug.key_bytes())
                answer = self.negotiation.handle_start(msg.payload)
                self.send(self.plug.next_seqno(), cmd.SESS_KEY_NEG_RESP, answer)
            elif msg.cmd == cmd.SESS_KEY_NEG_FINISH:
                if self.negotiation is None:
                    return True
                self.codec.session_key = self.negotiation.handle_finish(msg.payload)
                self.negotiation = None
                self.ready = True
        except SimProtocolError:  # SimKeyError (client lacks the key) or a malformed nonce
            self.plug.stats.bad_key += 1
            return False
        return True

    def query(self, msg: Request) -> None:
        plug = self.plug
        seqno = self.reply_seqno(msg.seqno)
        if plug.device22 and msg.cmd == cmd.DP_QUERY:
            self.send(seqno, msg.cmd, DATA_UNVALID, retcode=1)
            return
        if not plug.power_needs_updatedps:
            plug.model.refresh()
        else:
            plug.model.advance()
        dps = plug.model.dps
        if self.vnum >= 3.4:
            body: dict[str, Any] = {"dps": dict(dps), "t": int(time.time())}
        else:
            body = {"devId": plug.device_id, "dps": dict(dps)}
        self.send(seqno, msg.cmd, dumps(body))

    def control(self, msg: Request, obj: Mapping[str, Any]) -> None:
        plug = self.plug
        if not _has_dps(obj):
            self.send(self.reply_seqno(msg.seqno), msg.cmd, DATA_FORMAT_ERROR, retcode=1)
            return
        self.send(self.reply_seqno(msg.seqno), msg.cmd)  # empty ACK
        requested = dps_of(obj)
        if all(v is None for v in requested.values()) and not plug.power_needs_updatedps:
            plug.model.refresh()
        reported = plug.model.apply(requested, report_power=not plug.power_needs_updatedps)
        plug.report_after_ack(reported)

    def updatedps(self, msg: Request, obj: Mapping[str, Any]) -> None:
        self.send(self.reply_seqno(msg.seqno), msg.cmd)  # always empty (tuyapi index.js:826)
        ids = obj.get("dpId")
        if not isinstance(ids, list) or not ids:
            ids = list(self.plug.profile.meter_dps)
        self.plug.report_after_ack(self.plug.model.refresh(ids))
