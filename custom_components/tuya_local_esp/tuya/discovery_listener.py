"""The asyncio UDP listener of Tuya LAN discovery: sockets, REQ_DEVINFO requests, callbacks.

Datagrams are decoded by the sans-I/O :mod:`.discovery` codec (spec §3 of
``../shared/docs/tuya-protocol.md``). No Home Assistant imports.

Typical use (one listener per process; see :class:`DiscoveryListener`)::

    listener = DiscoveryListener(on_device, only_changes=True)
    await listener.start()           # returns at once; ports in use are logged and skipped
    ...
    await listener.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .discovery import (
    DEFAULT_PORTS,
    DEFAULT_REQUEST_INTERVAL,
    DEFAULT_REQUEST_TARGET,
    PORT_APP,
    DiscoveredDevice,
    TuyaDiscoveryError,
    decode_discovery,
    encode_discovery_request,
)

_LOGGER = logging.getLogger(__name__)


def open_udp_socket(host: str, port: int, *, reuse: bool = True) -> socket.socket:
    """A non-blocking IPv4 UDP socket bound to ``host:port`` with SO_BROADCAST set.

    With ``reuse`` SO_REUSEADDR and (where available) SO_REUSEPORT are set, so that several
    listeners on one host (this one, tinytuya, localtuya, a simulator) can share 6666/6667/7000:
    broadcasts reach every socket; a *unicast* datagram reaches only one of them.

    Raises:
        OSError: the socket cannot be bound (e.g. port in use without SO_REUSEADDR, or < 1024
            without privileges).

    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def source_ip_for(target: str, port: int = PORT_APP) -> str | None:
    """The local IPv4 address the kernel would send from to reach ``target`` (no packet sent).

    Used to fill the ``ip`` of a REQ_DEVINFO request when the caller gives none. Returns None when
    there is no route or ``target`` is not a numeric IPv4 address (no DNS lookup is made).
    """
    try:
        ipaddress.IPv4Address(target)
    except ValueError:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.connect((target, port))
        addr = sock.getsockname()[0]
    except OSError:
        return None
    finally:
        sock.close()
    return addr if isinstance(addr, str) and addr != "0.0.0.0" else None


DiscoveryCallback = Callable[[DiscoveredDevice], None]


@dataclass(slots=True)
class SeenDevice:
    """What a :class:`DiscoveryListener` remembers about one device id.

    Attributes:
        device: the latest announcement.
        first_seen: ``time.monotonic()`` of the first packet, seconds.
        last_seen: ``time.monotonic()`` of the latest packet, seconds.
        packets: number of packets received from this device.

    """

    device: DiscoveredDevice
    first_seen: float
    last_seen: float
    packets: int = 1


@dataclass(slots=True)
class ListenerStats:
    """Packet counters of a :class:`DiscoveryListener` (for tests and diagnostics)."""

    received: int = 0
    devices: int = 0
    app_requests: int = 0
    invalid: int = 0
    requests_sent: int = 0
    send_errors: int = 0


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: DiscoveryListener, port: int) -> None:
        self._owner = owner
        self._port = port

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner._datagram(data, str(addr[0]), self._port)

    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("discovery socket on port %d: %s", self._port, exc)


class DiscoveryListener:
    """Listen for Tuya discovery packets and solicit silent 3.5 devices (spec §3).

    Binds one UDP socket per port in ``ports`` (default 6666, 6667, 7000) on ``bind_host`` with
    SO_REUSEADDR/SO_REUSEPORT/SO_BROADCAST. A port that cannot be bound (in use without
    SO_REUSEADDR, privileged, ...) is logged and skipped: :meth:`start` never raises for it. Every
    ``request_interval`` seconds (first at start) a REQ_DEVINFO request is sent to each address in
    ``request_targets`` from an extra ephemeral socket, so that silent 3.5 devices answer by
    unicast to ``client_ip``:7000.

    Callbacks run in the event loop, synchronously, with every valid device packet
    (``only_changes=False``) or only when a device is new or its ``(ip, version, product_key)``
    changed (``only_changes=True``; real devices broadcast every ~5 s). Exceptions raised by a
    callback are logged, never propagated. App requests (``"from": "app"``, including our own,
    looped back) and invalid datagrams are counted in :attr:`stats` and dropped.

    Sharing: broadcasts reach every socket bound to the port, but a *unicast* datagram (the answer
    of a silent 3.5 device) reaches only one socket of an SO_REUSEPORT group, so another program on
    this host bound to the wildcard address on 7000 (tinytuya's scanner, say) may take some
    answers. ``255.255.255.255`` leaves by the default route's interface only and fails
    (ENETUNREACH, counted in ``send_errors``) on a host without default route: prefer the subnet
    broadcast address of each interface. All ports are above 1024: no privileges needed.

    Args:
        callback: optional first subscriber (same as :meth:`subscribe`).
        bind_host: address to bind; ``"0.0.0.0"`` (default) is needed to receive broadcasts
            on Linux (a socket bound to a unicast address does not get them).
        ports: UDP ports to listen on; 0 picks a free port (see :attr:`bound_ports`).
        request_interval: seconds between REQ_DEVINFO requests; None disables them.
        request_targets: ``(address, port)`` pairs the requests go to (default
            ``255.255.255.255:7000``; pass the subnet broadcast addresses of the interfaces).
        client_ip: the ``ip`` written into requests (where answers go); None: for each target, the
            local address the kernel routes it from (:func:`source_ip_for`); a target without a
            route is skipped.
        only_changes: see above.

    """

    def __init__(
        self,
        callback: DiscoveryCallback | None = None,
        *,
        bind_host: str = "0.0.0.0",
        ports: Sequence[int] = DEFAULT_PORTS,
        request_interval: float | None = DEFAULT_REQUEST_INTERVAL,
        request_targets: Iterable[tuple[str, int]] = (DEFAULT_REQUEST_TARGET,),
        client_ip: str | None = None,
        only_changes: bool = False,
    ) -> None:
        self.bind_host = bind_host
        self.ports = tuple(ports)
        self.request_interval = request_interval
        self.request_targets = tuple(request_targets)
        self.client_ip = client_ip
        self.only_changes = only_changes
        self.stats = ListenerStats()
        self._callbacks: list[DiscoveryCallback] = [callback] if callback else []
        self._seen: dict[str, SeenDevice] = {}
        self._transports: list[asyncio.DatagramTransport] = []
        self._bound: list[int] = []
        self._unbound: list[int] = []
        self._sender: socket.socket | None = None
        self._requester: asyncio.Task[None] | None = None
        self._waiters: list[tuple[Callable[[DiscoveredDevice], bool], asyncio.Future[Any]]] = []
        self._started = False

    # ---------------------------------------------------------------- public API
    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started

    @property
    def bound_ports(self) -> list[int]:
        """The ports actually listened on (real numbers for ``0``), in ``ports`` order."""
        return list(self._bound)

    @property
    def unbound_ports(self) -> list[int]:
        """The requested ports the last :meth:`start` could not bind, in ``ports`` order.

        E.g. a port another program holds without SO_REUSEADDR.
        """
        return list(self._unbound)

    @property
    def devices(self) -> dict[str, SeenDevice]:
        """Copy of the devices seen so far, by device id (entries are never expired)."""
        return dict(self._seen)

    def subscribe(self, callback: DiscoveryCallback) -> Callable[[], None]:
        """Add a callback; returns a function that removes it again (idempotent)."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    async def start(self) -> None:
        """Bind the ports and start the periodic requests; returns at once.

        Never raises for a port that cannot be bound (logged at WARNING). Calling it again while
        running does nothing.
        """
        if self._started:
            return
        self._started = True
        self._unbound.clear()
        loop = asyncio.get_running_loop()
        for port in self.ports:
            try:
                sock = open_udp_socket(self.bind_host, port)
            except OSError as err:
                self._unbound.append(port)
                _LOGGER.warning(
                    "Tuya discovery: cannot listen on UDP %s:%d (%s); continuing without it",
                    self.bind_host,
                    port,
                    err.strerror or err,
                )
                continue
            real_port = int(sock.getsockname()[1])
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Endpoint, self, real_port), sock=sock
            )
            self._transports.append(transport)
            self._bound.append(real_port)
        if not self._bound:
            _LOGGER.error("Tuya discovery: no UDP port could be bound, listening for nothing")
        if self.request_interval is not None and self.request_targets:
            self.send_request()  # the first one at once, without blocking
            self._requester = asyncio.create_task(
                self._request_loop(self.request_interval), name="tuya discovery requests"
            )

    async def stop(self) -> None:
        """Close every socket and stop the requests (idempotent). Pending waiters are cancelled."""
        self._started = False
        task, self._requester = self._requester, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        self._bound.clear()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        for _, fut in self._waiters:
            fut.cancel()
        self._waiters.clear()

    def send_request(self) -> int:
        """Send one REQ_DEVINFO request to every target now; returns how many were sent.

        Send errors (no route, broadcast refused, a test harness blocking sockets) are logged at
        DEBUG and counted in :attr:`stats`; they are never raised.
        """
        sent = 0
        if self._sender is None:
            try:
                self._sender = open_udp_socket("0.0.0.0", 0, reuse=False)
            except OSError as err:  # pragma: no cover - ephemeral bind does not fail in practice
                _LOGGER.debug("Tuya discovery: no socket for requests: %s", err)
                self.stats.send_errors += 1
                return 0
        for address, port in self.request_targets:
            try:
                client_ip = self.client_ip or source_ip_for(address, port)
                if client_ip is None:
                    raise OSError(errno.ENETUNREACH, "no route to the request target")
                self._sender.sendto(encode_discovery_request(client_ip), (address, port))
            except Exception as err:  # a background sender must never raise
                self.stats.send_errors += 1
                _LOGGER.debug("Tuya discovery: request to %s:%d failed: %s", address, port, err)
                continue
            sent += 1
            self.stats.requests_sent += 1
        return sent

    async def wait_for(
        self, predicate: Callable[[DiscoveredDevice], bool] | str
    ) -> DiscoveredDevice:
        """Wait for the next announcement matching ``predicate`` (or this device id).

        Already-seen devices match at once. Wrap in ``asyncio.timeout``.

        Raises:
            asyncio.CancelledError: the listener was stopped meanwhile.

        """
        match: Callable[[DiscoveredDevice], bool]
        if isinstance(predicate, str):
            wanted = predicate
            match = lambda device: device.device_id == wanted  # noqa: E731
        else:
            match = predicate
        for seen in self._seen.values():
            if match(seen.device):
                return seen.device
        fut: asyncio.Future[DiscoveredDevice] = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.append(entry)
        try:
            return await fut
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    # ---------------------------------------------------------------- internals
    async def _request_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.send_request()

    def _datagram(self, data: bytes, source_ip: str, port: int) -> None:
        self.stats.received += 1
        try:
            device = decode_discovery(data, source_ip)
        except TuyaDiscoveryError as err:
            self.stats.invalid += 1
            _LOGGER.debug(
                "Tuya discovery: ignoring datagram from %s to port %d: %s", source_ip, port, err
            )
            return
        if device is None:
            self.stats.app_requests += 1
            return
        self.stats.devices += 1
        now = time.monotonic()
        seen = self._seen.get(device.device_id)
        changed = seen is None or seen.device.identity != device.identity
        if seen is None:
            self._seen[device.device_id] = SeenDevice(device, now, now)
        else:
            seen.device, seen.last_seen = device, now
            seen.packets += 1
        for match, fut in list(self._waiters):
            if not fut.done() and match(device):
                fut.set_result(device)
        if self.only_changes and not changed:
            return
        for callback in list(self._callbacks):
            try:
                callback(device)
            except Exception:
                _LOGGER.exception("Tuya discovery: error in callback %r", callback)


__all__ = [
    "DiscoveryCallback",
    "DiscoveryListener",
    "ListenerStats",
    "SeenDevice",
    "open_udp_socket",
    "source_ip_for",
]
