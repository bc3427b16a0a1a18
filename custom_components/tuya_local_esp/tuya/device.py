"""One Tuya device kept reachable over the local protocol: reconnects, versions, keep-alive.

One job: keep a device usable across connections. :class:`TuyaDevice` opens
:class:`~.connection.TuyaConnection` objects (one at a time), finds the protocol version
(``"auto"``), keeps the connection alive, refreshes power DPs with UPDATEDPS, reconnects with the
shared :class:`~.backoff.Backoff` pacing, caches the DPS and tells subscribers about DPS,
connection and failures. A set-up reports what it saw on its connection (:class:`~.failures.Silent`,
:class:`~.failures.ClosedEarly`, :class:`TuyaKeyError` on evidence); how failures add up across
attempts (key refusals in a row, busy, version suspicion) is :mod:`.failures`. The reliability
rules and their measurements are in ``docs/reliability.md``.

Protocol facts used here (spec = ``../shared/docs/tuya-protocol.md``):

* a CONTROL is answered by an empty ACK, then a STATUS (0x08) push with the changed DPs (§2.4);
* devices drop connections on which they received nothing for ~30 s (§4); we send a heartbeat
  after ``heartbeat_interval`` (10 s) without hearing anything, or 20 s without sending anything,
  and any frame from the device counts as a sign of life;
* only one TCP connection at a time; another client holding the socket causes refusals/resets (§4);
* a wrong local key gets no answer at all or an undecryptable one (§4). A key counts as refused
  only on evidence: a frame that arrived and did not decrypt/verify, a device that answers an
  empty (unkeyed) heartbeat but never our keyed query (tuyapi sends empty heartbeats, §2.8), or a
  3.4/3.5 device that hangs up right after our session-key request, twice in a row. Silence,
  timeouts and resets never count as a key failure;
* 3.2 devices take 3.3 frames (tuyapi writes a "3.3" header for them, §2.3, §6 item 2), and a 3.3
  device passes a 3.2 status query (no version header on queries, §2.1): 3.2 is never detected,
  only used when configured;
* "json obj data unvalid" means the device wants the device22 query (§2.10).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

from .backoff import Backoff
from .connection import TuyaConnection
from .const import DEFAULT_PORT, ERROR_DATA_UNVALID, Command
from .errors import (
    TuyaBusyError,
    TuyaConnectionError,
    TuyaDeviceError,
    TuyaError,
    TuyaKeyError,
    TuyaProtocolError,
    TuyaTimeoutError,
)
from .failures import REPROBE_AFTER, ClosedEarly, FailureTracker, Silent, version_explains
from .message import Message, MessageCodec
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
#: Order in which ``auto`` tries versions after the hint: the most common first. 3.2 is absent:
#: a 3.3 device passes a 3.2 status query, and 3.2 devices are driven as 3.3 (spec §2.3).
PROBE_ORDER = ("3.3", "3.4", "3.5", "3.1")
#: Seconds an ``auto`` connection set-up waits for each answer (plugs answer in well under 1 s).
PROBE_TIMEOUT = 2.0
#: Seconds between two probes, so the plug has closed the previous connection.
PROBE_PAUSE = 0.2
#: Seconds to wait for the STATUS push after a CONTROL's ACK before asking with a status query
#: (devices push within milliseconds of the ACK, spec §2.4; a lost push then costs this long).
PUSH_WAIT = 1.0
#: Seconds after ``heartbeat_interval`` of silence before the device is declared gone: half for
#: the heartbeat's answer, half for a status query (for devices that ignore heartbeats).
LIVENESS_GRACE = 2.0


class _SetWaiter:
    """What the device reported while one :meth:`TuyaDevice.set_dps` waits for its confirmation.

    Fed synchronously by every DPS push and by the connection's end; the caller awaits one future
    at a time (no task per call).
    """

    __slots__ = ("_wakeup", "confirmed", "error", "wanted")

    def __init__(self, wanted: dict[str, Any]) -> None:
        """Wait for the DP ids of ``wanted``."""
        self.wanted = wanted
        #: The DPs reported since the command was sent, up to the confirmation (pushes, the ACK's
        #: payload, a status query).
        self.confirmed: dict[str, Any] = {}
        #: Why the connection ended, if it did.
        self.error: TuyaError | None = None
        self._wakeup: asyncio.Future[None] | None = None

    @property
    def complete(self) -> bool:
        """True once every wanted DP id was reported."""
        return self.wanted.keys() <= self.confirmed.keys()

    def push(self, dps: dict[str, Any]) -> None:
        """DPs pushed by the device; ignored once every wanted DP was reported.

        The confirmation is the pushes up to the first that completes it: a later push (a button
        pressed right after, a meter update) belongs to the next state, not to this command.
        """
        if not self.complete:
            self.confirmed.update(dps)
            self._wake()

    def fail(self, error: TuyaError) -> None:
        """The connection ended."""
        if self.error is None:
            self.error = error
        self._wake()

    def confirms(self, msg: Message) -> bool:
        """Whether ``msg`` (before the ACK) is a STATUS push completing every wanted DP."""
        if msg.cmd != Command.STATUS or msg.payload[:1] != b"{":
            return False
        try:
            dps = extract_dps(msg.json())
        except TuyaProtocolError:
            return False
        return self.wanted.keys() <= self.confirmed.keys() | dps.keys()

    async def wait_complete(self) -> None:
        """Wait until every wanted DP was reported.

        Raises:
            TuyaError: the connection ended first.

        """
        while not self.complete:
            if self.error is not None:
                raise self.error
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


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
        version: protocol version ``"3.1"`` ... ``"3.5"``, or ``"auto"``: connections use
            ``version_hint`` (or 3.3) and try the others only on evidence that the version
            changed (see :meth:`_open`), so a plug whose firmware update changed its version
            keeps working; :attr:`version` tells the one in use. 3.2 is used only when given
            explicitly (spec §2.3).
        version_hint: with ``"auto"``, the version to use first (e.g. the last one detected, or
            the one a discovery broadcast announced; "3.2" means 3.3).
        port: TCP port (6668).
        timeout: seconds allowed for every single wait (connect, each answer).
        heartbeat_interval: seconds between heartbeats while connected.
        refresh_interval: seconds between UPDATEDPS requests for ``refresh_dps``; 0 disables.
        refresh_dps: DP ids re-requested with UPDATEDPS (power DPs 18/19/20 by default).
        auto_reconnect: reconnect in the background after the connection is lost.
        reconnect_min: seconds before the first retry of an outage (doubles up to
            ``reconnect_max``).
        reconnect_max: the longest wait between retries during the first ``slow_after`` seconds
            of an outage (a returning plug is found within about this long).
        reconnect_slow: the wait between retries once an outage lasted ``slow_after`` seconds.
        slow_after: seconds of continuous failure before waits grow to ``reconnect_slow``.
        polite_wait: seconds to wait while another client holds the device.

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
        reconnect_min: float = 0.25,
        reconnect_max: float = 2.0,
        reconnect_slow: float = 30.0,
        slow_after: float = 600.0,
        polite_wait: float = 15.0,
    ) -> None:
        """Create the client; nothing is opened until :meth:`connect`."""
        key = local_key.encode("latin-1")
        self.auto_version = version == AUTO_VERSION
        if self.auto_version:
            version = version_hint if version_hint in PROBE_ORDER else PROBE_ORDER[0]
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
        self._backoff = Backoff(
            first=reconnect_min,
            steady=reconnect_max,
            slow=reconnect_slow,
            slow_after=slow_after,
            polite=polite_wait,
        )
        #: Last known value of every DP seen, keyed by DP id string.
        self.dps: dict[str, Any] = {}
        self._device22 = False
        self._conn: TuyaConnection | None = None
        #: One waiter per set_dps() in progress, fed with every push (or the connection's end).
        self._set_waiters: set[_SetWaiter] = set()
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
        self._moved = asyncio.Event()
        self._closing = False
        self._bad_frames_closed = 0
        #: The last attempt's TCP connection was accepted (it reached the device).
        self._accepted = False
        #: Failure evidence across attempts (key, busy, version), see :mod:`.failures`.
        self._failures = FailureTracker()
        #: (opened at, closed at, closed by the device) of the last session.
        self._session: tuple[float, float, bool] | None = None
        #: The device answered a status query but not a heartbeat (liveness checks use queries).
        self.ignores_heartbeat = False
        #: Number of successful (re)connections.
        self.connect_count = 0

    # ------------------------------------------------------------ public API
    @property
    def reconnect_min(self) -> float:
        """Seconds before the first retry of an outage."""
        return self._backoff.first

    @reconnect_min.setter
    def reconnect_min(self, value: float) -> None:
        self._backoff.first = value
        self._backoff.steady = max(self._backoff.steady, value)
        self._backoff.slow = max(self._backoff.slow, value)

    @property
    def reconnect_max(self) -> float:
        """The longest wait between retries early in an outage (the "steady" wait)."""
        return self._backoff.steady

    @reconnect_max.setter
    def reconnect_max(self, value: float) -> None:
        self._backoff.steady = max(value, self._backoff.first)
        self._backoff.slow = max(self._backoff.slow, self._backoff.steady)

    @property
    def last_error(self) -> TuyaError | None:
        """Why the last background (re)connection failed (classified); None after a success."""
        return self._failures.last_error

    @property
    def key_failures(self) -> int:
        """Background connection attempts in a row that failed with :class:`TuyaKeyError`."""
        return self._failures.key_failures

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
            TuyaConnectionError: the device cannot be reached, or closed the connection before
                answering.
            TuyaKeyError: the device refused the local key (or the protocol version): an answer
                that did not decrypt, or a refusal (module docstring); never mere silence.
            TuyaTimeoutError: the device accepted the connection and did not answer in time.
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
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await cleanup

    def set_host(self, host: str) -> None:
        """Point the client at a new address (the plug moved); reconnects there at once.

        A live connection to the old address is kept until it fails.
        """
        if host == self.host:
            return
        _LOGGER.info("%s moved to %s", self.device_id, host)
        self.host = host
        self._wake.set()
        self._moved.set()

    def wake(self) -> None:
        """The device was heard on the LAN (its UDP broadcast): retry now if waiting.

        Cuts a backoff wait short, not the polite wait while another client holds the device.
        """
        self._wake.set()

    @property
    def busy(self) -> bool:
        """True while the last attempt found another client holding the device's connection."""
        return self._failures.busy

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
            DP id string -> value, e.g. ``{"1": True, "19": 1234}``: every DP known, the answer
            applied except DPs a push read after it changed (that push is newer).

        Raises:
            TuyaConnectionError, TuyaTimeoutError, TuyaDeviceError: see :meth:`connect`.

        """
        return await self._query_status(self._live())

    async def set_dps(self, dps: Mapping[str, Any] | Mapping[int, Any]) -> dict[str, Any]:
        """Set DPs and wait for the device to confirm them.

        The device confirms with an ACK and a STATUS push (spec §2.4). When the ACK is lost
        (e.g. to a bad CRC) a STATUS push with every DP set, or a status query showing the
        values asked for, confirms instead; a command the device did not apply always fails.

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
        cmd, payload = control_request(conn.version, self.device_id, wanted)
        waiter = _SetWaiter(wanted)
        self._set_waiters.add(waiter)
        try:
            # One await on the request itself (no helper task): a STATUS push that confirms
            # every DP before the ACK answers the request too (the ACK was lost).
            try:
                msg: Message | None = await conn.request(
                    cmd, payload, frozenset({cmd}), wait=self.timeout, accept=waiter.confirms
                )
            except TuyaTimeoutError:
                msg = None
            confirmed = waiter.confirmed
            if msg is None or msg.cmd != cmd:
                if waiter.complete:
                    return confirmed  # the STATUS push confirmed it; the ACK was lost
                # No ACK and no push: only the device's state tells whether it applied it.
                state = await self._query_status(conn)
                confirmed.update(state)
                if any(state.get(k, _MISSING) != v for k, v in wanted.items()):
                    raise TuyaTimeoutError("the device did not confirm the command")
                return confirmed
            if msg.payload[:1] == b"{":
                confirmed.update(extract_dps(msg.json()))
            try:
                async with asyncio.timeout(min(self.timeout, PUSH_WAIT)):
                    await waiter.wait_complete()
            except TimeoutError:
                # No STATUS followed the ACK: ask the device what it has now.
                confirmed.update(await self._query_status(conn))
            return confirmed
        finally:
            self._set_waiters.discard(waiter)

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

    async def _open(self, *, background: bool = False) -> None:
        """Open a connection with the current version; in ``auto`` mode try others if needed.

        ``auto`` tries the other versions at once after a refused key or an undecryptable
        answer; after silence only once :data:`REPROBE_AFTER` set-ups in a row were silent
        (a lost reply must not make it leave a version that works). A version is adopted only
        after a full set-up with it (session key, answered status query).

        Raises:
            TuyaConnectionError: the TCP connection itself failed (no version is tried then),
                or the device closed it before answering.
            TuyaKeyError: the device refused the local key (no version accepted it).
            TuyaTimeoutError: the device did not answer.

        """
        first = self.version
        try:
            await self._open_version(first)
        except TuyaError as err:
            if not (self.auto_version and self._accepted and version_explains(err)):
                raise
            suspect = self._failures.suspect
            if isinstance(err, Silent) and background and suspect + 1 < REPROBE_AFTER:
                raise
            errors: list[TuyaError] = [err]
        else:
            return
        for version in (v for v in PROBE_ORDER if v != first):
            # plugs accept one connection: let the failed one close before the next try
            await asyncio.sleep(PROBE_PAUSE)
            try:
                await self._open_version(version)
            except TuyaError as err:
                _LOGGER.debug("%s does not speak %s: %s", self.device_id, version, err)
                if not (self._accepted and version_explains(err)):
                    raise
                errors.append(err)
                continue
            _LOGGER.info("%s speaks protocol %s", self.device_id, version)
            return
        if any(isinstance(e, TuyaKeyError) for e in errors):
            raise TuyaKeyError("no protocol version accepted the local key (or the version)")
        raise errors[0]

    async def _open_version(self, version: str) -> None:
        """Connect with ``version``, check the key and go live; on failure close it again."""
        wait = min(self.timeout, PROBE_TIMEOUT) if self.auto_version else self.timeout
        try:
            conn = await self._setup(version, wait)
        except ClosedEarly as err:
            if not err.key_suspect:
                raise
            # 3.4/3.5: hung up on our session-key request, or answered it with a frame that did
            # not verify. Once may be chance (a reboot, another client, a corrupted frame); twice
            # in a row is the device refusing our key.
            await asyncio.sleep(PROBE_PAUSE)
            try:
                conn = await self._setup(version, wait)
            except ClosedEarly as again:
                if not again.key_suspect:
                    raise
                raise TuyaKeyError(
                    "the device refused the session-key request twice: wrong local key or "
                    "protocol version"
                ) from None
        self._conn = conn
        self.version = version
        self.connect_count += 1
        self._failures.connected()
        self._backoff.reset()
        self._disconnected.clear()
        self._connected.set()
        self._keepalive_task = asyncio.create_task(self._keepalive(conn), name="tuya-keepalive")
        _LOGGER.debug("connected to %s (%s, %s)", self.device_id, self.host, version)
        self._notify_connection(True)

    async def _setup(self, version: str, wait: float) -> TuyaConnection:
        """One TCP connection: open, negotiate (3.4/3.5), read the DPS; classified errors.

        Raises:
            TuyaConnectionError, TuyaTimeoutError: the TCP connection failed
                (:attr:`_accepted` stays False).
            ClosedEarly: the device closed the connection before answering.
            TuyaKeyError: see the module docstring for the evidence required.
            Silent: the device accepted the connection and answered nothing.

        """
        self._accepted = False
        conn = await TuyaConnection.open(
            self.host,
            self.port,
            wait=self.timeout,
            device_id=self.device_id,
            version=version,
            local_key=self._key,
            on_dps=self._deliver_dps,
            on_closed=self._on_conn_closed,
        )
        self._accepted = True
        try:
            await self._handshake(conn, wait)
        except BaseException:
            self._bad_frames_closed += conn.bad_frames
            await conn.close(TuyaConnectionError("connection setup failed"))
            raise
        return conn

    async def _handshake(self, conn: TuyaConnection, wait: float) -> None:
        """Negotiate the session key (3.4/3.5) and read the DPS once."""
        try:
            if conn.needs_session:
                try:
                    await conn.negotiate(wait)
                except TuyaTimeoutError:
                    if conn.bad_frames and not conn.frames_in:
                        raise ClosedEarly(
                            "the answer to the session-key request did not verify", key_suspect=True
                        ) from None
                    raise Silent("no answer to the session-key negotiation") from None
            try:
                await self._query_status(conn, wait)
                return
            except TuyaTimeoutError:
                pass
            # A lost reply, or a key the device ignores: does it answer anything? An empty
            # heartbeat needs no key below 3.4 (tuyapi sends them, spec §2.8).
            alive = False
            if not conn.needs_session:
                with contextlib.suppress(TuyaTimeoutError):
                    await conn.request(
                        Command.HEART_BEAT, b"", frozenset({Command.HEART_BEAT}), wait=wait
                    )
                    alive = True
            try:
                await self._query_status(conn, wait)  # once more: heals a lost reply
            except TuyaTimeoutError:
                if alive:
                    raise TuyaKeyError(
                        "the device answers heartbeats but not our encrypted query: wrong local "
                        "key or protocol version"
                    ) from None
                raise Silent("the device accepted the connection but answered nothing") from None
        except TuyaConnectionError as err:
            if conn.key_error is not None:
                raise conn.key_error from None
            if not conn.closed_by_device or isinstance(err, ClosedEarly):
                raise
            suspect = conn.needs_session and not conn.reset_by_device and conn.frames_in == 0
            raise ClosedEarly(
                f"the device closed the connection before answering ({err})", key_suspect=suspect
            ) from None

    def _on_conn_closed(self, conn: TuyaConnection, reason: TuyaError) -> None:
        """The connection ended (device, error or us): fail waiters, schedule the cleanup."""
        for waiter in self._set_waiters:
            waiter.fail(reason)
        if conn is self._conn and self.connected:
            self._cleanup = asyncio.get_running_loop().create_task(self._drop(reason))

    async def _drop(self, reason: TuyaError) -> None:
        """Close the connection, stop the keep-alive, and report the disconnection."""
        was_connected = self.connected
        self._connected.clear()
        conn, self._conn = self._conn, None
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if conn is not None:
            now = asyncio.get_running_loop().time()
            self._session = (conn.opened_at, now, conn.closed_by_device)
            self._bad_frames_closed += conn.bad_frames
            await conn.close(reason)
        self._disconnected.set()
        if was_connected:
            _LOGGER.debug("disconnected from %s: %s", self.device_id, reason)
            self._notify_connection(False)

    async def _supervise(self) -> None:
        """Keep the device connected: reconnect with :class:`Backoff` pacing, classify failures."""
        loop = asyncio.get_running_loop()
        while not self._closing:
            if self.connected:
                await self._disconnected.wait()
                busy = self._session_ended()
                if busy is not None:
                    self._report_failure(busy)
                    await self._pause(polite=True)
                continue
            self._wake.clear()
            started = loop.time()
            try:
                await self._open(background=True)
            except TuyaError as err:
                # the public class: busy after early closes in a row; counts version suspicion
                err = self._failures.classify(
                    err, version_suspect=self.auto_version and self._accepted
                )
                self._report_failure(err)
                await self._pause(polite=isinstance(err, TuyaBusyError), started=started)

    def _session_ended(self) -> TuyaBusyError | None:
        """After a session ended; a TuyaBusyError when it was an early drop too many."""
        session, self._session = self._session, None
        if session is None:
            return None
        opened, closed, by_device = session
        return self._failures.session_ended(opened, closed, by_device=by_device)

    def _report_failure(self, err: TuyaError) -> None:
        _LOGGER.debug("connection to %s failed: %s", self.device_id, err)
        self._failures.record(err)
        for failure_callback in list(self._failure_callbacks):
            try:
                failure_callback(err)
            except Exception:
                _LOGGER.exception("error in a failure callback")

    async def _pause(self, *, polite: bool, started: float | None = None) -> None:
        """Wait before the next attempt: backoff (cut short by :meth:`wake`) or polite."""
        loop = asyncio.get_running_loop()
        delay = self._backoff.next_delay(polite=polite)
        if started is not None and not polite:
            delay -= loop.time() - started  # attempts start every `delay` s, however long
        event = self._moved if polite else self._wake
        if delay > 0 and not event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await event.wait()
        self._moved.clear()

    def _deliver_dps(self, dps: dict[str, Any], pushed: bool) -> None:
        """Apply DPS in the order the connection read them; tell waiters and callbacks of pushes."""
        self.dps.update(dps)
        if not pushed:
            return  # an answer: its requester takes it from here
        for waiter in self._set_waiters:
            waiter.push(dps)
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
        """Liveness: heartbeat after ``heartbeat_interval`` s of silence; UPDATEDPS refreshes.

        Any frame from the device resets the silence timer. A device silent for
        ``heartbeat_interval`` + :data:`LIVENESS_GRACE` seconds is dropped. A device that talks
        (pushes) still gets a heartbeat every ``2 * heartbeat_interval`` s: it closes
        connections on which it received nothing for ~30 s (spec §4).
        """
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.refresh_interval
        try:
            while not conn.closed:
                now = loop.time()
                # heard nothing for an interval, or sent nothing for two (the device's idle timer)
                due = (
                    min(
                        conn.last_rx + self.heartbeat_interval,
                        conn.last_tx + 2 * self.heartbeat_interval,
                    )
                    - now
                )
                if self.refresh_interval:
                    due = min(due, next_refresh - now)
                if due > 0:
                    await asyncio.sleep(due)
                    continue
                if self.refresh_interval and now >= next_refresh:
                    next_refresh = now + self.refresh_interval
                    cmd, payload = updatedps_request(self.refresh_dps)
                    with contextlib.suppress(TuyaTimeoutError):  # silence is judged below
                        await conn.request(
                            cmd,
                            payload,
                            frozenset({Command.UPDATEDPS, Command.STATUS}),
                            wait=LIVENESS_GRACE,
                        )
                    continue
                await self._check_alive(conn)
        except TuyaError as err:
            _LOGGER.debug("keep-alive to %s failed: %s", self.device_id, err)
            await self._drop(err)

    async def _check_alive(self, conn: TuyaConnection) -> None:
        """Nothing heard for a heartbeat interval: a heartbeat, then a status query.

        Raises:
            TuyaTimeoutError: neither was answered and nothing else arrived.

        """
        heard = conn.last_rx
        half = LIVENESS_GRACE / 2
        if not self.ignores_heartbeat:
            cmd, payload = heartbeat_request(self.device_id)
            try:
                await conn.request(cmd, payload, frozenset({Command.HEART_BEAT}), wait=half)
                return
            except TuyaTimeoutError:
                if conn.last_rx > heard:
                    return
        try:
            await self._query_status(conn, half)
        except TuyaTimeoutError:
            if conn.last_rx > heard:
                return
            silent = asyncio.get_running_loop().time() - heard
            raise TuyaTimeoutError(f"the device was silent for {silent:.1f} s") from None
        if not self.ignores_heartbeat:
            _LOGGER.debug("%s ignores heartbeats; status queries keep it alive", self.device_id)
            self.ignores_heartbeat = True

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
            cmd, payload = status_request(conn.version, self.device_id)
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
        # The answer's DPS reached self.dps when it was read (_deliver_dps), before any push read
        # behind it and before this coroutine resumed: a newer push is not undone. Parsed here
        # again only to raise on a malformed answer.
        extract_dps(msg.json())
        return dict(self.dps)


_MISSING = object()


def _dp_sort(dp_id: str) -> tuple[int, int, str]:
    """Sort key of DP ids: plain ASCII numbers by value, any other id (e.g. "²") after them."""
    if dp_id.isascii() and dp_id.isdigit():
        return (0, int(dp_id), dp_id)
    return (1, 0, dp_id)
