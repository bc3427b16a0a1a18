"""One authenticated connection to the hub; it dies with its socket (hub-protocol §4, §5, §7).

One job: carry messages over one socket. :func:`open_connection` runs the handshake;
:meth:`HubConnection.start` runs the read loop, which checks every message
(:func:`.models.parse_message`), matches ``result`` messages to requests by ``rid`` and hands
every other message to the owner. Any channel violation — bad record, bad MAC, malformed
message — ends the connection (§5: the receiver MUST close), never the event loop: the loop
catches everything, fails the pending requests and reports the end once through ``on_closed``.
Tasks started with :meth:`HubConnection.spawn` belong to the connection and end with it. The
connection records when it last received a record and last sent one (:attr:`HubConnection.last_rx`,
:attr:`HubConnection.last_tx`, event-loop time): liveness and reconnecting are the owner's business
(:class:`.client.HubClient`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from .errors import (
    HubCommandError,
    HubConnectionError,
    HubError,
    HubProtocolError,
    HubTimeoutError,
)
from .models import MAX_RID, HubMessage, Result, parse_message
from .protocol import (
    MAX_HANDSHAKE_RECORD,
    MAX_RECORD,
    ClientHandshake,
    JsonObject,
    RecordReader,
    SecureChannel,
)

_LOGGER = logging.getLogger(__name__)

type MessageHandler = Callable[[HubMessage], None]
type ClosedHandler = Callable[["HubConnection", HubError | None], None]

_READ_SIZE = 8192


class PendingRequest[T]:
    """A request written to the hub whose ``result`` has not been matched yet.

    ``future`` gets the value of ``parse(data)`` for a successful result, a
    :class:`HubCommandError` for a refused one, or a :class:`HubError` when the connection ends.
    """

    __slots__ = ("future", "kind", "parse", "rid", "sent")

    def __init__(
        self, rid: int, kind: str, parse: Callable[[object], T], future: asyncio.Future[T]
    ) -> None:
        """Record request ``rid`` of type ``kind``; ``parse`` checks its result data."""
        self.rid = rid
        self.kind = kind
        self.parse = parse
        self.future = future
        self.sent = future.get_loop().time()
        """When the request was written (event-loop time, s)."""

    def fail(self, error: BaseException) -> None:
        """Fail the request (once), marking the exception retrieved if nobody awaits it."""
        if not self.future.done():
            self.future.set_exception(error)
            self.future.exception()


class HubConnection:
    """One authenticated connection: created by :func:`open_connection`, then :meth:`start`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channel: SecureChannel,
        records: RecordReader,
        label: str,
    ) -> None:
        """Wrap a socket whose handshake is done; ``label`` names the peer in logs."""
        self._reader = reader
        self._writer = writer
        self._channel = channel
        self._records = records
        self._received: list[bytes] = []
        self._label = label
        self._pending: dict[int, PendingRequest[Any]] = {}
        self._next_rid = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_message: MessageHandler | None = None
        self._on_closed: ClosedHandler | None = None
        self._closed = asyncio.Event()
        self.error: HubError | None = None
        """Why the connection ended (``None`` while open, or after a deliberate close)."""
        now = asyncio.get_running_loop().time()
        self.last_rx = now
        """When the last record arrived that opened (event-loop time, s; creation before)."""
        self.last_tx = now
        """When the last request was written (event-loop time, s; creation before)."""

    @property
    def closed(self) -> bool:
        """True once the connection ended (for whatever reason)."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Return when the connection has ended."""
        await self._closed.wait()

    # --- receiving ---------------------------------------------------------------------------
    async def recv(self) -> JsonObject:
        """The next message, decrypted but not yet checked (used before :meth:`start`).

        Raises :class:`HubConnectionError` (closed by the hub, socket error) or
        :class:`HubProtocolError` (bad record, MAC, padding or JSON).
        """
        while not self._received:
            try:
                data = await self._reader.read(_READ_SIZE)
            except OSError as err:
                raise HubConnectionError(f"connection to {self._label} failed: {err}") from err
            if not data:
                raise HubConnectionError(f"{self._label} closed the connection")
            self._received.extend(self._records.feed(data))
        message = self._channel.open(self._received.pop(0))
        self.last_rx = asyncio.get_running_loop().time()
        return message

    def start(self, on_message: MessageHandler, on_closed: ClosedHandler) -> None:
        """Start the read loop.

        ``on_message(message)`` gets every checked message except results (which go to their
        request) and unknown types; if it raises :class:`HubError` the connection ends with
        that error. ``on_closed(connection, error)`` is called once when the connection ends.
        """
        self._on_message = on_message
        self._on_closed = on_closed
        self.spawn(self._read_loop(), f"hub {self._label} reader")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a task owned by this connection: cancelled when it ends.

        A :class:`HubError` escaping ``coro`` ends the connection with that error; any other
        exception is logged and ends it too. Nothing is left running unobserved.
        """
        if self.closed:
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        error: HubError
        if isinstance(exc, HubError):
            error = exc
        elif isinstance(exc, OSError):
            error = HubConnectionError(f"connection to {self._label} failed: {exc}")
        else:
            _LOGGER.error(
                "hub %s: unexpected error; closing the connection",
                self._label,
                exc_info=exc,
            )
            error = HubProtocolError(f"internal error: {type(exc).__name__}")
        self.abort(error)

    async def _read_loop(self) -> None:
        try:
            while True:
                message = parse_message(await self.recv())
                if isinstance(message, Result):
                    self._resolve(message)
                elif message is not None:
                    assert self._on_message is not None
                    self._on_message(message)
                else:
                    _LOGGER.debug("hub %s: ignoring a message of unknown type", self._label)
        except HubError as err:
            # end here, before anyone awaiting a request resumes (they see the link down)
            self.abort(err)

    def _resolve(self, result: Result) -> None:
        pending = self._pending.pop(result.rid, None)
        if pending is None:
            # the request timed out meanwhile (or the rid is not ours): nothing waits for it
            _LOGGER.debug("hub %s: result for no pending request (rid %d)", self._label, result.rid)
            return
        if not result.ok:
            pending.fail(HubCommandError(result.err, result.msg))
            return
        try:
            value = pending.parse(result.data)
        except HubProtocolError as err:
            self.abort(err)
            pending.fail(err)
            raise
        if not pending.future.done():
            pending.future.set_result(value)

    # --- requests ----------------------------------------------------------------------------
    def send(self, kind: str, parse: Callable[[object], Any], **fields: Any) -> PendingRequest[Any]:
        """Write request ``{"t": kind, "rid": …, **fields}`` now; return it as pending.

        ``parse`` turns the result's ``data`` into the value of the request (raising
        :class:`HubProtocolError` for a malformed one, which also ends the connection).
        Raises :class:`HubConnectionError` when the connection has ended and
        :class:`HubProtocolError` when the message exceeds a record (§5).
        """
        if self.closed:
            raise HubConnectionError(f"connection to {self._label} is closed")
        rid = self._next_rid
        while rid in self._pending:
            rid = rid % MAX_RID + 1
        record = self._channel.seal({"t": kind, "rid": rid, **fields})
        self._next_rid = rid % MAX_RID + 1
        pending: PendingRequest[Any] = PendingRequest(
            rid, kind, parse, asyncio.get_running_loop().create_future()
        )
        self._pending[rid] = pending
        # seal() and write() run without an await in between, so sequence numbers follow
        # the order of the bytes on the wire.
        self._writer.write(record)
        self.last_tx = pending.sent
        return pending

    def oldest_pending(self, kinds: frozenset[str]) -> PendingRequest[Any] | None:
        """The request of one of ``kinds`` written first and not yet answered, if any."""
        return min(
            (p for p in self._pending.values() if p.kind in kinds),
            key=lambda p: p.sent,
            default=None,
        )

    async def wait[T](
        self,
        pending: PendingRequest[T],
        within: float,
        *,
        gone_at: Callable[[], float] | None = None,
    ) -> T:
        """Wait up to ``within`` seconds for the result of ``pending``; return its value.

        With ``gone_at``, give up as well once the event-loop time passes ``gone_at()``, asked
        again each time the limit it gave is reached: the owner's silence rule, from
        :attr:`last_rx` (a hub that talks, pushes or other results, is alive even if this
        answer is slow; a hub that says nothing is not, hub-protocol §8).

        Raises :class:`HubTimeoutError`, :class:`HubCommandError` (the hub refused),
        :class:`HubProtocolError` (malformed result data) or :class:`HubConnectionError`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            async with asyncio.timeout_at(deadline):
                await self._writer.drain()
            while not pending.future.done():
                end = deadline if gone_at is None else min(deadline, gone_at())
                if loop.time() >= end:
                    if end < deadline:
                        quiet = loop.time() - self.last_rx
                        raise HubTimeoutError(f"{self._label} was silent for {quiet:.1f} s")
                    raise TimeoutError
                # wait() does not cancel the future when it times out; the loop re-checks
                await asyncio.wait({pending.future}, timeout=end - loop.time())
            return pending.future.result()
        except TimeoutError as err:
            raise HubTimeoutError(f"hub did not answer {pending.kind!r} in time") from err
        except OSError as err:
            raise HubConnectionError(f"connection to {self._label} failed: {err}") from err
        finally:
            if self._pending.get(pending.rid) is pending:
                del self._pending[pending.rid]

    async def request(
        self, kind: str, parse: Callable[[object], Any], within: float, **fields: Any
    ) -> Any:
        """:meth:`send` then :meth:`wait`; same errors."""
        return await self.wait(self.send(kind, parse, **fields), within)

    # --- ending ------------------------------------------------------------------------------
    def abort(self, error: HubError | None = None) -> None:
        """End the connection now (idempotent): fail pending requests, stop tasks, close.

        ``error`` is the reason (``None`` for a deliberate close); it becomes :attr:`error`
        and is passed to ``on_closed``.
        """
        if self.closed:
            return
        self._closed.set()
        self.error = error
        if error is not None:
            _LOGGER.debug("hub %s: connection lost: %s", self._label, error)
        prefix = f"connection to {self._label}"
        if error is None:
            text = f"{prefix} closed"
        elif str(error).startswith(prefix):  # says it already: not "… lost: connection to …"
            text = str(error)
        else:
            text = f"{prefix} lost: {error}"
        lost = HubConnectionError(text)
        lost.__cause__ = error
        for pending in self._pending.values():
            pending.fail(lost)
        self._pending.clear()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._writer.close()
        if self._on_closed is not None:
            self._on_closed(self, error)

    async def close(self) -> None:
        """End the connection deliberately and wait until its tasks and socket are gone."""
        self.abort(None)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        if tasks:
            # wait() never raises: a cancellation of the caller itself is not swallowed
            await asyncio.wait(tasks)
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def open_connection(host: str, port: int, secret: str | bytes) -> HubConnection:
    """Connect to ``host:port`` and run the client side of the handshake (§4).

    Handshake records above 128 bytes (§3) are refused as soon as their length arrives. The
    caller bounds the whole with a timeout. Raises :class:`HubConnectionError` (TCP, early
    close), :class:`HubAuthError` (the hub has another secret) or :class:`HubProtocolError`.
    The socket is closed on any failure, cancellation included.
    """
    label = f"{host}:{port}"
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as err:
        raise HubConnectionError(f"cannot connect to {label}: {err}") from err
    try:
        hs = ClientHandshake(secret)
        writer.write(hs.hello())
        await writer.drain()
        records = RecordReader(MAX_HANDSHAKE_RECORD)
        bodies: list[bytes] = []
        while not bodies:
            data = await reader.read(MAX_HANDSHAKE_RECORD + 2)
            if not data:
                raise HubConnectionError(f"{label} closed the connection during the handshake")
            bodies = records.feed(data)
        if len(bodies) > 1:
            raise HubProtocolError("unexpected records after the server hello")
        writer.write(hs.receive_server_hello(bodies[0]))
        await writer.drain()
        assert hs.channel is not None
        records.limit = MAX_RECORD
        return HubConnection(reader, writer, hs.channel, records, label)
    except OSError as err:
        writer.close()
        raise HubConnectionError(f"connection to {label} failed: {err}") from err
    except BaseException:
        writer.close()
        raise
