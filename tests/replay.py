"""Replay recorded Tuya conversations over TCP: a loopback server that plays the device side.

A *recording* is a JSON object (``tests/vectors/recorded/*.json``, or built from the vector files)::

    {"version": "3.3", "device_id": "...", "local_key": "...",
     "steps": [
        {"from": "client", "cmd": 10, "seqno": 1, "json": {...}},           # checked
        {"from": "device", "cmd": 10, "seqno": 1, "retcode": 0, "payload": "{...}"},  # sent
        {"from": "device", "frame_hex": "000055aa..."},                     # sent byte for byte
        ...]}

The replayer accepts one connection and walks the steps in order. A client step reads the next
frame, decodes it with the simulator's independent device codec (``tuya_sim.codec``) and checks
what is checkable: command and sequence number always; the JSON with volatile fields (``t``)
compared for presence only; the exact bytes when the step has ``frame_hex`` (deterministic frames:
3.1-3.4 with pinned time and nonce); for the 3.4/3.5 handshake the proof of the key. A device step
sends a recorded frame as is, or encodes the recorded payload (retcode, seqno, source header) under
the key agreed on this connection: the session key of a replayed handshake depends on the client's
nonce. The handshake's device nonce comes from the recording (``device_nonce`` of the
SESS_KEY_NEG_RESP step).

Mismatches are collected in :attr:`Replayer.errors` (and end the conversation); frames the client
sends after the script are in :attr:`Replayer.extra`. Tests assert both are empty and that
:attr:`Replayer.finished` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tuya_sim.codec import DeviceCodec, DeviceHandshake, Request, SimProtocolError, source_header
from tuya_sim.frames import (
    SESS_KEY_NEG_FINISH,
    SESS_KEY_NEG_RESP,
    SESS_KEY_NEG_START,
    BadFrame,
    Frame,
    FrameSplitter,
)

RECORDED = Path(__file__).parent / "vectors" / "recorded"

#: JSON fields whose value changes on every run (client timestamps): compared for presence only.
VOLATILE = frozenset({"t"})


class Collector:
    """Collects pushed DPS (a subscriber callback) and lets a test wait for a count of them."""

    def __init__(self) -> None:
        """Start empty."""
        self.items: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, item: dict[str, Any]) -> None:
        """Subscriber callback."""
        self.items.append(item)
        self._changed.set()

    async def wait_count(self, count: int) -> None:
        """Wait until at least ``count`` items arrived (wrap in ``asyncio.timeout``)."""
        while len(self.items) < count:
            self._changed.clear()
            await self._changed.wait()


def load_recording(name: str) -> dict[str, Any]:
    """Load ``tests/vectors/recorded/<name>.json``."""
    return json.loads((RECORDED / f"{name}.json").read_text())


def _same_json(expected: Any, got: Any, path: str = "") -> list[str]:
    """Differences between two JSON values, ignoring the values of :data:`VOLATILE` keys."""
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        out: list[str] = []
        if set(expected) != set(got):
            out.append(f"{path or '/'}: keys {sorted(got)} != {sorted(expected)}")
        for key in expected.keys() & got.keys():
            if key not in VOLATILE:
                out += _same_json(expected[key], got[key], f"{path}/{key}")
        return out
    return [] if expected == got else [f"{path or '/'}: {got!r} != {expected!r}"]


class Replayer:
    """Plays the device side of one recording for one client connection on 127.0.0.1.

    Args:
        recording: the recording (see the module docstring).
        step_timeout: seconds a client step may wait for its frame.

    """

    def __init__(self, recording: Mapping[str, Any], *, step_timeout: float = 30.0) -> None:
        """See the class docstring."""
        self.recording = recording
        self.version: str = recording["version"]
        self.key = recording["local_key"].encode("latin1")
        self.steps: list[dict[str, Any]] = [
            s for s in recording["steps"] if s.get("from") in ("client", "device")
        ]
        self.step_timeout = step_timeout
        self.errors: list[str] = []
        self.extra: list[Request] = []
        self.finished = asyncio.Event()
        self.client_done = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handler: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        if self._handler is not None:
            self._handler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._handler
        if self._server is not None:
            await self._server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._handler is not None:  # one conversation per recording
            writer.close()
            return
        self._handler = asyncio.current_task()
        try:
            await self._play(reader, writer)
        finally:
            writer.close()
            self.client_done.set()

    async def _play(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = DeviceCodec(self.version, self.key)
        splitter = FrameSplitter()
        pending: list[Frame] = []
        handshake: DeviceHandshake | None = None
        resp_payload: bytes | None = None
        last_seqno = 0

        async def next_frame() -> Frame | None:
            while not pending:
                data = await reader.read(4096)
                if not data:
                    return None
                for item in splitter.feed(data):
                    if isinstance(item, BadFrame):
                        self.errors.append(f"client sent a malformed frame: {item}")
                    else:
                        pending.append(item)
            return pending.pop(0)

        for index, step in enumerate(self.steps):
            where = f"step {index} ({step.get('from')} cmd {step.get('cmd')})"
            if step["from"] == "device":
                writer.write(self._device_frame(step, codec, resp_payload, last_seqno))
                await writer.drain()
                continue
            try:
                async with asyncio.timeout(self.step_timeout):
                    frame = await next_frame()
            except TimeoutError:
                self.errors.append(f"{where}: the client sent nothing")
                return
            if frame is None:
                self.errors.append(f"{where}: the client closed the connection")
                return
            try:
                msg = codec.decode(frame)
            except SimProtocolError as err:
                self.errors.append(f"{where}: frame does not decode: {err}")
                return
            last_seqno = msg.seqno
            problems = self._check(step, frame, msg)
            if msg.cmd == SESS_KEY_NEG_START and not problems:
                nonce = self._device_nonce(index)
                handshake = DeviceHandshake(self.version, self.key, nonce)
                resp_payload = handshake.handle_start(msg.payload)
            elif msg.cmd == SESS_KEY_NEG_FINISH and not problems:
                if handshake is None:
                    problems.append("FINISH before START")
                else:
                    try:
                        codec.session_key = handshake.handle_finish(msg.payload)
                    except SimProtocolError as err:
                        problems.append(f"handshake: {err}")
            if problems:
                self.errors += [f"{where}: {p}" for p in problems]
                return
        self.finished.set()
        while (frame := await next_frame()) is not None:  # anything after the script is extra
            with contextlib.suppress(SimProtocolError):
                self.extra.append(codec.decode(frame))

    def _device_nonce(self, start_index: int) -> bytes:
        for step in self.steps[start_index:]:
            if step.get("cmd") == SESS_KEY_NEG_RESP and "device_nonce" in step:
                return str(step["device_nonce"]).encode("latin1")
        raise AssertionError("recording has a handshake without a device nonce")

    def _check(self, step: Mapping[str, Any], frame: Frame, msg: Request) -> list[str]:
        problems: list[str] = []
        if "frame_hex" in step and frame.raw.hex() != step["frame_hex"]:
            problems.append(f"bytes {frame.raw.hex()} != recorded {step['frame_hex']}")
        if "cmd" in step and msg.cmd != step["cmd"]:
            problems.append(f"cmd 0x{msg.cmd:02x} != recorded 0x{step['cmd']:02x}")
        if "seqno" in step and msg.seqno != step["seqno"]:
            problems.append(f"seqno {msg.seqno} != recorded {step['seqno']}")
        if "json" in step:
            try:
                got = json.loads(msg.payload)
            except ValueError:
                problems.append(f"payload is not JSON: {msg.payload!r}")
            else:
                problems += _same_json(step["json"], got)
        return problems

    def _device_frame(
        self,
        step: Mapping[str, Any],
        codec: DeviceCodec,
        resp_payload: bytes | None,
        last_seqno: int,
    ) -> bytes:
        if "frame_hex" in step:
            return bytes.fromhex(step["frame_hex"])
        seqno = int(step.get("seqno", last_seqno))
        if step["cmd"] == SESS_KEY_NEG_RESP:
            assert resp_payload is not None, "RESP before the client's START"
            return codec.encode(seqno, SESS_KEY_NEG_RESP, resp_payload, retcode=step["retcode"])
        header = None
        if step.get("header") == "source":
            header = source_header(self.version, int(step.get("source_seq", 1)))
        return codec.encode(
            seqno,
            int(step["cmd"]),
            str(step.get("payload", "")).encode(),
            retcode=int(step.get("retcode", 0)),
            header=header,
        )
