"""One TCP connection to a Tuya device: it lives and dies with its socket, and never reconnects.

One job: move messages over one socket. It owns the framing (:class:`FrameParser`), the
message codec and the 3.4/3.5 session negotiation, the sequence numbers, the matching of answers
to requests (one request in flight) and the read loop. What to do when the connection ends
(reconnect, probe another version, report the device unavailable) is decided by
:class:`~.device.TuyaDevice`.

Protocol facts used here (spec = ``../shared/docs/tuya-protocol.md``):

* 3.4/3.5 need the session-key negotiation on every new TCP connection (spec §2.5-§2.7);
* a CONTROL is answered by an empty ACK, then a STATUS (0x08) push with the changed DPs (§2.4);
* 3.5 devices answer with their own sequence numbers instead of echoing ours (§2.6), 3.1 devices
  answer heartbeats with sequence number 0 (§2.9): answers are matched by sequence number when the
  device echoes it and by command otherwise;
* a frame that passes its integrity check (CRC) but does not decrypt, or whose HMAC/GCM tag does
  not verify, was made with another key (§1, §4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .const import Command
from .errors import (
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
from .payload import extract_dps
from .session import ClientNegotiation

_LOGGER = logging.getLogger(__name__)
_READ_SIZE = 4096

#: Commands whose JSON answer carries DPS that subscribers should see.
_DPS_REPLIES = frozenset({Command.DP_QUERY, Command.DP_QUERY_NEW, Command.CONTROL_NEW})

#: Called with the DPS of a frame and whether it was pushed (False: the answer to a request).
DpsHandler = Callable[[dict[str, Any], bool], None]
ClosedHandler = Callable[["TuyaConnection", TuyaError], None]
_Pending = tuple[
    frozenset[int], int, asyncio.Future[Message], bool, Callable[[Message], bool] | None
]


class TuyaConnection:
    """One open TCP connection speaking one protocol version.

    Create it with :meth:`open`; it is closed by :meth:`close`, by the device, or by a fatal
    read error, and then stays closed (:attr:`closed`, :attr:`close_reason`).

    Args:
        reader, writer: the open stream.
        device_id: the device id (for payloads and logs).
        version: protocol version ``"3.1"`` ... ``"3.5"``.
        local_key: the 16-byte local key (never logged).
        on_dps: called with the DPS of every STATUS push and DPS-carrying answer, in the order
            read, and ``pushed`` (False for the DP_QUERY/CONTROL_NEW answer to our request).
        on_closed: called once when the connection ends, with the reason.

    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        device_id: str,
        version: str,
        local_key: bytes,
        on_dps: DpsHandler | None = None,
        on_closed: ClosedHandler | None = None,
    ) -> None:
        """Wrap an open stream; :meth:`open` is the usual way to get one."""
        self.device_id = device_id
        self.version = version
        self._vnum = float(version)
        self._key = local_key
        self._reader = reader
        self._writer = writer
        self._codec = MessageCodec(version, local_key)
        self._parser = FrameParser()
        self._on_dps = on_dps
        self._on_closed = on_closed
        self._seqno = 0
        self._lock = asyncio.Lock()
        #: The request in flight: (answer commands, sequence number, future, STATUS any seqno,
        #: other frames that answer it)
        self._pending: _Pending | None = None
        loop = asyncio.get_running_loop()
        #: Loop time of the last bytes received from the device (liveness).
        self.last_rx = loop.time()
        #: Loop time of the last frame sent to the device.
        self.last_tx = loop.time()
        #: Loop time the connection was opened.
        self.opened_at = loop.time()
        #: Frames received that decoded (any command).
        self.frames_in = 0
        #: Frames dropped because they failed integrity checks.
        self.bad_frames = 0
        #: Set when a frame arrived that passed its integrity check but did not decrypt (or its
        #: HMAC/tag did not verify): the device uses another key (or another protocol version).
        self.key_error: TuyaKeyError | None = None
        #: True when the device ended the connection (FIN or RST) rather than us.
        self.closed_by_device = False
        #: True when the device reset the connection (RST).
        self.reset_by_device = False
        #: Why the connection ended (None while open).
        self.close_reason: TuyaError | None = None
        self._closed = asyncio.Event()
        self._reader_task = asyncio.create_task(self._read_loop(), name="tuya-reader")

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        wait: float,
        device_id: str,
        version: str,
        local_key: bytes,
        on_dps: DpsHandler | None = None,
        on_closed: ClosedHandler | None = None,
    ) -> TuyaConnection:
        """Open the TCP connection (no frame is sent yet).

        Raises:
            TuyaTimeoutError: the TCP connection was not accepted within ``wait`` seconds.
            TuyaConnectionError: it was refused or the host is unreachable.

        """
        try:
            async with asyncio.timeout(wait):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise TuyaTimeoutError(f"connection to {host}:{port} timed out") from None
        except OSError as err:
            raise TuyaConnectionError(
                f"cannot connect to {host}:{port}: {err.strerror or err}"
            ) from None
        return cls(
            reader,
            writer,
            device_id=device_id,
            version=version,
            local_key=local_key,
            on_dps=on_dps,
            on_closed=on_closed,
        )

    # ------------------------------------------------------------ state
    @property
    def closed(self) -> bool:
        """True once the connection has ended."""
        return self._closed.is_set()

    @property
    def needs_session(self) -> bool:
        """True for 3.4/3.5, which negotiate a session key first (spec §2.7)."""
        return self._codec.needs_session

    async def wait_closed(self) -> None:
        """Wait until the connection has ended."""
        await self._closed.wait()

    # ------------------------------------------------------------ session
    async def negotiate(self, wait: float) -> None:
        """Agree on the 3.4/3.5 session key (spec §2.7).

        Raises:
            TuyaKeyError: the device's answer proves it holds another key.
            TuyaTimeoutError, TuyaConnectionError: no answer / the device closed the connection.

        """
        neg = ClientNegotiation(self.version, self._key)
        resp = await self.request(
            Command.SESS_KEY_NEG_START,
            neg.start_payload,
            frozenset({Command.SESS_KEY_NEG_RESP}),
            wait=wait,
        )
        finish = neg.handle_response(resp.payload)
        await self.send(Command.SESS_KEY_NEG_FINISH, finish, wait=wait)
        self._codec.session_key = neg.session_key

    # ------------------------------------------------------------ requests
    async def send(self, cmd: int, payload: bytes, *, wait: float) -> int:
        """Send one frame without waiting for an answer; return its sequence number.

        Raises:
            TuyaConnectionError: the connection is closed or the send failed.
            TuyaTimeoutError: the socket did not drain within ``wait`` seconds.

        """
        if self.closed:
            raise self.close_reason or TuyaConnectionError("not connected")
        self._seqno = (self._seqno + 1) & 0xFFFFFFFF
        self._writer.write(self._codec.encode(self._seqno, cmd, payload))
        self.last_tx = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(wait):
                await self._writer.drain()
        except TimeoutError:
            raise TuyaTimeoutError("sending to the device timed out") from None
        except OSError as err:
            raise TuyaConnectionError(f"send failed: {err.strerror or err}") from None
        return self._seqno

    async def request(
        self,
        cmd: int,
        payload: bytes,
        expect: frozenset[int],
        *,
        wait: float,
        check_retcode: bool = True,
        any_status: bool = True,
        accept: Callable[[Message], bool] | None = None,
    ) -> Message:
        """Send one command and wait for its answer; one request in flight at a time.

        Args:
            cmd: the command number.
            payload: its plaintext payload.
            expect: commands that may answer it.
            wait: seconds to wait for the answer (the wait for the lock is not counted).
            check_retcode: raise on a non-zero retcode (of an answer in ``expect``).
            any_status: a STATUS with DPS answers it whatever its sequence number.
            accept: called with every other frame that arrives while the request waits; a frame
                for which it returns True answers the request too (e.g. the STATUS push that
                confirms a CONTROL whose ACK was lost, spec §2.4). It runs in the read loop and
                must not raise. An accepted STATUS still reaches ``on_dps``, after the answer is
                set and before the caller resumes.

        Raises:
            TuyaTimeoutError: no answer within ``wait`` seconds.
            TuyaDeviceError: the device answered with a non-zero retcode (``check_retcode``).
            TuyaKeyError: the answer did not decrypt.
            TuyaConnectionError: the connection ended first.

        """
        async with self._lock:
            if self.closed:
                raise self.close_reason or TuyaConnectionError("not connected")
            future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            self._pending = (expect, -1, future, any_status, accept)
            try:
                seqno = await self.send(cmd, payload, wait=wait)
                self._pending = (expect, seqno, future, any_status, accept)
                async with asyncio.timeout(wait):
                    msg = await future
            except TimeoutError:
                raise TuyaTimeoutError(
                    f"no answer to command 0x{cmd:02x} within {wait:g} s"
                ) from None
            finally:
                self._pending = None
        if msg.retcode and check_retcode and msg.cmd in expect:
            text = msg.payload.decode("utf-8", "replace")[:80]
            raise TuyaDeviceError(f"device error {msg.retcode}: {text}")
        return msg

    # ------------------------------------------------------------ closing
    async def close(self, reason: TuyaError | None = None) -> None:
        """Close the socket and fail the pending request. Safe to call twice."""
        if not self.closed:
            self._finish(reason or TuyaConnectionError("connection closed"))
        task = self._reader_task
        if task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1):
                await self._writer.wait_closed()

    def _finish(self, reason: TuyaError) -> None:
        """Mark the connection ended (once) and tell the owner."""
        if self._closed.is_set():
            return
        self.close_reason = reason
        self._closed.set()
        self._fail_pending(reason)
        self._writer.close()
        if self._on_closed is not None:
            try:
                self._on_closed(self, reason)
            except Exception:
                _LOGGER.exception("error in a connection-closed handler")

    def _fail_pending(self, reason: TuyaError) -> None:
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(reason)

    # ------------------------------------------------------------ reading
    async def _read_loop(self) -> None:
        reason: TuyaError = TuyaConnectionError("connection closed by the device")
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    self.closed_by_device = True
                    break
                self.last_rx = loop.time()
                for item in self._parser.feed(data):
                    if isinstance(item, TuyaFrameError):
                        self.bad_frames += 1
                        _LOGGER.debug("dropped a malformed frame from %s: %s", self.device_id, item)
                        continue
                    self._handle_frame(item)
        except OSError as err:
            self.closed_by_device = True
            self.reset_by_device = isinstance(err, ConnectionResetError)
            reason = TuyaConnectionError(f"connection lost: {err.strerror or err}")
        except TuyaProtocolError as err:
            reason = err
        self._finish(reason)

    def _handle_frame(self, frame: RawFrame) -> None:
        try:
            msg = self._codec.decode(frame)
        except TuyaFrameError as err:
            self.bad_frames += 1
            _LOGGER.debug("dropped a frame from %s: %s", self.device_id, err)
            return
        except TuyaProtocolError as err:
            # Integrity held but decryption failed: the key does not match.
            self.key_error = TuyaKeyError(f"cannot decrypt the device's answer ({err})")
            self._fail_pending(self.key_error)
            return
        self.frames_in += 1
        pending = self._pending
        answer = False
        if pending is not None and not pending[2].done() and self._matches(msg, pending):
            pending[2].set_result(msg)
            answer = msg.cmd != Command.STATUS
        if msg.cmd == Command.STATUS or (msg.payload[:1] == b"{" and msg.cmd in _DPS_REPLIES):
            # in the order read, answers too: a push read after an answer is newer than it
            self._deliver_dps(msg, pushed=not answer)

    def _matches(self, msg: Message, pending: _Pending) -> bool:
        cmds, seqno, _, any_status, accept = pending
        if msg.cmd not in cmds:
            return accept is not None and accept(msg)
        if msg.cmd == Command.STATUS:
            # Only a STATUS with DPS can answer. Pushes carry seqno 0 (<= 3.3) or the device's
            # own counter: a STATUS answers a status query only if it echoes our sequence number
            # (3.5 never echoes, spec §2.6), not a meter push that happened to arrive meanwhile.
            return msg.payload[:1] == b"{" and (
                any_status or msg.seqno == seqno or self._vnum >= 3.5
            )
        # 3.5 devices use their own counter, 3.1 heartbeats and STATUS pushes use 0 (spec §2.6/2.9)
        return msg.seqno in (seqno, 0) or self._vnum >= 3.4

    def _deliver_dps(self, msg: Message, *, pushed: bool) -> None:
        try:
            dps = extract_dps(msg.json())
        except TuyaProtocolError:
            _LOGGER.debug("ignored a non-JSON push from %s", self.device_id)
            return
        if dps and self._on_dps is not None:
            self._on_dps(dps, pushed)
