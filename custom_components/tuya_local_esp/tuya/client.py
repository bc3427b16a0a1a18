"""Asyncio client for one Tuya device over one persistent TCP connection.

Transport layer of the library (see ``docs/architecture.md``): it owns the socket, negotiates the
3.4/3.5 session key, matches answers to requests, delivers STATUS pushes to subscribers, keeps the
connection alive with heartbeats, refreshes power DPs with UPDATEDPS, and reconnects with an
exponential backoff after the connection is lost. Exactly one command is in flight at a time and
every wait is bounded by a timeout.

Protocol facts used here (spec = ``../shared/docs/tuya-protocol.md``):

* a CONTROL is answered by an empty ACK, then a STATUS (0x08) push with the changed DPs (§2.4);
* 3.5 devices answer with their own sequence numbers instead of echoing ours (§2.6), 3.1 devices
  answer heartbeats with sequence number 0 (§2.9): answers are matched by sequence number when the
  device echoes it and by command otherwise;
* devices drop connections idle for ~30 s (§4), so a heartbeat goes out every 10 s;
* a wrong local key gets no answer at all or an undecryptable one (§4), so the first status query
  of every connection doubles as the key check;
* "json obj data unvalid" means the device wants the device22 query (§2.10).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

from .const import DEFAULT_PORT, ERROR_DATA_UNVALID, VERSIONS, Command
from .errors import (
    TuyaBusyError,
    TuyaConnectionError,
    TuyaDeviceError,
    TuyaError,
    TuyaFrameError,
    TuyaKeyError,
    TuyaProtocolError,
    TuyaTimeoutError,
)
from .frame import FrameParser, RawFrame
from .message import Message, MessageCodec
from .payload import (
    control_request,
    device22_status_request,
    extract_dps,
    heartbeat_request,
    status_request,
    updatedps_request,
)
from .session import ClientNegotiation

_LOGGER = logging.getLogger(__name__)

DpsCallback = Callable[[dict[str, Any]], None]
ConnectionCallback = Callable[[bool], None]
FailureCallback = Callable[[TuyaError], None]

#: DPs probed with the device22 query when nothing is known yet (spec §5 plug DPS).
_DEVICE22_DEFAULT_DPS = ("1", "9", "17", "18", "19", "20", "21", "22", "23", "24", "25", "26")
_READ_SIZE = 4096

#: ``version`` value that makes the client find the protocol version itself.
AUTO_VERSION = "auto"
#: Order in which ``auto`` tries versions after the hint: the most common first.
PROBE_ORDER = ("3.3", "3.4", "3.5", "3.1", "3.2")
#: Seconds a version probe waits for each answer (plugs answer in well under a second).
PROBE_TIMEOUT = 2.0
#: Seconds between two probes, so the plug has closed the previous connection.
PROBE_PAUSE = 0.2


class TuyaDevice:
    """One Tuya device reached over the local protocol.

    Args:
        host: IP address or host name of the device.
        device_id: the device id (``gwId``/``devId``), usually 20-22 characters.
        local_key: the 16-character local key.
        version: protocol version ``"3.1"`` ... ``"3.5"``, or ``"auto"``: every connection then
            tries ``version_hint`` (or 3.3) first and the other versions after it, so a plug whose
            firmware update changed its version keeps working; :attr:`version` tells the one
            found.
        version_hint: with ``"auto"``, the version to try first (e.g. from discovery).
        port: TCP port (6668).
        timeout: seconds allowed for every single wait (connect, each answer).
        heartbeat_interval: seconds between heartbeats while connected.
        refresh_interval: seconds between UPDATEDPS requests for ``refresh_dps``; 0 disables.
        refresh_dps: DP ids re-requested with UPDATEDPS (power DPs 18/19/20 by default).
        auto_reconnect: reconnect in the background after the connection is lost.

    Use as ``async with TuyaDevice(...) as dev:`` or call :meth:`connect` and :meth:`close`.

    Raises:
        ValueError: the local key is not 16 characters or the version is unknown.

    """

    def __init__(
        self,
        host: str,
        device_id: str,
        local_key: str,
        *,
        version: str = "3.3",
        version_hint: str | None = None,
        port: int = DEFAULT_PORT,
        timeout: float = 5.0,
        heartbeat_interval: float = 10.0,
        refresh_interval: float = 0.0,
        refresh_dps: Iterable[int] = (18, 19, 20),
        auto_reconnect: bool = True,
        reconnect_min: float = 1.0,
        reconnect_max: float = 60.0,
    ) -> None:
        """Create the client; nothing is opened until :meth:`connect`."""
        key = local_key.encode("latin-1")
        self.auto_version = version == AUTO_VERSION
        if self.auto_version:
            version = version_hint if version_hint in VERSIONS else PROBE_ORDER[0]
        MessageCodec(version, key)  # validates version and key length
        self.host = host
        self.port = port
        self.device_id = device_id
        self.version = version
        self._key = key
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.refresh_interval = refresh_interval
        self.refresh_dps = tuple(refresh_dps)
        self.auto_reconnect = auto_reconnect
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        #: Last known value of every DP seen, keyed by DP id string.
        self.dps: dict[str, Any] = {}
        self._device22 = False
        self._codec = MessageCodec(version, key)
        self._parser = FrameParser()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._seqno = 0
        self._lock = asyncio.Lock()
        #: The request in flight: (answer commands, sequence number, future, STATUS any seqno)
        self._pending: tuple[frozenset[int], int, asyncio.Future[Message], bool] | None = None
        #: One queue per set_dps() in progress, fed with every push (or the connection's end).
        self._push_queues: set[asyncio.Queue[dict[str, Any] | TuyaError]] = set()
        self._dps_callbacks: list[DpsCallback] = []
        self._conn_callbacks: list[ConnectionCallback] = []
        self._failure_callbacks: list[FailureCallback] = []
        self._reader_task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._wake = asyncio.Event()
        self._closing = False
        self._tcp_opened = False
        self._probe_timeout: float | None = None
        #: Frames dropped because they failed integrity checks (diagnostics).
        self.bad_frames = 0
        #: Number of successful (re)connections.
        self.connect_count = 0
        #: Why the last background (re)connection failed; None after a success.
        self.last_error: TuyaError | None = None
        #: Background connections in a row that failed with :class:`TuyaKeyError`.
        self.key_failures = 0

    # ------------------------------------------------------------ public API
    @property
    def connected(self) -> bool:
        """True while the TCP connection is open and the key was accepted."""
        return self._connected.is_set()

    async def __aenter__(self) -> Self:
        """Connect; see :meth:`connect`."""
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close; see :meth:`close`."""
        await self.close()

    async def connect(self) -> None:
        """Open the connection, negotiate the session (3.4/3.5) and read the DPS once.

        With ``auto_reconnect`` a background task then keeps the connection up.

        Raises:
            TuyaConnectionError: the device cannot be reached.
            TuyaKeyError: the device did not accept the local key (or the protocol version).
            TuyaTimeoutError: the device did not answer in time.
            TuyaProtocolError: the device answered with something we cannot understand.

        """
        self._closing = False
        await self._open()
        if self.auto_reconnect and self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="tuya-supervisor")

    async def start(self) -> None:
        """Keep the device connected in the background without waiting for the first connection.

        Unlike :meth:`connect` this never raises: failures are retried with backoff and
        reported through :meth:`subscribe_connection`.
        """
        self._closing = False
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="tuya-supervisor")

    async def close(self) -> None:
        """Close the connection and stop every background task. Safe to call twice."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop(TuyaConnectionError("client closed"))

    def set_host(self, host: str) -> None:
        """Point the client at a new address (the plug moved); reconnects there at once.

        A live connection to the old address is kept until it fails.
        """
        if host == self.host:
            return
        _LOGGER.info("%s moved to %s", self.device_id, host)
        self.host = host
        self._wake.set()

    def wake(self) -> None:
        """The device was heard on the LAN (its UDP broadcast): retry now if waiting."""
        self._wake.set()

    @property
    def busy(self) -> bool:
        """True while the last attempt found another client holding the device's connection."""
        return isinstance(self.last_error, TuyaBusyError)

    def subscribe_failure(self, callback: FailureCallback) -> Callable[[], None]:
        """Call ``callback(error)`` after every failed background (re)connection attempt.

        ``error`` is classified: :class:`TuyaKeyError` only when the device refused the local
        key, :class:`TuyaBusyError` when another client holds the device, otherwise a
        connection or timeout error.

        Returns:
            A function that removes the subscription (safe to call twice).

        """
        self._failure_callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._failure_callbacks:
                self._failure_callbacks.remove(callback)

        return unsubscribe

    async def wait_connected(self, within: float | None = None) -> None:
        """Wait until the connection is up.

        Raises:
            TuyaTimeoutError: it did not come up within ``within`` seconds.

        """
        try:
            async with asyncio.timeout(within):
                await self._connected.wait()
        except TimeoutError:
            raise TuyaTimeoutError("device did not connect in time") from None

    def subscribe(self, callback: DpsCallback) -> Callable[[], None]:
        """Call ``callback(dps)`` with the changed DPs of every STATUS push and answer.

        Returns:
            A function that removes the subscription.

        """
        self._dps_callbacks.append(callback)
        return lambda: self._dps_callbacks.remove(callback)

    def subscribe_connection(self, callback: ConnectionCallback) -> Callable[[], None]:
        """Call ``callback(connected)`` whenever the connection comes up or goes down.

        Returns:
            A function that removes the subscription.

        """
        self._conn_callbacks.append(callback)
        return lambda: self._conn_callbacks.remove(callback)

    async def status(self) -> dict[str, Any]:
        """Query every DP.

        Returns:
            DP id string -> value, e.g. ``{"1": True, "19": 1234}``.

        Raises:
            TuyaConnectionError, TuyaTimeoutError, TuyaDeviceError: see :meth:`connect`.

        """
        self._require_connection()
        return await self._query_status()

    async def set_dps(self, dps: Mapping[str, Any] | Mapping[int, Any]) -> dict[str, Any]:
        """Set DPs and wait for the device to confirm them.

        Args:
            dps: DP id -> new value, e.g. ``{"1": True}``.

        Returns:
            The DPS the device reported after the change (at least the keys of ``dps`` when the
            device confirmed them).

        Raises:
            TuyaConnectionError, TuyaTimeoutError, TuyaDeviceError: see :meth:`connect`.

        """
        self._require_connection()
        wanted = {str(k): v for k, v in dps.items()}
        cmd, payload = control_request(self.version, self.device_id, wanted)
        pushes: asyncio.Queue[dict[str, Any] | TuyaError] = asyncio.Queue()
        self._push_queues.add(pushes)
        try:
            ack = await self._request(cmd, payload, frozenset({cmd}))
            confirmed = extract_dps(ack.json()) if ack.payload[:1] == b"{" else {}
            try:
                async with asyncio.timeout(self.timeout):
                    while not wanted.keys() <= confirmed.keys():
                        item = await pushes.get()
                        if isinstance(item, TuyaError):
                            raise item
                        confirmed.update(item)
            except TimeoutError:
                # No STATUS followed the ACK: ask the device what it has now.
                confirmed.update(await self._query_status())
            return confirmed
        finally:
            self._push_queues.discard(pushes)

    async def heartbeat(self) -> None:
        """Send a heartbeat and wait for its answer.

        Raises:
            TuyaConnectionError, TuyaTimeoutError: see :meth:`connect`.

        """
        self._require_connection()
        cmd, payload = heartbeat_request(self.device_id)
        await self._request(cmd, payload, frozenset({Command.HEART_BEAT}))

    async def update_dps(self, dp_ids: Iterable[int] | None = None) -> None:
        """Ask the device to re-report ``dp_ids`` (UPDATEDPS 0x12, spec §2.9).

        The new values arrive as a STATUS push, delivered to subscribers.

        Raises:
            TuyaConnectionError, TuyaTimeoutError: see :meth:`connect`.

        """
        self._require_connection()
        cmd, payload = updatedps_request(dp_ids if dp_ids is not None else self.refresh_dps)
        await self._request(cmd, payload, frozenset({Command.UPDATEDPS, Command.STATUS}))

    # ------------------------------------------------------------ connection
    def _require_connection(self) -> None:
        if not self.connected:
            raise TuyaConnectionError(f"not connected to {self.host}:{self.port}")

    async def _open(self) -> None:
        """Open a connection; in ``auto`` mode try every protocol version until one works.

        Raises:
            TuyaConnectionError: the TCP connection itself failed (no version is tried then).
            TuyaKeyError: no version accepted the local key.

        """
        if not self.auto_version:
            await self._open_version()
            return
        first = self.version
        for version in (first, *(v for v in PROBE_ORDER if v != first)):
            self.version = version
            try:
                await self._open_version(probe=True)
            except TuyaError as err:
                if not self._tcp_opened:
                    self.version = first
                    raise
                _LOGGER.debug("%s does not speak %s: %s", self.device_id, version, err)
                # plugs accept one connection: let the failed one close before the next try
                await asyncio.sleep(PROBE_PAUSE)
                continue
            if version != first:
                _LOGGER.info("%s speaks protocol %s", self.device_id, version)
            return
        self.version = first
        raise TuyaKeyError(
            "no protocol version accepted the local key (wrong key, or the plug is busy)"
        )

    async def _open_version(self, *, probe: bool = False) -> None:
        """Open, negotiate and check the key; on failure everything is closed again."""
        self._tcp_opened = False
        self._probe_timeout = min(self.timeout, PROBE_TIMEOUT) if probe else None
        self._codec = MessageCodec(self.version, self._key)
        self._parser = FrameParser()
        try:
            async with asyncio.timeout(self.timeout):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise TuyaTimeoutError(f"connection to {self.host}:{self.port} timed out") from None
        except OSError as err:
            raise TuyaConnectionError(
                f"cannot connect to {self.host}:{self.port}: {err.strerror or err}"
            ) from None
        self._tcp_opened = True
        self._reader_task = asyncio.create_task(self._read_loop(self._reader), name="tuya-reader")
        try:
            if self._codec.needs_session:
                await self._negotiate()
            try:
                dps = await self._query_status()
            except (TuyaTimeoutError, TuyaConnectionError) as err:
                raise TuyaKeyError(
                    "the device did not answer the first query: wrong local key or protocol "
                    f"version ({err})"
                ) from None
        except BaseException:
            await self._drop(TuyaConnectionError("connection setup failed"))
            raise
        finally:
            self._probe_timeout = None
        self.connect_count += 1
        self.last_error = None
        self.key_failures = 0
        self._disconnected.clear()
        self._connected.set()
        self._keepalive_task = asyncio.create_task(self._keepalive(), name="tuya-keepalive")
        _LOGGER.debug("connected to %s (%s), %d DPs", self.device_id, self.host, len(dps))
        self._notify_connection(True)

    async def _negotiate(self) -> None:
        neg = ClientNegotiation(self.version, self._key)
        try:
            resp = await self._request(
                Command.SESS_KEY_NEG_START,
                neg.start_payload,
                frozenset({Command.SESS_KEY_NEG_RESP}),
            )
        except (TuyaTimeoutError, TuyaConnectionError) as err:
            raise TuyaKeyError(f"no answer to the session-key negotiation ({err})") from None
        finish = neg.handle_response(resp.payload)
        await self._send(Command.SESS_KEY_NEG_FINISH, finish)
        self._codec.session_key = neg.session_key

    async def _drop(self, reason: TuyaError) -> None:
        """Close the socket, fail the pending request, and report the disconnection."""
        was_connected = self.connected
        self._connected.clear()
        self._disconnected.set()
        writer, self._writer, self._reader = self._writer, None, None
        tasks = [t for t in (self._reader_task, self._keepalive_task) if t is not None]
        self._reader_task = self._keepalive_task = None
        current = asyncio.current_task()
        others = [t for t in tasks if t is not current]
        for task in others:
            task.cancel()
        self._fail_pending(reason)
        if others:  # the reader may be the caller (connection closed by the device)
            await asyncio.wait(others)
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
        if was_connected:
            _LOGGER.debug("disconnected from %s: %s", self.device_id, reason)
            self._notify_connection(False)

    def _fail_pending(self, reason: TuyaError) -> None:
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(reason)
        for queue in self._push_queues:
            queue.put_nowait(reason)

    async def _supervise(self) -> None:
        """Reconnect with exponential backoff and jitter whenever the connection is down."""
        delay = self.reconnect_min
        while not self._closing:
            if self.connected:
                await self._disconnected.wait()
                delay = self.reconnect_min
                continue
            self._wake.clear()
            try:
                await self._open()
            except TuyaError as err:
                _LOGGER.debug("reconnect to %s failed: %s", self.device_id, err)
                self.last_error = err
                self.key_failures = self.key_failures + 1 if isinstance(err, TuyaKeyError) else 0
                for failure_callback in list(self._failure_callbacks):
                    try:
                        failure_callback(err)
                    except Exception:
                        _LOGGER.exception("error in a failure callback")
                # back off, unless set_host() gives a new address to try at once
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay * random.uniform(0.8, 1.2)):
                        await self._wake.wait()
                delay = min(delay * 2, self.reconnect_max)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        reason: TuyaError = TuyaConnectionError("connection closed by the device")
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                for item in self._parser.feed(data):
                    if isinstance(item, TuyaFrameError):
                        self.bad_frames += 1
                        _LOGGER.debug("dropped a malformed frame from %s: %s", self.device_id, item)
                        continue
                    self._handle_frame(item)
        except OSError as err:
            reason = TuyaConnectionError(f"connection lost: {err.strerror or err}")
        except TuyaProtocolError as err:
            reason = err
        await self._drop(reason)

    def _handle_frame(self, frame: RawFrame) -> None:
        try:
            msg = self._codec.decode(frame)
        except TuyaFrameError as err:
            self.bad_frames += 1
            _LOGGER.debug("dropped a frame from %s: %s", self.device_id, err)
            return
        except TuyaProtocolError as err:
            # Integrity held but decryption failed: the key does not match.
            self._fail_pending(TuyaKeyError(f"cannot decrypt the device's answer ({err})"))
            return
        pending = self._pending
        if pending is not None and not pending[2].done() and self._matches(msg, pending):
            pending[2].set_result(msg)
            if msg.cmd != Command.STATUS:
                return
        if msg.cmd == Command.STATUS or (msg.payload[:1] == b"{" and msg.cmd in _DPS_REPLIES):
            self._deliver_dps(msg)

    def _matches(self, msg: Message, pending: tuple[frozenset[int], int, Any, bool]) -> bool:
        cmds, seqno, _, any_status = pending
        if msg.cmd not in cmds:
            return False
        if msg.cmd == Command.STATUS:
            # Only a STATUS with DPS can answer. Pushes carry seqno 0 (<= 3.3) or the device's
            # own counter: a STATUS answers a status query only if it echoes our sequence number
            # (3.5 never echoes, spec §2.6), not a meter push that happened to arrive meanwhile.
            return msg.payload[:1] == b"{" and (
                any_status or msg.seqno == seqno or float(self.version) >= 3.5
            )
        # 3.5 devices use their own counter, 3.1 heartbeats and STATUS pushes use 0 (spec §2.6/2.9)
        return msg.seqno in (seqno, 0) or float(self.version) >= 3.4

    def _deliver_dps(self, msg: Message) -> None:
        try:
            dps = extract_dps(msg.json())
        except TuyaProtocolError:
            _LOGGER.debug("ignored a non-JSON push from %s", self.device_id)
            return
        if not dps:
            return
        self.dps.update(dps)
        for queue in self._push_queues:
            queue.put_nowait(dps)
        for callback in list(self._dps_callbacks):
            try:
                callback(dps)
            except Exception:
                _LOGGER.exception("error in a DPS callback")

    def _notify_connection(self, connected: bool) -> None:
        for callback in list(self._conn_callbacks):
            try:
                callback(connected)
            except Exception:
                _LOGGER.exception("error in a connection callback")

    async def _keepalive(self) -> None:
        """Heartbeat every ``heartbeat_interval`` s; UPDATEDPS every ``refresh_interval`` s."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_interval
        try:
            while self.connected:
                await asyncio.sleep(self.heartbeat_interval)
                await self.heartbeat()
                if self.refresh_interval and loop.time() >= next_refresh:
                    next_refresh = loop.time() + self.refresh_interval
                    await self.update_dps()
        except TuyaError as err:
            _LOGGER.debug("keep-alive to %s failed: %s", self.device_id, err)
            await self._drop(err)

    # ------------------------------------------------------------ requests
    async def _send(self, cmd: int, payload: bytes) -> int:
        writer = self._writer
        if writer is None:
            raise TuyaConnectionError("not connected")
        self._seqno = (self._seqno + 1) & 0xFFFFFFFF
        writer.write(self._codec.encode(self._seqno, cmd, payload))
        try:
            async with asyncio.timeout(self.timeout):
                await writer.drain()
        except TimeoutError:
            raise TuyaTimeoutError("sending to the device timed out") from None
        except OSError as err:
            raise TuyaConnectionError(f"send failed: {err.strerror or err}") from None
        return self._seqno

    async def _request(
        self,
        cmd: int,
        payload: bytes,
        expect: frozenset[int],
        *,
        check_retcode: bool = True,
        any_status: bool = True,
    ) -> Message:
        """Send one command and wait for its answer; one request in flight at a time.

        Raises:
            TuyaTimeoutError: no answer within ``timeout``.
            TuyaDeviceError: the device answered with a non-zero retcode (``check_retcode``).

        """
        wait = self._probe_timeout or self.timeout
        async with self._lock:
            future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            self._pending = (expect, -1, future, any_status)
            try:
                seqno = await self._send(cmd, payload)
                self._pending = (expect, seqno, future, any_status)
                async with asyncio.timeout(wait):
                    msg = await future
            except TimeoutError:
                raise TuyaTimeoutError(
                    f"no answer to command 0x{cmd:02x} within {wait} s"
                ) from None
            finally:
                self._pending = None
        if msg.retcode and check_retcode:
            text = msg.payload.decode("utf-8", "replace")[:80]
            raise TuyaDeviceError(f"device error {msg.retcode}: {text}")
        return msg

    async def _query_status(self) -> dict[str, Any]:
        if self._device22:
            # answered by an empty ACK, then a STATUS with the DPs (spec §2.10)
            ids = sorted(self.dps, key=_dp_sort) or list(_DEVICE22_DEFAULT_DPS)
            cmd, payload = device22_status_request(self.device_id, ids)
            msg = await self._request(cmd, payload, frozenset({Command.STATUS}))
        else:
            cmd, payload = status_request(self.version, self.device_id)
            msg = await self._request(
                cmd,
                payload,
                frozenset({cmd, Command.STATUS}),
                check_retcode=False,
                any_status=False,
            )
        if ERROR_DATA_UNVALID in msg.payload and not self._device22:
            _LOGGER.debug("%s refuses DP_QUERY; switching to the device22 query", self.device_id)
            self._device22 = True
            return await self._query_status()
        if msg.payload[:1] != b"{":
            raise TuyaDeviceError(
                f"unexpected status answer: {msg.payload[:40].decode('utf-8', 'replace')}"
            )
        dps = extract_dps(msg.json())
        self.dps.update(dps)
        return dict(self.dps)


_DPS_REPLIES = frozenset({Command.DP_QUERY, Command.DP_QUERY_NEW, Command.CONTROL_NEW})


def _dp_sort(dp_id: str) -> tuple[int, str]:
    return (int(dp_id), dp_id) if dp_id.isdigit() else (1 << 30, dp_id)
