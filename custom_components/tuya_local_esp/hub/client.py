"""Asyncio client for the ESP32 hub (``docs/hub-protocol.md``).

:class:`HubClient` keeps one authenticated connection to the hub: it performs the handshake,
receives the inventory, delivers state pushes to subscribers, matches request ids to results,
pings the hub, and (after :meth:`HubClient.start`) reconnects by itself with exponential
backoff. Every wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from .connection import Connection, handshake
from .errors import (
    HubAuthError,
    HubCommandError,
    HubConnectionError,
    HubError,
    HubProtocolError,
    HubTimeoutError,
)
from .models import (
    HubHealth,
    Inventory,
    PlugState,
    StateUpdate,
    apply_state,
    offline,
    parse_inventory,
    parse_plug,
    replace_plugs,
)
from .protocol import DEFAULT_PORT, JsonObject

_LOGGER = logging.getLogger(__name__)

type StateCallback = Callable[[StateUpdate], None]
type ConnectionCallback = Callable[[bool], None]


class HubClient:
    """Client of one hub.

    ``secret`` is the shared hub secret (``str`` or ``bytes``; never logged). ``timeout``
    bounds every request in seconds (a ``set_dps`` may take up to ~13 s on the hub, so keep it
    above that); ``connect_timeout`` bounds TCP connect plus handshake.

    Use :meth:`connect` for one attempt, or :meth:`start` to keep a connection up in the
    background (reconnecting with exponential backoff up to ``backoff_max`` seconds).
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        secret: str | bytes = b"",
        *,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        ping_interval: float = 30.0,
        backoff_max: float = 60.0,
    ) -> None:
        """Configure the client; nothing is opened until :meth:`connect` or :meth:`start`."""
        if not secret:
            raise ValueError("hub secret must not be empty")
        self.host = host
        self.port = port
        self._secret = secret
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.backoff_max = backoff_max
        self._conn: Connection | None = None
        self._inventory: Inventory | None = None
        self._staged: dict[str, PlugState] = {}
        self._next_rid = 1
        self._pending: dict[int, asyncio.Future[JsonObject]] = {}
        self._state_cbs: list[StateCallback] = []
        self._conn_cbs: list[ConnectionCallback] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._connected_event = asyncio.Event()
        self._closing = False
        self.last_error: HubError | None = None

    def __repr__(self) -> str:
        """Show the address only (never the secret)."""
        return f"HubClient({self.host!r}, {self.port})"

    # --- public state ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while an authenticated connection is up."""
        return self._conn is not None

    @property
    def inventory(self) -> Inventory | None:
        """Last inventory, kept current by state pushes; ``None`` before the first connect."""
        return self._inventory

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(StateUpdate)`` on every state push; returns an unsubscribe function."""
        self._state_cbs.append(callback)
        return lambda: self._state_cbs.remove(callback) if callback in self._state_cbs else None

    def subscribe_connection(self, callback: ConnectionCallback) -> Callable[[], None]:
        """Call ``callback(connected)`` when the connection goes up or down."""
        self._conn_cbs.append(callback)
        return lambda: self._conn_cbs.remove(callback) if callback in self._conn_cbs else None

    # --- connection management ---------------------------------------------------------------
    async def connect(self) -> Inventory:
        """Open the connection, authenticate and return the hub's inventory.

        Raises :class:`HubConnectionError` (TCP), :class:`HubAuthError` (wrong secret),
        :class:`HubProtocolError` (framing/version), :class:`HubTimeoutError`.
        """
        if self._conn is not None:
            await self._drop(None)
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                try:
                    conn = await handshake(reader, writer, self._secret)
                    staged: dict[str, PlugState] = {}
                    while (hello := await conn.recv()).get("t") != "hello":
                        if hello.get("t") == "error":
                            raise HubConnectionError(
                                f"hub refused the connection: {hello.get('err')} "
                                f"({hello.get('msg')})"
                            )
                        self._stage(staged, hello)
                except BaseException:
                    writer.close()
                    raise
        except TimeoutError as err:
            raise HubTimeoutError(f"no answer from hub {self.host}:{self.port}") from err
        except OSError as err:
            raise HubConnectionError(f"cannot connect to {self.host}:{self.port}: {err}") from err
        try:
            inventory = parse_inventory(hello, staged)
        except HubProtocolError:
            await conn.close()
            raise
        self._inventory = inventory
        self._conn = conn
        conn.task = asyncio.create_task(self._read_loop(conn), name=f"hub {self.host} reader")
        self._connected_event.set()
        _LOGGER.debug("connected to hub %s at %s:%d", inventory.hub_id, self.host, self.port)
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
        """Stop reconnecting and close the connection."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._drop(None)

    async def _supervise(self) -> None:
        backoff = 1.0
        while not self._closing:
            if self._conn is None:
                try:
                    await self.connect()
                    backoff = 1.0
                except HubError as err:
                    self.last_error = err
                    _LOGGER.debug("hub %s:%d connect failed: %s", self.host, self.port, err)
                    await asyncio.sleep(backoff * (1 + random.random() / 4))
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
            conn = self._conn
            assert conn is not None
            assert conn.task is not None
            # Wait for the reader to end, pinging meanwhile.
            while not conn.task.done():
                done, _ = await asyncio.wait({conn.task}, timeout=self.ping_interval)
                if done:
                    break
                try:
                    await self.ping()
                except HubError as err:
                    _LOGGER.debug("hub %s ping failed: %s", self.host, err)
                    await self._drop(err)
                    break

    async def _read_loop(self, conn: Connection) -> None:
        error: HubError | None = None
        try:
            while True:
                self._handle(await conn.recv())
        except asyncio.CancelledError:
            raise
        except HubError as err:
            error = err
        except (OSError, ConnectionError) as err:
            error = HubConnectionError(str(err))
        if self._conn is conn:
            _LOGGER.debug("hub %s connection lost: %s", self.host, error)
            await self._drop(error)

    async def _drop(self, error: HubError | None) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._connected_event.clear()
        if error is not None:
            self.last_error = error
        exc: HubError = error if error is not None else HubConnectionError("connection closed")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(
                    exc if isinstance(exc, HubConnectionError) else HubConnectionError(str(exc))
                )
        self._pending.clear()
        if conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()
            # wait for the reader to finish, so that nothing lingers after close(); wait()
            # never raises, so a cancellation of the caller itself is not swallowed
            await asyncio.wait({conn.task})
        await conn.close()
        if self._inventory is not None:
            plugs = {k: offline(v) for k, v in self._inventory.plugs.items()}
            self._inventory = replace_plugs(self._inventory, plugs)
        self._notify_connection(False)

    def _notify_connection(self, up: bool) -> None:
        for cb in list(self._conn_cbs):
            try:
                cb(up)
            except Exception:
                _LOGGER.exception("hub connection callback failed")

    # --- incoming messages -------------------------------------------------------------------
    @staticmethod
    def _stage(staged: dict[str, PlugState], msg: JsonObject) -> None:
        """Apply a message received while an inventory is being collected."""
        kind = msg.get("t")
        try:
            if kind == "plug":
                plug = parse_plug(msg)
                staged[plug.device_id] = plug
            elif kind == "state" and (old := staged.get(str(msg["id"]))) is not None:
                staged[old.device_id] = apply_state(old, msg)
            elif kind == "removed":
                staged.pop(str(msg["id"]), None)
        except (KeyError, TypeError, ValueError) as err:
            raise HubProtocolError(f"malformed {kind} message: {err!r}") from err

    def _handle(self, msg: JsonObject) -> None:
        kind = msg.get("t")
        if kind in ("plug", "removed"):
            # Snapshots of an inventory being sent, or a plug added/removed (by any client).
            self._stage(self._staged, msg)
            if self._inventory is not None:
                plugs = dict(self._inventory.plugs)
                self._stage(plugs, msg)
                self._inventory = replace_plugs(self._inventory, plugs)
        elif kind == "result":
            fut = self._pending.pop(msg.get("rid", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "state":
            self._on_state(msg)
        elif kind == "error":
            _LOGGER.warning("hub %s reported %s: %s", self.host, msg.get("err"), msg.get("msg"))
            if msg.get("err") == "busy":
                raise HubConnectionError(f"hub busy: {msg.get('msg')}")
        else:
            _LOGGER.debug("ignoring hub message type %r", kind)

    def _on_state(self, msg: JsonObject) -> None:
        try:
            update = StateUpdate(
                device_id=str(msg["id"]),
                online=bool(msg.get("online", False)),
                dps=dict(msg.get("dps") or {}),
                timestamp=int(msg.get("ts") or 0),
            )
        except KeyError, TypeError, ValueError:
            _LOGGER.warning("malformed state push from hub %s", self.host)
            return
        if update.device_id in self._staged:
            self._staged[update.device_id] = apply_state(self._staged[update.device_id], msg)
        inv = self._inventory
        if inv is not None and update.device_id in inv.plugs:
            plugs = dict(inv.plugs)
            plugs[update.device_id] = apply_state(inv.plugs[update.device_id], msg)
            self._inventory = replace_plugs(inv, plugs)
        for cb in list(self._state_cbs):
            try:
                cb(update)
            except Exception:
                _LOGGER.exception("hub state callback failed")

    # --- requests ----------------------------------------------------------------------------
    async def _request(self, kind: str, **fields: Any) -> Any:
        conn = self._conn
        if conn is None:
            raise HubConnectionError("not connected to the hub")
        rid = self._next_rid
        self._next_rid = rid + 1 if rid < 0x3FFFFFFF else 1
        fut: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            conn.send({"t": kind, "rid": rid, **fields})
            async with asyncio.timeout(self.timeout):
                await conn.writer.drain()
                reply = await fut
        except TimeoutError as err:
            raise HubTimeoutError(f"hub did not answer {kind!r} in time") from err
        except (OSError, ConnectionError) as err:
            raise HubConnectionError(str(err)) from err
        finally:
            self._pending.pop(rid, None)
        if not reply.get("ok"):
            raise HubCommandError(str(reply.get("err", "unknown")), str(reply.get("msg", "")))
        return reply.get("data")

    async def refresh_inventory(self) -> Inventory:
        """Ask the hub for its inventory again; returns it (also kept in :attr:`inventory`).

        Raises :class:`HubTimeoutError`, :class:`HubConnectionError`, or
        :class:`HubProtocolError` when the plug count does not match.
        """
        self._staged = {}
        data = await self._request("inventory")
        # The hub sends one "plug" message per plug before the result (§7.1).
        self._inventory = parse_inventory(data, self._staged)
        self._staged = {}
        return self._inventory

    async def set_dps(self, device_id: str, dps: dict[str, Any]) -> dict[str, Any]:
        """Set DPs of a plug; return the values the plug confirmed (DP id -> value).

        Waits for the plug's ACK and STATUS through the hub. Raises :class:`HubCommandError`
        (``unknown_device``, ``offline``, ``timeout``, ``device_error``, ``bad_request``,
        ``busy``, ``no_time`` while the hub clock is not set),
        :class:`HubTimeoutError`, :class:`HubConnectionError`.
        """
        data = await self._request("set", id=device_id, dps={str(k): v for k, v in dps.items()})
        return dict(data.get("dps") or {})

    async def add_plug(
        self,
        device_id: str,
        local_key: str,
        host: str,
        *,
        version: str = "3.3",
        name: str | None = None,
        port: int = 6668,
    ) -> None:
        """Add a plug to the hub (persisted on its flash); the hub connects to it at once.

        ``host`` must be an IPv4 address, ``local_key`` the 16-character local key.
        Raises :class:`HubCommandError` (``exists``, ``limit`` when the hub's socket budget
        is used up, ``bad_request``, ``storage``).
        """
        await self._request(
            "add",
            plug={
                "id": device_id,
                "key": local_key,
                "host": host,
                "port": port,
                "ver": version,
                "name": name or device_id,
            },
        )

    async def remove_plug(self, device_id: str) -> None:
        """Remove a plug from the hub (persisted on its flash; the hub closes its connection).

        Raises :class:`HubCommandError` (``unknown_device``, ``storage``),
        :class:`HubTimeoutError`, :class:`HubConnectionError`.
        """
        await self._request("remove", id=device_id)

    async def ping(self) -> float:
        """Ping the hub; return the round trip in seconds.

        Raises :class:`HubTimeoutError` (no pong within :attr:`timeout`) or
        :class:`HubConnectionError`.
        """
        start = time.monotonic()
        await self._request("ping")
        return time.monotonic() - start

    async def health(self) -> HubHealth:
        """Hub health snapshot (heap, uptime, RSSI, plug and client counts).

        Raises :class:`HubTimeoutError`, :class:`HubConnectionError`, or
        :class:`HubProtocolError` for a malformed reply.
        """
        data = await self._request("health")
        try:
            return HubHealth(
                heap_free=int(data["heap_free"]),
                heap_alloc=int(data["heap_alloc"]),
                uptime_s=int(data["uptime_s"]),
                rssi=None if data.get("rssi") is None else int(data["rssi"]),
                plugs=int(data["plugs"]),
                plugs_online=int(data["plugs_online"]),
                clients=int(data["clients"]),
                time=int(data["time"]),
                time_synced=bool(data["time_synced"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise HubProtocolError(f"malformed health reply: {err!r}") from err


__all__ = [
    "HubAuthError",
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
