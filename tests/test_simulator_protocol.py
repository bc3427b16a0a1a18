"""Wire-level behaviour of the simulator, probed with the protocol library in the client role.

These cover what tinytuya cannot easily provoke (stale timestamps, malformed JSON, frames before the
3.4/3.5 handshake, forged HMACs, seqno rules, refusal modes). The codec itself is checked against
independent vectors in test_tuya_vectors.py, and the simulator against tinytuya in
test_simulator_tinytuya.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from typing import Any

import pytest

from custom_components.tuya_local_esp.tuya import crypto
from custom_components.tuya_local_esp.tuya.const import Command
from custom_components.tuya_local_esp.tuya.frame import FrameParser, RawFrame, pack_55aa
from custom_components.tuya_local_esp.tuya.message import Message, MessageCodec
from custom_components.tuya_local_esp.tuya.payload import (
    control_request,
    dumps,
    extract_dps,
    heartbeat_request,
    status_request,
    updatedps_request,
)
from custom_components.tuya_local_esp.tuya.session import ClientNegotiation
from tuya_sim import SimulatedPlug

pytestmark = pytest.mark.usefixtures("socket_enabled")

DEVICE_ID = "bf0123456789abcdefgh"
KEY = b"0123456789abcdef"
WRONG_KEY = b"fedcba9876543210"
ALL_VERSIONS = ["3.1", "3.2", "3.3", "3.4", "3.5"]


class RawClient:
    """Minimal client: our codec over an asyncio stream, one frame at a time."""

    def __init__(self, plug: SimulatedPlug, key: bytes = KEY) -> None:
        self.plug = plug
        self.codec = MessageCodec(plug.version, key)
        self.parser = FrameParser()
        self.frames: list[RawFrame] = []
        self.seqno = 100
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def __aenter__(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.plug.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    def frame(self, cmd: int, payload: bytes) -> bytes:
        self.seqno += 1
        return self.codec.encode(self.seqno, cmd, payload)

    async def send(self, cmd: int, payload: bytes) -> int:
        self.writer.write(self.frame(cmd, payload))
        await self.writer.drain()
        return self.seqno

    async def raw(self, wait: float = 2.0) -> RawFrame:
        async with asyncio.timeout(wait):
            while not self.frames:
                data = await self.reader.read(4096)
                if not data:
                    raise EOFError
                for item in self.parser.feed(data):
                    assert isinstance(item, RawFrame), item
                    self.frames.append(item)
        return self.frames.pop(0)

    async def recv(self, wait: float = 2.0) -> Message:
        return self.codec.decode(await self.raw(wait))

    async def silent(self, wait: float = 0.3) -> bool:
        """True when nothing arrives within ``wait`` seconds and the connection stays open."""
        try:
            await self.raw(wait)
        except TimeoutError:
            return True
        return False

    async def closed(self, wait: float = 2.0) -> bool:
        try:
            await self.raw(wait)
        except EOFError, ConnectionResetError:
            return True
        return False

    async def negotiate(self) -> None:
        neg = ClientNegotiation(self.plug.version, self.codec.local_key)
        await self.send(Command.SESS_KEY_NEG_START, neg.start_payload)
        resp = await self.recv()
        assert resp.cmd == Command.SESS_KEY_NEG_RESP
        await self.send(Command.SESS_KEY_NEG_FINISH, neg.handle_response(resp.payload))
        self.codec.session_key = neg.session_key

    async def ready(self) -> RawClient:
        """Negotiate when needed; a heartbeat round trip proves the plug has read FINISH."""
        if self.codec.needs_session:
            await self.negotiate()
            await self.send(*heartbeat_request(DEVICE_ID))
            assert (await self.recv()).cmd == Command.HEART_BEAT
        return self


def new_plug(version: str, **kwargs: Any) -> SimulatedPlug:
    kwargs.setdefault("profile", "aubess")  # the original layout (DPs 21-25, energy total)
    kwargs.setdefault("seed", 3)
    kwargs.setdefault("idle_timeout", 5.0)
    return SimulatedPlug(device_id=DEVICE_ID, local_key=KEY, version=version, **kwargs)


def control_with_t(version: str, dps: dict[str, Any], t: int) -> tuple[int, bytes]:
    if float(version) >= 3.4:
        return Command.CONTROL_NEW, dumps({"protocol": 5, "t": t, "data": {"dps": dps}})
    return Command.CONTROL, dumps({"devId": DEVICE_ID, "uid": DEVICE_ID, "t": str(t), "dps": dps})


@pytest.mark.parametrize("version", ALL_VERSIONS)
async def test_silent_until_queried_then_answers(version: str) -> None:
    async with new_plug(version) as plug, RawClient(plug) as cli:
        assert await cli.silent()
        await cli.ready()
        cmd, payload = status_request(version, DEVICE_ID)
        seqno = await cli.send(cmd, payload)
        reply = await cli.recv()
    assert reply.cmd == cmd
    assert reply.retcode == 0
    assert extract_dps(reply.json())["20"] > 2000
    if version == "3.5":
        assert reply.seqno != seqno  # the device's own counter (spec §2.6)
    else:
        assert reply.seqno == seqno


@pytest.mark.parametrize("version", ALL_VERSIONS)
async def test_control_ack_then_status_push(version: str) -> None:
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.ready()
        cmd, payload = control_request(version, DEVICE_ID, {"1": True})
        seqno = await cli.send(cmd, payload)
        ack_raw = await cli.raw()
        ack = cli.codec.decode(ack_raw)
        push_raw = await cli.raw()
        push = cli.codec.decode(push_raw)
    assert ack.cmd == cmd
    assert (ack.retcode, ack.payload) == (0, b"")
    if float(version) < 3.4:
        assert len(ack_raw.data) == 28  # minimum device frame (spec §1.1)
        assert ack.seqno == seqno
    assert push.cmd == Command.STATUS
    body = push.json()
    dps = extract_dps(body)
    assert dps["1"] is True
    assert dps["19"] > 0
    if float(version) >= 3.4:
        assert body["protocol"] == 4
        assert push.seqno != 0
    else:
        assert body["devId"] == DEVICE_ID
        assert abs(body["t"] - time.time()) < 5
        assert push.seqno == 0
    if version in ("3.2", "3.3"):  # clear source header "3.x"|crc 0|seq|source 1 after the retcode
        assert push_raw.data[20:23] == version.encode()
        assert struct.unpack(">III", push_raw.data[23:35]) == (0, 1, 1)


@pytest.mark.parametrize("version", ["3.3", "3.4", "3.5"])
async def test_source_header_inside_or_before_ciphertext(version: str) -> None:
    """Pushes carry "3.x"|0|seq|1: in clear up to 3.3, encrypted from 3.4 (spec §2.1, §2.5)."""
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.ready()
        for n in (1, 2):
            plug.set_dps_local({"21": "on" if n == 1 else "off"})
            raw = await cli.raw()
            key = cli.codec.session_key or KEY
            if version == "3.3":
                head = raw.data[20:35]
            elif version == "3.4":
                head = crypto.ecb_decrypt(key, raw.data[20:-36])[:15]
            else:
                plain = crypto.gcm_decrypt(key, raw.data[18:30], raw.data[30:-4], raw.data[4:18])
                assert plain[:4] == bytes(4)  # retcode
                head = plain[4:19]
            assert head == version.encode() + struct.pack(">III", 0, n, 1)
            assert extract_dps(cli.codec.decode(raw).json())["21"] == ("on" if n == 1 else "off")


async def test_zero_header_without_source_header() -> None:
    async with new_plug("3.3", source_header=False) as plug, RawClient(plug) as cli:
        plug.set_dps_local({"1": True})
        raw = await cli.raw()
    assert raw.data[20:35] == b"3.3" + bytes(12)


@pytest.mark.parametrize(("version", "expected_seqno"), [("3.1", 0), ("3.3", None)])
async def test_heartbeat_reply(version: str, expected_seqno: int | None) -> None:
    async with new_plug(version) as plug, RawClient(plug) as cli:
        seqno = await cli.send(*heartbeat_request(DEVICE_ID))
        reply = await cli.recv()
    assert (reply.cmd, reply.retcode, reply.payload) == (Command.HEART_BEAT, 0, b"")
    assert reply.seqno == (seqno if expected_seqno is None else expected_seqno)


@pytest.mark.parametrize("version", ["3.1", "3.3", "3.4", "3.5"])
async def test_stale_timestamp_gets_no_answer(version: str) -> None:
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.ready()
        await cli.send(*control_with_t(version, {"1": True}, int(time.time()) - 7200))
        assert await cli.silent(0.4)
        assert plug.dps["1"] is False
        assert plug.stats.stale_timestamps == 1
        await cli.send(*control_with_t(version, {"1": True}, int(time.time()) + 60))
        assert (await cli.recv()).payload == b""
        assert extract_dps((await cli.recv()).json())["1"] is True


async def test_stale_timestamp_accepted_when_disabled() -> None:
    async with new_plug("3.3", reject_stale_timestamp=False) as plug, RawClient(plug) as cli:
        await cli.send(*control_with_t("3.3", {"1": True}, 1_000_000_000))
        assert (await cli.recv()).payload == b""
        assert extract_dps((await cli.recv()).json())["1"] is True


@pytest.mark.parametrize("version", ["3.1", "3.3", "3.4", "3.5"])
async def test_malformed_json_gets_data_format_error(version: str) -> None:
    cmd = Command.CONTROL_NEW if float(version) >= 3.4 else Command.CONTROL
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.ready()
        seqno = await cli.send(cmd, b'{"dps":{"1":tru')
        reply = await cli.recv()
        # also valid JSON without any dps
        await cli.send(cmd, b'{"x":1}')
        second = await cli.recv()
    assert (reply.cmd, reply.retcode, reply.payload) == (cmd, 1, b"data format error")
    assert (second.retcode, second.payload) == (1, b"data format error")
    if version != "3.5":
        assert reply.seqno == seqno
    assert plug.dps["1"] is False


@pytest.mark.parametrize("version", ["3.4", "3.5"])
async def test_nothing_answered_before_session_negotiation(version: str) -> None:
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.send(*status_request(version, DEVICE_ID))  # keyed with the local key
        await cli.send(*heartbeat_request(DEVICE_ID))
        assert await cli.silent(0.4)
        await cli.negotiate()
        await cli.send(*status_request(version, DEVICE_ID))
        assert extract_dps((await cli.recv()).json())["1"] is False


@pytest.mark.parametrize("version", ["3.4", "3.5"])
async def test_bad_session_frame_closes_connection(version: str) -> None:
    """A frame whose HMAC/GCM tag fails with the session key: no answer, connection closed."""
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.negotiate()
        cli.codec.session_key = bytes(16)  # forge: wrong session key
        await cli.send(*status_request(version, DEVICE_ID))
        assert await cli.closed()
    assert plug.stats.bad_key == 1


@pytest.mark.parametrize("version", ["3.4", "3.5"])
async def test_wrong_local_key_fails_handshake(version: str) -> None:
    async with new_plug(version) as plug, RawClient(plug, key=WRONG_KEY) as cli:
        await cli.send(Command.SESS_KEY_NEG_START, bytes(range(16)))
        assert await cli.closed()


async def test_wrong_finish_hmac_closes() -> None:
    async with new_plug("3.4") as plug, RawClient(plug) as cli:
        await cli.send(Command.SESS_KEY_NEG_START, bytes(range(16)))
        assert (await cli.recv()).cmd == Command.SESS_KEY_NEG_RESP
        await cli.send(Command.SESS_KEY_NEG_FINISH, bytes(32))
        assert await cli.closed()


async def test_wrong_key_v33_is_ignored_but_connection_stays() -> None:
    async with new_plug("3.3") as plug, RawClient(plug) as cli:
        good = cli.codec
        cli.codec = MessageCodec("3.3", WRONG_KEY)
        await cli.send(*status_request("3.3", DEVICE_ID))
        assert await cli.silent(0.4)
        cli.codec = good
        await cli.send(*status_request("3.3", DEVICE_ID))
        assert extract_dps((await cli.recv()).json())["1"] is False
    assert plug.stats.bad_key == 1


async def test_updatedps_without_list_refreshes_power_dps() -> None:
    async with new_plug("3.3", dps={"1": True}, power_needs_updatedps=True) as plug:
        async with RawClient(plug) as cli:
            await cli.send(Command.UPDATEDPS, b"{}")
            ack = await cli.recv()
            push = await cli.recv()
            await cli.send(*updatedps_request([19]))
            ack2 = await cli.recv()
            push2 = await cli.recv()
    assert (ack.cmd, ack.payload) == (Command.UPDATEDPS, b"")
    assert set(extract_dps(push.json())) == {"18", "19", "20"}
    assert ack2.payload == b""
    assert set(extract_dps(push2.json())) == {"19"}


async def test_null_dps_read_and_invalid_writes_ignored() -> None:
    async with new_plug("3.3") as plug, RawClient(plug) as cli:
        await cli.send(*control_request("3.3", DEVICE_ID, {"1": None, "21": None}))
        assert (await cli.recv()).payload == b""
        assert extract_dps((await cli.recv()).json()) == {"1": False, "21": "memory"}
        # wrong types, read-only and unknown DPs: acknowledged, nothing changes, nothing pushed
        await cli.send(*control_request("3.3", DEVICE_ID, {"1": "on", "19": 5, "99": 1}))
        assert (await cli.recv()).payload == b""
        assert await cli.silent()
    assert plug.dps["1"] is False
    assert plug.dps["19"] == 0


async def test_device22_refuses_dp_query() -> None:
    async with new_plug("3.3", device22=True) as plug, RawClient(plug) as cli:
        await cli.send(*status_request("3.3", DEVICE_ID))
        reply = await cli.recv()
    assert (reply.retcode, reply.payload) == (1, b"json obj data unvalid")


async def test_two_frames_in_one_write() -> None:
    async with new_plug("3.3") as plug, RawClient(plug) as cli:
        cli.writer.write(
            cli.frame(*heartbeat_request(DEVICE_ID)) + cli.frame(*status_request("3.3", DEVICE_ID))
        )
        first = await cli.recv()
        second = await cli.recv()
    assert first.cmd == Command.HEART_BEAT
    assert second.cmd == Command.DP_QUERY
    assert extract_dps(second.json())["1"] is False


@pytest.mark.parametrize("mode", ["reset", "close"])
async def test_second_connection_refused_modes(mode: str) -> None:
    async with new_plug("3.3", refuse_mode=mode) as plug, RawClient(plug) as first:
        await first.send(*heartbeat_request(DEVICE_ID))
        await first.recv()
        async with RawClient(plug) as second:
            assert await second.closed()
        assert plug.stats.refused == 1
        assert plug.connections == 1
        await first.send(*heartbeat_request(DEVICE_ID))
        assert (await first.recv()).cmd == Command.HEART_BEAT


async def test_max_connections_two_both_get_pushes() -> None:
    async with new_plug("3.4", max_connections=2) as plug:
        async with RawClient(plug) as one, RawClient(plug) as two:
            for cli in (one, two):
                await cli.ready()
            assert plug.connections == 2
            pushed = plug.set_dps_local({"1": True, "17": 42})
            got_one = extract_dps((await one.recv()).json())
            got_two = extract_dps((await two.recv()).json())
    assert got_one == got_two == pushed
    assert pushed["1"] is True
    assert pushed["17"] == 42
    assert plug.stats.refused == 0


async def test_kick_and_idle_timeout_close_raw_connections() -> None:
    async with new_plug("3.3", idle_timeout=0.3) as plug:
        async with RawClient(plug) as cli:
            assert await cli.closed(2)  # idle
        assert plug.stats.idle_drops == 1
        async with RawClient(plug) as cli:
            await cli.send(*heartbeat_request(DEVICE_ID))
            await cli.recv()
            plug.kick(reset=True)
            assert await cli.closed()
        assert plug.stats.accepted == 2


async def test_push_shape_for_json_consumers() -> None:
    """STATUS payloads are compact JSON (no spaces), as real firmware sends."""
    async with new_plug("3.3") as plug, RawClient(plug) as cli:
        await cli.send(*status_request("3.3", DEVICE_ID))
        await cli.recv()
        plug.set_dps_local({"21": "off"})
        push = await cli.recv()
    assert b" " not in push.payload
    assert json.loads(push.payload)["dps"] == {"21": "off"}


@pytest.mark.parametrize("version", ["3.1", "3.3"])
async def test_unencrypted_control_is_ignored(version: str) -> None:
    """CONTROL must be encrypted (3.1: signed base64; 3.3: AES) — plaintext JSON gets nothing."""
    request = dumps(
        {"devId": DEVICE_ID, "uid": DEVICE_ID, "t": str(int(time.time())), "dps": {"1": True}}
    )
    body = request if version == "3.1" else b"3.3" + bytes(12) + request
    async with new_plug(version) as plug, RawClient(plug) as cli:
        cli.writer.write(pack_55aa(1, Command.CONTROL, body))
        assert await cli.silent(0.4)
        assert plug.dps["1"] is False
        assert plug.stats.bad_key == 1
        if version == "3.1":  # while a plaintext 3.1 query is fine (spec §2.2)
            cli.writer.write(pack_55aa(2, Command.DP_QUERY, dumps({"devId": DEVICE_ID})))
            assert extract_dps((await cli.recv()).json())["1"] is False


NASTY_PAYLOADS = [
    b"",
    b"null",
    b"[]",
    b'"dps"',
    b"\xff\xfe\x00garbage",
    b'{"dps":null}',
    b'{"dps":[1,2]}',
    b'{"dps":{"1":[true]}}',
    b'{"dps":{"9":99999999999999999999999}}',
    b'{"dps":{"9":-1,"1":{"x":1}}}',
    b'{"dpId":"18"}',
    b'{"dpId":[{"a":1},null,"19",1e308]}',
    b'{"t":NaN,"dps":{"1":true}}',
    b'{"t":"soon","dps":{"21":"memory"}}',
    b'{"data":{"dps":"x"},"protocol":5}',
    b"[" * 1500 + b"]" * 1500,
]


@pytest.mark.parametrize("version", ["3.3", "3.5"])
async def test_nasty_payloads_never_break_the_plug(version: str) -> None:
    """Odd but well-framed and correctly keyed payloads: answered or ignored, never fatal."""
    cmds = [Command.UPDATEDPS, Command.CONTROL_NEW]
    cmds.append(Command.CONTROL if version == "3.3" else Command.DP_QUERY_NEW)
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.ready()
        for payload in NASTY_PAYLOADS:
            for cmd in cmds:
                await cli.send(cmd, payload)
                await cli.send(*heartbeat_request(DEVICE_ID))
                async with asyncio.timeout(2):
                    while (await cli.recv()).cmd != Command.HEART_BEAT:
                        pass  # ACKs, errors and pushes before the heartbeat reply
        assert plug.connections == 1
        assert plug.stats.accepted == 1
        assert plug.dps["9"] == 0
        assert plug.dps["21"] == "memory"


async def test_local_energy_reset_and_load_change() -> None:
    async with new_plug("3.3", dps={"1": True}, noise=0.0, energy_speedup=36.0) as plug:
        async with RawClient(plug) as cli:
            plug.model.load_w = 2000.0  # 20 Wh per real second at this speed-up
            await cli.send(*updatedps_request([19]))
            await cli.recv()
            assert extract_dps((await cli.recv()).json()) == {"19": 20000}
            for counter in (5000, 0):
                assert plug.set_dps_local({"17": counter}) == {"17": counter}
                assert extract_dps((await cli.recv()).json()) == {"17": counter}
                await cli.send(*status_request("3.3", DEVICE_ID))
                assert counter <= extract_dps((await cli.recv()).json())["17"] < counter + 20


async def test_status_delay_separates_ack_and_push() -> None:
    # a 1 s delay leaves the 0.15 s silence check a wide margin when the ACK is read late
    async with new_plug("3.3", status_delay=1.0) as plug, RawClient(plug) as cli:
        await cli.send(*control_request("3.3", DEVICE_ID, {"1": True}))
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await cli.recv()).payload == b""
        assert await cli.silent(0.15)  # the push is not there yet
        push = await cli.recv()
        assert loop.time() - started >= 0.95
        assert extract_dps(push.json())["1"] is True
        # a pending delayed push is cancelled cleanly by stop()
        await cli.send(*updatedps_request([18, 19, 20]))
        assert (await cli.recv()).cmd == Command.UPDATEDPS
        await plug.stop()
        assert await cli.closed()


@pytest.mark.parametrize("version", ["3.3", "3.4", "3.5"])
async def test_frames_split_into_single_bytes(version: str) -> None:
    """The plug reassembles frames from arbitrary TCP segmentation."""
    async with new_plug(version) as plug, RawClient(plug) as cli:
        await cli.ready()
        data = cli.frame(*control_request(version, DEVICE_ID, {"1": True}))
        data += cli.frame(*status_request(version, DEVICE_ID))
        for i in range(len(data)):
            cli.writer.write(data[i : i + 1])
            await cli.writer.drain()
        assert (await cli.recv()).payload == b""  # ACK
        assert extract_dps((await cli.recv()).json())["1"] is True  # push
        assert extract_dps((await cli.recv()).json())["1"] is True  # query reply


@pytest.mark.parametrize("version", ["3.1", "3.3", "3.4", "3.5"])
async def test_local_key_never_logged(version: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = b"Sx7!kq9#Lm2@Wp4$"
    plug = SimulatedPlug(device_id=DEVICE_ID, local_key=key, version=version, idle_timeout=0.3)
    async with plug:
        async with RawClient(plug, key=key) as cli:
            await cli.ready()
            await cli.send(*control_request(version, DEVICE_ID, {"1": True}))
            assert (await cli.recv()).payload == b""
            assert (await cli.recv()).cmd == Command.STATUS
            async with RawClient(plug) as second:
                assert await second.closed()
            assert await cli.closed()  # idle drop
        async with RawClient(plug, key=WRONG_KEY) as bad:
            await bad.send(*control_request(version, DEVICE_ID, {"1": False}))
            await bad.send(Command.SESS_KEY_NEG_START, bytes(16))
            async with asyncio.timeout(3):  # until the plug has handled (and logged) them
                while plug.stats.bad_key + plug.stats.bad_frames < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
    text = caplog.text
    assert "listening" in text
    assert "idle" in text
    for secret in (key, WRONG_KEY):
        assert secret.decode() not in text
        assert secret.hex() not in text
