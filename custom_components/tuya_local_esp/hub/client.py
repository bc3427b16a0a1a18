"""Asyncio client of one ESP32 hub (``docs/hub-protocol.md``).

One job: keep Home Assistant's view of one hub. :class:`HubClient` opens connections
(:mod:`.connection`), keeps the inventory current from pushes, delivers state pushes to
subscribers, offers the requests of §7.3, judges the hub's liveness from every record it sends
(a ping only after a few seconds of silence; a hub silent for :data:`SILENCE_TIMEOUT` seconds is
dropped, §8), gives it HA's clock after every ``hello`` and hourly, and (after
:meth:`HubClient.start`) reconnects by itself, paced by the shared
:class:`~custom_components.tuya_local_esp.tuya.backoff.Backoff`, telling its subscribers about
every failed attempt. Every wait is bounded by a timeout; every task it starts is owned by the
client or by a connection and ends with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..tuya.backoff import Backoff
from .connection import HubConnection, PendingRequest, open_connection
from .errors import (
    HubAuthError,
    HubBusyError,
    HubCommandError,
    HubConnectionError,
    HubError,
    HubProtocolError,
    HubTimeoutError,
)
from .models import (
    HubHealth,
    HubInfo,
    HubMessage,
    HubNotice,
    HubTime,
    Inventory,
    PlugState,
    Removed,
    StateUpdate,
    apply_state,
    build_inventory,
    offline,
    parse_health,
    parse_hub_info,
    parse_message,
    parse_reply_object,
    parse_set_result,
    parse_time_result,
    replace_plugs,
)
from .protocol import DEFAULT_PORT

_LOGGER = logging.getLogger(__name__)

type StateCallback = Callable[[StateUpdate], None]
type ConnectionCallback = Callable[[bool], None]
type FailureCallback = Callable[[HubError], None]

STABLE_AFTER: Final = 30.0
"""A connection that lasted this long (s) ends the outage: the next attempt starts at once."""

PING_AFTER: Final = 4.0
"""Seconds without receiving anything after which the client pings the hub (§8)."""
SILENCE_TIMEOUT: Final = 10.0
"""Seconds without receiving anything after which the hub is taken for gone (§8)."""
PING_INTERVAL: Final = 30.0
"""Longest time (s) without sending anything: the hub drops a client silent for 90 s (§8)."""
LONG_REQUESTS: Final = frozenset({"set", "remove"})
"""Requests the hub works on for seconds (it waits on a plug); while one is pending the hub
may stop reading (two such requests at a time, hub-wide), so the silence limit is stretched to
that request's own timeout."""

# Backoff defaults of the shared policy (tuya/backoff.py); ``backoff_max`` caps them.
_FIRST, _STEADY, _SLOW, _POLITE = 0.25, 2.0, 30.0, 15.0


class HubClient:
    """Client of one hub.

    ``secret`` is the shared hub secret (``str`` or ``bytes``; never logged). ``timeout``
    bounds every request in seconds (a ``set_dps`` may take up to ~13 s on the hub, so keep it
    above that); ``connect_timeout`` bounds TCP connect, handshake and the first inventory;
    ``time_interval`` is the period of the ``time`` request (HUB-ADDITIONS 1: after every
    ``hello`` and hourly).

    Liveness (§8): every record from the hub counts as a sign of life. After ``ping_after``
    seconds without one, or ``ping_interval`` seconds without sending anything (the hub's idle
    timer), the client pings; when nothing at all arrived for ``silence_timeout`` seconds
    (stretched to a pending ``set``/``remove``'s own ``timeout``, :data:`LONG_REQUESTS`), or a
    ping is not answered within ``timeout``, the connection is dropped and reconnected.

    Use :meth:`connect` for one attempt, or :meth:`start` to keep a connection up in the
    background. Reconnection follows :class:`~..tuya.backoff.Backoff` (0.25 s doubling to 2 s,
    30 s after 10 minutes of failure, 15 s when the hub is ``busy``), every delay capped by
    ``backoff_max`` seconds.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        secret: str | bytes = b"",
        *,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        ping_interval: float = PING_INTERVAL,
        backoff_max: float = 60.0,
        time_interval: float = 3600.0,
        ping_after: float = PING_AFTER,
        silence_timeout: float = SILENCE_TIMEOUT,
    ) -> None:
        """Configure the client; nothing is opened until :meth:`connect` or :meth:`start`.

        Raises ``ValueError`` for an empty secret or a ``backoff_max`` that is not positive.
        """
        if not secret:
            raise ValueError("hub secret must not be empty")
        self.host = host
        self.port = port
        self._secret = secret
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.ping_after = ping_after
        self.silence_timeout = silence_timeout
        self.time_interval = time_interval
        self._backoff = Backoff(first=_FIRST, steady=_STEADY, slow=_SLOW, polite=_POLITE)
        self._backoff_max = backoff_max
        self.backoff_max = backoff_max
        self._wake = asyncio.Event()
        self._conn: HubConnection | None = None
        self._inventory: Inventory | None = None
        self._staged: dict[str, PlugState] = {}
        self._inventory_lock = asyncio.Lock()
        self._state_cbs: dict[object, StateCallback] = {}
        self._conn_cbs: dict[object, ConnectionCallback] = {}
        self._failure_cbs: dict[object, FailureCallback] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._connected_event = asyncio.Event()
        self._closing = False
        self.last_error: HubError | None = None
        """The last failure of a connection attempt or of the connection (for diagnostics)."""
        self.time_source: str | None = None
        """Who set the hub clock, from the last ``time`` answer (``"ha"``/``"ntp"``)."""

    def __repr__(self) -> str:
        """Show the address only (never the secret)."""
        return f"HubClient({self.host!r}, {self.port})"

    # --- public state ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while an authenticated connection is up."""
        return self._conn is not None

    @property
    def busy(self) -> bool:
        """True while the last failure was the hub refusing us as one client too many."""
        return isinstance(self.last_error, HubBusyError)

    @property
    def inventory(self) -> Inventory | None:
        """Last inventory, kept current by pushes; ``None`` before the first connect."""
        return self._inventory

    @property
    def backoff_max(self) -> float:
        """Upper bound of every reconnection delay in seconds (settable)."""
        return self._backoff_max

    @backoff_max.setter
    def backoff_max(self, value: float) -> None:
        if value <= 0:
            raise ValueError("backoff_max must be positive")
        self._backoff_max = value
        b = self._backoff
        b.first, b.steady = min(_FIRST, value), min(_STEADY, value)
        b.slow, b.polite = min(_SLOW, value), min(_POLITE, value)

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(StateUpdate)`` on every state push.

        Returns a function that removes this subscription (calling it again does nothing).
        """
        return _add(self._state_cbs, callback)

    def subscribe_connection(self, callback: ConnectionCallback) -> Callable[[], None]:
        """Call ``callback(connected)`` when the connection goes up or down.

        Returns a function that removes this subscription (calling it again does nothing).
        """
        return _add(self._conn_cbs, callback)

    def subscribe_failure(self, callback: FailureCallback) -> Callable[[], None]:
        """Call ``callback(error)`` after every failed background connection attempt.

        ``error`` is what :meth:`connect` raised: :class:`HubAuthError` only when the hub
        refused our secret (its handshake proof did not match, §4), :class:`HubBusyError` when
        it serves as many clients as it can, otherwise a connection, timeout or protocol error.
        Called right after the attempt, before the backoff wait.

        Returns a function that removes this subscription (calling it again does nothing).
        """
        return _add(self._failure_cbs, callback)

    def wake(self) -> None:
        """The hub was heard on the LAN (DHCP): if the supervisor is waiting, retry now."""
        self._wake.set()

    # --- connection management ---------------------------------------------------------------
    async def connect(self) -> Inventory:
        """Open a connection, authenticate and return the hub's inventory.

        Closes the current connection first, if any. Right after the ``hello`` the hub gets
        HA's clock (``time`` request, written before any other request).

        Raises :class:`HubConnectionError` (TCP, or refused), :class:`HubBusyError` (too many
        clients), :class:`HubAuthError` (wrong secret), :class:`HubProtocolError` (framing,
        version, malformed inventory), :class:`HubTimeoutError`.
        """
        if self._conn is not None:
            await self._conn.close()
        label = f"{self.host}:{self.port}"
        conn: HubConnection | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                conn = await open_connection(self.host, self.port, self._secret)
                staged: dict[str, PlugState] = {}
                while not isinstance(info := parse_message(await conn.recv()), HubInfo):
                    if isinstance(info, HubNotice):
                        # §7.2: the hub is about to close the connection
                        self._on_notice(info)
                        raise HubConnectionError(
                            f"hub refused the connection: {info.err} ({info.msg})"
                        )
                    self._stage(staged, info)
                inventory = build_inventory(info, staged)
        except TimeoutError as err:
            if conn is not None:
                conn.abort()
            raise HubTimeoutError(f"no answer from hub {label}") from err
        except BaseException:
            if conn is not None:
                conn.abort()
            raise
        self._inventory = inventory
        self._staged = {}
        self._conn = conn
        conn.start(self._on_message, self._on_closed)
        first_time = conn.send("time", parse_time_result, time=int(time.time()))
        conn.spawn(self._clock(conn, first_time), f"hub {label} clock")
        conn.spawn(self._keep_alive(conn), f"hub {label} keep-alive")
        self._connected_event.set()
        _LOGGER.debug("connected to hub %s at %s", inventory.hub_id, label)
        self._notify_connection(True)
        return inventory

    async def start(self) -> None:
        """Keep a connection up in the background until :meth:`close`; returns at once.

        A wrong secret is retried too (it may be fixed on the hub), with the same backoff;
        the last failure is kept in :attr:`last_error`.
        """
        if self._supervisor is None:
            self._closing = False
            self._supervisor = asyncio.create_task(self._supervise(), name=f"hub {self.host}")

    async def wait_connected(self, within: float | None = None) -> Inventory:
        """Wait until connected (after :meth:`start`); return the inventory.

        Waits at most ``within`` seconds (default :attr:`timeout`), then raises
        :class:`HubTimeoutError`.
        """
        try:
            async with asyncio.timeout(self.timeout if within is None else within):
                await self._connected_event.wait()
        except TimeoutError as err:
            raise HubTimeoutError("hub not connected") from err
        assert self._inventory is not None
        return self._inventory

    async def close(self) -> None:
        """Stop reconnecting and close the connection; nothing of this client keeps running."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            # wait() never raises: a cancellation of the caller itself is not swallowed
            await asyncio.wait({self._supervisor})
            self._supervisor = None
        if self._conn is not None:
            await self._conn.close()

    async def _supervise(self) -> None:
        """Connect, wait for the connection to end, back off, repeat (until :meth:`close`)."""
        while not self._closing:
            conn = self._conn
            if conn is None:
                try:
                    conn = await self._connect_once()
                except Exception:
                    # a bug, not a hub failure: log it and keep pacing instead of spinning
                    _LOGGER.exception(
                        "hub %s:%d: unexpected error while connecting", self.host, self.port
                    )
            if conn is not None:
                since = time.monotonic()
                await conn.wait_closed()
                if self._conn is not None:
                    continue  # replaced by a direct connect(): watch that one
                if time.monotonic() - since >= STABLE_AFTER:
                    self._backoff.reset()
                    continue
            await self._backoff.wait(self._wake, polite=self.busy)

    async def _connect_once(self) -> HubConnection | None:
        try:
            await self.connect()
        except HubError as err:
            self.last_error = err
            _LOGGER.debug("hub %s:%d connect failed: %s", self.host, self.port, err)
            for cb in list(self._failure_cbs.values()):
                try:
                    cb(err)
                except Exception:
                    _LOGGER.exception("hub failure callback failed")
            return None
        return self._conn

    async def _keep_alive(self, conn: HubConnection) -> None:
        """Owned by ``conn``: ping when the hub was quiet, drop it when it stays silent (§8).

        Raises :class:`HubTimeoutError` (silent, or the ping unanswered), which ends the
        connection (:meth:`HubConnection.spawn`); the supervisor reconnects.
        """
        loop = asyncio.get_running_loop()
        while True:
            due = min(conn.last_rx + self.ping_after, conn.last_tx + self.ping_interval)
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await conn.wait(
                    conn.send("ping", parse_reply_object),
                    self.timeout,
                    gone_at=lambda: self._gone_at(conn),
                )
            except HubCommandError:
                pass  # it answered: alive
            except HubError as err:
                _LOGGER.debug("hub %s ping failed: %s", self.host, err)
                raise

    def _gone_at(self, conn: HubConnection) -> float:
        """Event-loop time at which the hub of ``conn`` counts as gone.

        ``silence_timeout`` after its last record, or later while a :data:`LONG_REQUESTS`
        request waits (then that request's own ``timeout`` decides).
        """
        gone = conn.last_rx + self.silence_timeout
        if (long := conn.oldest_pending(LONG_REQUESTS)) is not None:
            gone = max(gone, long.sent + self.timeout)
        return gone

    async def _clock(self, conn: HubConnection, first: PendingRequest[HubTime]) -> None:
        """Owned by ``conn``: HA's clock right after the hello, then every ``time_interval``.

        Runs beside the keep-alive, so a slow or missing ``time`` answer delays no ping.
        """
        await self._time_answer(conn, first)
        while True:
            await asyncio.sleep(self.time_interval)
            await self._time_answer(
                conn, conn.send("time", parse_time_result, time=int(time.time()))
            )

    async def _time_answer(self, conn: HubConnection, pending: PendingRequest[HubTime]) -> None:
        """Wait for a ``time`` answer; failures are logged at debug only (HUB-ADDITIONS 1)."""
        try:
            answer = await conn.wait(pending, self.timeout)
        except (HubCommandError, HubTimeoutError) as err:
            _LOGGER.debug("hub %s did not take our clock: %s", self.host, err)
            return
        # other errors: the connection ended (a malformed answer ends it in the read loop)
        except HubError:
            return
        self.time_source = answer.source
        _LOGGER.debug("hub %s clock %d (set by %s)", self.host, answer.time, answer.source)

    def _on_closed(self, conn: HubConnection, error: HubError | None) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        self._connected_event.clear()
        if error is not None:
            self.last_error = error
            _LOGGER.debug("hub %s connection lost: %s", self.host, error)
        if self._inventory is not None:
            plugs = {k: offline(v) for k, v in self._inventory.plugs.items()}
            self._inventory = replace_plugs(self._inventory, plugs)
        self._notify_connection(False)

    def _notify_connection(self, up: bool) -> None:
        for cb in list(self._conn_cbs.values()):
            try:
                cb(up)
            except Exception:
                _LOGGER.exception("hub connection callback failed")

    # --- incoming messages -------------------------------------------------------------------
    @staticmethod
    def _stage(plugs: dict[str, PlugState], message: HubMessage) -> None:
        """Apply a message to an inventory being collected (before ``hello``, §7.1)."""
        if isinstance(message, PlugState):
            plugs[message.device_id] = message
        elif isinstance(message, StateUpdate):
            if (old := plugs.get(message.device_id)) is not None:
                plugs[message.device_id] = apply_state(old, message)
        elif isinstance(message, Removed):
            plugs.pop(message.device_id, None)

    def _on_notice(self, notice: HubNotice) -> None:
        _LOGGER.warning("hub %s reported %s: %s", self.host, notice.err, notice.msg)
        if notice.err == "busy":
            raise HubBusyError(f"hub busy: {notice.msg}")

    def _on_message(self, message: HubMessage) -> None:
        """Handle one checked message of the read loop (results are matched there)."""
        if isinstance(message, HubNotice):
            self._on_notice(message)
            return
        if isinstance(message, HubInfo):
            _LOGGER.debug("hub %s: ignoring a hello outside the handshake", self.host)
            return
        # Plugs/removals: snapshots of an inventory being sent, or changes by any client.
        self._stage(self._staged, message)
        inv = self._inventory
        if inv is not None:
            plugs = dict(inv.plugs)
            self._stage(plugs, message)
            self._inventory = replace_plugs(inv, plugs)
        if isinstance(message, StateUpdate):
            for cb in list(self._state_cbs.values()):
                try:
                    cb(message)
                except Exception:
                    _LOGGER.exception("hub state callback failed")

    # --- requests ----------------------------------------------------------------------------
    async def refresh_inventory(self) -> Inventory:
        """Ask the hub for its inventory again; returns it (also kept in :attr:`inventory`).

        The inventory returned includes pushes read after the result (a ``state`` push the
        hub sent right behind its answer is newer than the answer, never undone by it).

        Raises :class:`HubTimeoutError`, :class:`HubConnectionError`, or
        :class:`HubProtocolError` (malformed, or the plug count does not match: the
        connection is closed too, §7.1).
        """
        async with self._inventory_lock:
            self._staged = {}

            def parse(data: object) -> Inventory:
                # Runs in the read loop, after the "plug" messages that precede the result:
                # kept at once, so pushes read before this coroutine resumes apply on top.
                info = parse_hub_info(data, "inventory result")
                self._inventory = build_inventory(info, self._staged)
                self._staged = {}
                return self._inventory

            await self.request("inventory", parse)
            assert self._inventory is not None
            # the inventory as of now: it includes pushes that came after the result
            return self._inventory

    async def set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        """Set DPs of a plug; return the values the plug confirmed (DP id -> value).

        Waits for the plug's ACK and STATUS through the hub. Raises :class:`HubCommandError`
        (``unknown_device``, ``offline``, ``timeout``, ``device_error``, ``bad_request``,
        ``busy``, ``no_time`` while the hub clock is not set),
        :class:`HubTimeoutError`, :class:`HubConnectionError`, :class:`HubProtocolError`.
        """
        dps = {str(k): v for k, v in dps.items()}
        confirmed: dict[str, Any] = await self.request(
            "set", parse_set_result, id=device_id, dps=dps
        )
        return confirmed

    async def add_plug(
        self,
        device_id: str,
        local_key: str,
        host: str,
        *,
        version: str = "3.3",
        name: str | None = None,
        port: int = 6668,
        refresh: Sequence[int] | None = None,
        dps: Sequence[str] | None = None,
    ) -> None:
        """Add a plug to the hub (persisted on its flash); the hub connects to it at once.

        ``host`` must be an IPv4 address, ``local_key`` the 16-character local key. The plug's
        profile (hub-protocol §7.3), both optional: ``refresh``, the DP ids (1…255, at most
        32) the hub re-requests with UPDATEDPS (spec §2.9; ``None``: the hub's default 18,
        19, 20; empty: none), and ``dps``, every DP id (strings) the profile uses, which the
        hub queries on a "device22" plug (spec §2.10).
        Raises :class:`HubCommandError` (``exists``, ``limit`` when the hub's socket budget
        is used up, ``bad_request``, ``storage``), :class:`HubTimeoutError`,
        :class:`HubConnectionError`.
        """
        plug: dict[str, Any] = {
            "id": device_id,
            "key": local_key,
            "host": host,
            "port": port,
            "ver": version,
            "name": name or device_id,
        }
        if refresh is not None:
            plug["refresh"] = list(refresh)
        if dps is not None:
            plug["dps"] = list(dps)
        await self.request("add", parse_reply_object, plug=plug)

    async def remove_plug(self, device_id: str) -> None:
        """Remove a plug from the hub (persisted on its flash; the hub closes its connection).

        Raises :class:`HubCommandError` (``unknown_device``, ``storage``),
        :class:`HubTimeoutError`, :class:`HubConnectionError`.
        """
        await self.request("remove", parse_reply_object, id=device_id)

    async def set_plug_host(self, device_id: str, host: str) -> None:
        """Tell the hub that plug ``device_id`` now answers at IPv4 address ``host``.

        The hub stores it and reconnects to the plug at once (``host`` request, §7.3); the
        same host is a no-op. Raises :class:`HubCommandError` (``unknown_device``,
        ``bad_request`` for a host that is not an IPv4 address, ``storage``,
        ``unknown_type`` from a firmware without this request), :class:`HubTimeoutError`,
        :class:`HubConnectionError`.
        """
        await self.request("host", parse_reply_object, id=device_id, host=host)

    async def set_plug_profile(
        self,
        device_id: str,
        refresh: Sequence[int] | None,
        dps: Sequence[str] | None,
    ) -> None:
        """Give plug ``device_id`` a new profile without its local key (``profile``, §7.3).

        The lists are those of :meth:`add_plug`: ``refresh``, the DP ids (ints 1…255, at most
        32) the hub re-requests with UPDATEDPS (spec §2.9; ``None``: the hub's default 18, 19,
        20; empty: none), and ``dps``, every DP id (decimal strings) the profile uses, which
        the hub queries on a "device22" plug (spec §2.10; ``None``: the hub's default). The
        hub stores them on its flash and uses them at once without reconnecting to the plug
        (firmware 0.2.1 and later); the same lists change nothing. Raises
        :class:`HubCommandError` (``unknown_device``, ``bad_request`` for a malformed list,
        ``storage``, ``unknown_type`` from a firmware without this request),
        :class:`HubTimeoutError`, :class:`HubConnectionError`.
        """
        fields: dict[str, Any] = {}
        if refresh is not None:
            fields["refresh"] = list(refresh)
        if dps is not None:
            fields["dps"] = list(dps)
        await self.request("profile", parse_reply_object, id=device_id, **fields)

    async def sync_time(self, now: int | None = None) -> HubTime:
        """Give the hub our clock now (``time`` request, §7.3); return its clock and source.

        ``now`` in Unix seconds, default this host's clock. The client already does this after
        every ``hello`` and every :attr:`time_interval` seconds. Raises
        :class:`HubCommandError` (``bad_request`` for a time before 2023-11-14),
        :class:`HubTimeoutError`, :class:`HubConnectionError`.
        """
        answer: HubTime = await self.request(
            "time", parse_time_result, time=int(time.time()) if now is None else now
        )
        self.time_source = answer.source
        return answer

    async def ping(self) -> float:
        """Ping the hub; return the round trip in seconds.

        Raises :class:`HubTimeoutError` (no pong within :attr:`timeout`) or
        :class:`HubConnectionError`.
        """
        start = time.monotonic()
        await self.request("ping", parse_reply_object)
        return time.monotonic() - start

    async def health(self) -> HubHealth:
        """Hub health snapshot (heap, uptime, RSSI, plug and client counts, clock, reset cause).

        Raises :class:`HubTimeoutError`, :class:`HubConnectionError`, or
        :class:`HubProtocolError` for a malformed reply (the connection is closed too).
        """
        health: HubHealth = await self.request("health", parse_health)
        return health

    async def request(self, kind: str, parse: Callable[[object], Any], **fields: Any) -> Any:
        """Send request ``kind`` with ``fields`` (hub-protocol §7.3); return ``parse(data)``.

        The one request path of the client: the methods above use it, and so do requests
        without a method here (the firmware update of :mod:`.update`). Raises
        :class:`HubCommandError` (the hub's error code), :class:`HubTimeoutError`,
        :class:`HubConnectionError` (also when not connected), :class:`HubProtocolError` (from
        ``parse``).
        """
        conn = self._conn
        if conn is None:
            raise HubConnectionError("not connected to the hub")
        return await conn.request(kind, parse, self.timeout, **fields)


def _add[C](callbacks: dict[object, C], callback: C) -> Callable[[], None]:
    token = object()
    callbacks[token] = callback

    def unsubscribe() -> None:
        callbacks.pop(token, None)

    return unsubscribe


__all__ = [
    "HubAuthError",
    "HubBusyError",
    "HubClient",
    "HubCommandError",
    "HubConnectionError",
    "HubError",
    "HubHealth",
    "HubProtocolError",
    "HubTimeoutError",
    "Inventory",
    "PlugState",
    "StateUpdate",
]
