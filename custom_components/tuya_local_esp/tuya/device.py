"""One Tuya device kept reachable over the local protocol: reconnects, versions, keep-alive.

One job: keep a device usable across connections. :class:`TuyaDevice` opens
:class:`~.connection.TuyaConnection` objects (one at a time), finds the protocol version
(``"auto"``), keeps the connection alive with heartbeats, refreshes power DPs with UPDATEDPS,
reconnects with backoff, caches the DPS and tells subscribers about DPS, connection and failures.

Protocol facts used here (spec = ``../shared/docs/tuya-protocol.md``):

* a CONTROL is answered by an empty ACK, then a STATUS (0x08) push with the changed DPs (§2.4);
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

from .connection import TuyaConnection
from .const import DEFAULT_PORT, ERROR_DATA_UNVALID, VERSIONS, Command
from .errors import (
    TuyaBusyError,
    TuyaConnectionError,
    TuyaDeviceError,
    TuyaError,
    TuyaKeyError,
    TuyaTimeoutError,
)
from .message import MessageCodec
from .payload import (
    control_request,
    device22_status_request,
    extract_dps,
    heartbeat_request,
    status_request,
    updatedps_request,
)

_LOGGER = logging.getLogger(__name__)

DpsCallback = Callable[[dict[str, Any]], None]
ConnectionCallback = Callable[[bool], None]
FailureCallback = Callable[[TuyaError], None]

#: DPs probed with the device22 query when nothing is known yet (spec §5 plug DPS).
_DEVICE22_DEFAULT_DPS = ("1", "9", "17", "18", "19", "20", "21", "22", "23", "24", "25", "26")

#: ``version`` value that makes the client find the protocol version itself.
AUTO_VERSION = "auto"
#: Order in which ``auto`` tries versions after the hint: the most common first.
PROBE_ORDER = ("3.3", "3.4", "3.5", "3.1", "3.2")
#: Seconds a version probe waits for each answer (plugs answer in well under a second).
PROBE_TIMEOUT = 2.0
#: Seconds between two probes, so the plug has closed the previous connection.
PROBE_PAUSE = 0.2


def _unsubscriber(callbacks: list[Any], callback: Any) -> Callable[[], None]:
    """A function removing ``callback`` from ``callbacks``; calling it twice is harmless."""

    def unsubscribe() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return unsubscribe


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
        self._conn: TuyaConnection | None = None
        #: One queue per set_dps() in progress, fed with every push (or the connection's end).
        self._push_queues: set[asyncio.Queue[dict[str, Any] | TuyaError]] = set()
        self._dps_callbacks: list[DpsCallback] = []
        self._conn_callbacks: list[ConnectionCallback] = []
        self._failure_callbacks: list[FailureCallback] = []
        self._keepalive_task: asyncio.Task[None] | None = None
        self._cleanup: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._wake = asyncio.Event()
        self._closing = False
        self._tcp_opened = False
        self._probe_timeout: float | None = None
        self._bad_frames_closed = 0
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

    @property
    def bad_frames(self) -> int:
        """Frames dropped because they failed integrity checks, over all connections."""
        live = self._conn.bad_frames if self._conn is not None else 0
        return self._bad_frames_closed + live

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
        return _unsubscriber(self._failure_callbacks, callback)

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
            A function that removes the subscription (safe to call twice).

        """
        self._dps_callbacks.append(callback)
        return _unsubscriber(self._dps_callbacks, callback)

    def subscribe_connection(self, callback: ConnectionCallback) -> Callable[[], None]:
        """Call ``callback(connected)`` whenever the connection comes up or goes down.

        Returns:
            A function that removes the subscription (safe to call twice).

        """
        self._conn_callbacks.append(callback)
        return _unsubscriber(self._conn_callbacks, callback)

    async def status(self) -> dict[str, Any]:
        """Query every DP.

        Returns:
            DP id string -> value, e.g. ``{"1": True, "19": 1234}``.

        Raises:
            TuyaConnectionError, TuyaTimeoutError, TuyaDeviceError: see :meth:`connect`.

        """
        return await self._query_status(self._live())

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
        conn = self._live()
        wanted = {str(k): v for k, v in dps.items()}
        cmd, payload = control_request(self.version, self.device_id, wanted)
        pushes: asyncio.Queue[dict[str, Any] | TuyaError] = asyncio.Queue()
        self._push_queues.add(pushes)
        try:
            ack = await conn.request(cmd, payload, frozenset({cmd}), wait=self.timeout)
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
                confirmed.update(await self._query_status(conn))
            return confirmed
        finally:
            self._push_queues.discard(pushes)

    async def heartbeat(self) -> None:
        """Send a heartbeat and wait for its answer.

        Raises:
            TuyaConnectionError, TuyaTimeoutError: see :meth:`connect`.

        """
        cmd, payload = heartbeat_request(self.device_id)
        await self._live().request(cmd, payload, frozenset({Command.HEART_BEAT}), wait=self.timeout)

    async def update_dps(self, dp_ids: Iterable[int] | None = None) -> None:
        """Ask the device to re-report ``dp_ids`` (UPDATEDPS 0x12, spec §2.9).

        The new values arrive as a STATUS push, delivered to subscribers.

        Raises:
            TuyaConnectionError, TuyaTimeoutError: see :meth:`connect`.

        """
        cmd, payload = updatedps_request(dp_ids if dp_ids is not None else self.refresh_dps)
        await self._live().request(
            cmd, payload, frozenset({Command.UPDATEDPS, Command.STATUS}), wait=self.timeout
        )

    # ------------------------------------------------------------ connection
    def _live(self) -> TuyaConnection:
        """The connection, if it is up and the key was accepted."""
        if not self.connected or self._conn is None:
            raise TuyaConnectionError(f"not connected to {self.host}:{self.port}")
        return self._conn

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
        wait = min(self.timeout, PROBE_TIMEOUT) if probe else self.timeout
        conn = await TuyaConnection.open(
            self.host,
            self.port,
            wait=self.timeout,
            device_id=self.device_id,
            version=self.version,
            local_key=self._key,
            on_dps=self._deliver_dps,
            on_closed=self._on_conn_closed,
        )
        self._tcp_opened = True
        self._conn = conn
        try:
            if conn.needs_session:
                try:
                    await conn.negotiate(wait)
                except (TuyaTimeoutError, TuyaConnectionError) as err:
                    raise TuyaKeyError(
                        f"no answer to the session-key negotiation ({err})"
                    ) from None
            try:
                dps = await self._query_status(conn, wait)
            except (TuyaTimeoutError, TuyaConnectionError) as err:
                raise TuyaKeyError(
                    "the device did not answer the first query: wrong local key or protocol "
                    f"version ({err})"
                ) from None
        except BaseException:
            await self._drop(TuyaConnectionError("connection setup failed"))
            raise
        self.connect_count += 1
        self.last_error = None
        self.key_failures = 0
        self._disconnected.clear()
        self._connected.set()
        self._keepalive_task = asyncio.create_task(self._keepalive(conn), name="tuya-keepalive")
        _LOGGER.debug("connected to %s (%s), %d DPs", self.device_id, self.host, len(dps))
        self._notify_connection(True)

    def _on_conn_closed(self, conn: TuyaConnection, reason: TuyaError) -> None:
        """The connection ended (device, error or us): fail waiters, schedule the cleanup."""
        for queue in self._push_queues:
            queue.put_nowait(reason)
        if conn is self._conn and self.connected:
            task = asyncio.get_running_loop().create_task(self._drop(reason))
            self._cleanup = task

    async def _drop(self, reason: TuyaError) -> None:
        """Close the connection, stop the keep-alive, and report the disconnection."""
        was_connected = self.connected
        self._connected.clear()
        self._disconnected.set()
        conn, self._conn = self._conn, None
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if conn is not None:
            self._bad_frames_closed += conn.bad_frames
            await conn.close(reason)
        if was_connected:
            _LOGGER.debug("disconnected from %s: %s", self.device_id, reason)
            self._notify_connection(False)

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

    def _deliver_dps(self, dps: dict[str, Any]) -> None:
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

    async def _keepalive(self, conn: TuyaConnection) -> None:
        """Heartbeat every ``heartbeat_interval`` s; UPDATEDPS every ``refresh_interval`` s."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_interval
        try:
            while not conn.closed:
                await asyncio.sleep(self.heartbeat_interval)
                await self.heartbeat()
                if self.refresh_interval and loop.time() >= next_refresh:
                    next_refresh = loop.time() + self.refresh_interval
                    await self.update_dps()
        except TuyaError as err:
            _LOGGER.debug("keep-alive to %s failed: %s", self.device_id, err)
            await self._drop(err)

    # ------------------------------------------------------------ requests
    async def _query_status(
        self, conn: TuyaConnection, wait: float | None = None
    ) -> dict[str, Any]:
        wait = wait or self.timeout
        if self._device22:
            # answered by an empty ACK, then a STATUS with the DPs (spec §2.10)
            ids = sorted(self.dps, key=_dp_sort) or list(_DEVICE22_DEFAULT_DPS)
            cmd, payload = device22_status_request(self.device_id, ids)
            msg = await conn.request(cmd, payload, frozenset({Command.STATUS}), wait=wait)
        else:
            cmd, payload = status_request(self.version, self.device_id)
            msg = await conn.request(
                cmd,
                payload,
                frozenset({cmd, Command.STATUS}),
                wait=wait,
                check_retcode=False,
                any_status=False,
            )
        if ERROR_DATA_UNVALID in msg.payload and not self._device22:
            _LOGGER.debug("%s refuses DP_QUERY; switching to the device22 query", self.device_id)
            self._device22 = True
            return await self._query_status(conn, wait)
        if msg.payload[:1] != b"{":
            raise TuyaDeviceError(
                f"unexpected status answer: {msg.payload[:40].decode('utf-8', 'replace')}"
            )
        dps = extract_dps(msg.json())
        self.dps.update(dps)
        return dict(self.dps)


def _dp_sort(dp_id: str) -> tuple[int, str]:
    return (int(dp_id), dp_id) if dp_id.isdigit() else (1 << 30, dp_id)
