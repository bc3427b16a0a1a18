"""UDP discovery behaviour of simulated plugs: periodic broadcasts and the silent 3.5 answer.

Real plugs announce themselves on the LAN (``tuya-protocol.md`` §3 = "spec"): 3.1 every few seconds
to UDP 6666 in plaintext, 3.3/3.4 to 6667 with AES-ECB under the public UDP key, older 3.5 to 6667
with AES-GCM; newer 3.5 plugs stay silent until a client broadcasts REQ_DEVINFO 0x25 to UDP 7000
and then answer by unicast to the ``ip`` in that request, port 7000 (tinytuya issue #516).

:class:`PlugBroadcaster` adds that to one :class:`~tuya_sim.server.SimulatedPlug` without touching
its TCP server; packets are built by the simulator's own :mod:`tuya_sim.udp`. Broadcasting is
off unless a broadcaster is started (the CLI starts them with ``--broadcast ADDR`` / ``--silent``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from .server import SimulatedPlug
from .udp import (
    PORT_APP,
    PORT_ENCRYPTED,
    PORT_PLAIN,
    DiscoveryRequestError,
    decode_request,
    encode_broadcast,
    open_udp_socket,
    source_ip_for,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
_WILDCARDS = frozenset({"", "0.0.0.0"})


@dataclass(slots=True)
class BroadcastStats:
    """Counters of one broadcaster."""

    broadcasts: int = 0
    requests: int = 0
    answers: int = 0
    invalid: int = 0
    send_errors: int = 0


def product_key_for(device_id: str) -> str:
    """A stable, real-looking ``productKey`` (``key`` + 13 characters) derived from the id."""
    return "key" + hashlib.sha256(device_id.encode()).hexdigest()[:13]


class _RequestEndpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: PlugBroadcaster) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner.handle_request(data, str(addr[0]))


class PlugBroadcaster:
    """Discovery announcements of one simulated plug.

    Args:
        plug: the plug (its ``device_id``, ``version`` and ``host`` are announced).
        address: destination of the broadcasts (``255.255.255.255``, a subnet broadcast address,
            or ``127.255.255.255`` on Linux loopback).
        interval: seconds between broadcasts (the first is sent at :meth:`start`).
        port: destination port; default 6666 for 3.1 and 6667 otherwise (spec §3), whatever the
            ``port_plain``/``port_encrypted`` say.
        port_plain: port of 3.1 broadcasts when ``port`` is not given.
        port_encrypted: port of 3.2-3.5 broadcasts when ``port`` is not given.
        silent: newer 3.5 behaviour: no broadcasts; answer REQ_DEVINFO requests received on
            ``request_port`` by unicast to ``request ip``:``reply_port``.
        request_port: UDP port listened on in silent mode (0: any free one, see
            :attr:`request_port`).
        request_bind: address the request socket binds; default ``address``. Bound to the
            broadcast address it receives the broadcast requests but no unicast, so a discovery
            listener on the same host and port (Home Assistant next to the simulator) still gets
            every unicast answer; with two wildcard SO_REUSEPORT sockets Linux would hand each
            sender's unicast to just one of them. Pass ``"0.0.0.0"`` to accept unicast requests.
        reply_port: destination port of the answers.
        ip: the ``ip`` announced; default the plug's host, or for a wildcard host the address the
            kernel routes ``address`` from.
        product_key: announced ``productKey`` (default derived from the device id).

    """

    def __init__(
        self,
        plug: SimulatedPlug,
        *,
        address: str = "255.255.255.255",
        interval: float = DEFAULT_INTERVAL,
        port: int | None = None,
        port_plain: int = PORT_PLAIN,
        port_encrypted: int = PORT_ENCRYPTED,
        silent: bool = False,
        request_port: int = PORT_APP,
        request_bind: str | None = None,
        reply_port: int = PORT_APP,
        ip: str | None = None,
        product_key: str | None = None,
    ) -> None:
        self.plug = plug
        self.address = address
        self.interval = interval
        self.port = (
            port if port is not None else (port_plain if plug.version == "3.1" else port_encrypted)
        )
        self.silent = silent
        self._request_port = request_port
        self.request_bind = address if request_bind is None else request_bind
        self.reply_port = reply_port
        self.ip = ip
        self.product_key = product_key or product_key_for(plug.device_id)
        self.stats = BroadcastStats()
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._requests: asyncio.DatagramTransport | None = None

    @property
    def request_port(self) -> int:
        """Port of the REQ_DEVINFO socket (the real one once started with 0)."""
        return self._request_port

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._sock is not None

    def announcement(self) -> dict[str, Any]:
        """The JSON a real plug of this version announces (field order as in real captures)."""
        version = self.plug.version
        host = self.ip or self.plug.host
        if host in _WILDCARDS:
            host = source_ip_for(self.address, self.port) or "127.0.0.1"
        info: dict[str, Any] = {"ip": host, "gwId": self.plug.device_id}
        if version == "3.5":
            info["uuid"] = hashlib.sha256(self.plug.device_id.encode()).hexdigest()[:16]
        info.update({"active": 2, "ablilty": 0})
        if version == "3.1":
            info["mode"] = 0
        info.update({"encrypt": True, "productKey": self.product_key, "version": version})
        if version in ("3.4", "3.5"):
            info.update({"token": True, "wf_cfg": True})
        if version == "3.5":
            info["clientLink"] = 1
        return info

    def packet(self) -> bytes:
        """One discovery packet of this plug (spec §3 formats)."""
        return encode_broadcast(self.announcement(), self.plug.version)

    async def start(self) -> None:
        """Open the sockets and start broadcasting (or, silent, listening for requests)."""
        if self.running:
            return
        host = self.plug.host if self.plug.host not in _WILDCARDS else "0.0.0.0"
        self._sock = open_udp_socket(host, 0, reuse=False)
        if self.silent:
            sock = open_udp_socket(self.request_bind, self._request_port)
            self._request_port = int(sock.getsockname()[1])
            self._requests, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _RequestEndpoint(self), sock=sock
            )
            _LOGGER.info(
                "plug %s (v%s): silent, answering discovery requests on UDP %d",
                self.plug.device_id,
                self.plug.version,
                self._request_port,
            )
        else:
            self._task = asyncio.create_task(self._broadcast_loop())
            _LOGGER.info(
                "plug %s (v%s): broadcasting to %s:%d every %g s",
                self.plug.device_id,
                self.plug.version,
                self.address,
                self.port,
                self.interval,
            )

    async def stop(self) -> None:
        """Stop broadcasting and close the sockets (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

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

    def broadcast_now(self) -> bool:
        """Send one broadcast now; False when the send failed (logged at DEBUG)."""
        if self._send(self.packet(), (self.address, self.port)):
            self.stats.broadcasts += 1
            return True
        return False

    def handle_request(self, data: bytes, source: str) -> None:
        """Answer a REQ_DEVINFO datagram (silent mode); anything else is counted and dropped."""
        try:
            client_ip = decode_request(data)
        except DiscoveryRequestError as err:
            self.stats.invalid += 1
            _LOGGER.debug("plug %s: ignoring UDP from %s: %s", self.plug.device_id, source, err)
            return
        self.stats.requests += 1
        if self._send(self.packet(), (client_ip, self.reply_port)):
            self.stats.answers += 1

    def _send(self, data: bytes, target: tuple[str, int]) -> bool:
        if self._sock is None:
            return False
        try:
            self._sock.sendto(data, target)
        except OSError as err:
            self.stats.send_errors += 1
            _LOGGER.debug("plug %s: UDP send to %s failed: %s", self.plug.device_id, target, err)
            return False
        return True

    async def _broadcast_loop(self) -> None:
        while True:
            self.broadcast_now()
            await asyncio.sleep(self.interval)


# ---------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--broadcast``/``--silent`` options to the ``python -m tuya_sim`` parser."""
    group = parser.add_argument_group("LAN discovery (UDP)")
    group.add_argument(
        "--broadcast",
        metavar="ADDR",
        help="broadcast discovery packets to ADDR (e.g. 255.255.255.255, 127.255.255.255)",
    )
    group.add_argument(
        "--broadcast-interval", type=float, default=DEFAULT_INTERVAL, help="seconds (default 5)"
    )
    group.add_argument("--broadcast-port-plain", type=int, default=PORT_PLAIN, help="3.1 port")
    group.add_argument(
        "--broadcast-port-encrypted", type=int, default=PORT_ENCRYPTED, help="3.2-3.5 port"
    )
    group.add_argument(
        "--silent",
        action="store_true",
        help="3.5 plugs do not broadcast but answer REQ_DEVINFO on --request-port",
    )
    group.add_argument("--request-port", type=int, default=PORT_APP, help="UDP (default 7000)")
    group.add_argument("--reply-port", type=int, default=PORT_APP, help="UDP (default 7000)")
    group.add_argument(
        "--request-bind",
        metavar="ADDR",
        help="address the silent plugs' request socket binds (default: the --broadcast address)",
    )


def broadcasters_from_args(
    args: argparse.Namespace, plugs: Sequence[SimulatedPlug]
) -> list[PlugBroadcaster]:
    """Broadcasters for ``plugs`` as the options ask (none without ``--broadcast``/``--silent``).

    With ``--silent`` the 3.5 plugs answer requests instead of broadcasting; the others broadcast
    when ``--broadcast`` is given.
    """
    out: list[PlugBroadcaster] = []
    for plug in plugs:
        silent = bool(args.silent) and plug.version == "3.5"
        if not silent and not args.broadcast:
            continue
        out.append(
            PlugBroadcaster(
                plug,
                address=args.broadcast or "255.255.255.255",
                interval=args.broadcast_interval,
                port_plain=args.broadcast_port_plain,
                port_encrypted=args.broadcast_port_encrypted,
                silent=silent,
                request_port=args.request_port,
                request_bind=args.request_bind,
                reply_port=args.reply_port,
            )
        )
    return out


__all__ = [
    "BroadcastStats",
    "PlugBroadcaster",
    "add_arguments",
    "broadcasters_from_args",
    "product_key_for",
]
