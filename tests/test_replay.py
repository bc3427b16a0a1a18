"""The real client (``TuyaDevice``) driven through recorded conversations (issue 11 item 5).

A fast layer between the codec unit tests and the simulator tests: ``tests/replay.py`` plays the
device side of a recording over TCP on loopback and checks what the client sends. Recordings:

* ``tests/vectors/recorded/sim_v31|33|34|35.json``: full conversations recorded from the simulator
  (``tests/record_conversations.py``); the client must return exactly the recorded results;
* vector sessions replayed byte for byte where the vectors allow it (time and client nonce
  pinned): the real openHAB 3.4 handshake, tinytuya's 3.3/3.4/3.5 frames and the real 3.1
  encrypted status of tuyapi's tests (sources in each vector file's ``_source``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from custom_components.tuya_local_esp.tuya import TuyaDevice, TuyaError, TuyaKeyError
from custom_components.tuya_local_esp.tuya import payload as tuya_payload
from custom_components.tuya_local_esp.tuya import session as tuya_session
from tuya_sim.frames import pack_55aa

from .conftest import load_vectors
from .replay import RECORDED, Collector, Replayer, load_recording

SYNTH = load_vectors("synthetic_tinytuya_generated.json")
SYNTH_BY_NAME = {v["name"]: v for v in SYNTH["vectors"]}
PINNED_TIME = 1_700_000_000


def synth(prefix: str) -> dict[str, Any]:
    """The synthetic tinytuya vector whose name starts with ``prefix``."""
    (vector,) = [v for name, v in SYNTH_BY_NAME.items() if name.startswith(prefix)]
    return vector


def _device(replayer: Replayer, device_id: str, key: str, version: str) -> TuyaDevice:
    return TuyaDevice(
        "127.0.0.1", device_id, key, version=version, port=replayer.port, heartbeat_interval=3600
    )


def _assert_clean(replayer: Replayer) -> None:
    assert replayer.errors == []
    assert replayer.finished.is_set()
    assert replayer.extra == []


# ------------------------------------------------------------------ recorded from the simulator
@pytest.mark.parametrize("name", sorted(p.stem for p in RECORDED.glob("sim_v*.json")))
async def test_recorded_simulator_conversation(name: str) -> None:
    """Connect, status, set, button push, heartbeat, refresh: same results as when recorded."""
    rec = load_recording(name)
    expect = rec["expect"]
    pushes = Collector()
    async with asyncio.timeout(60), Replayer(rec) as replayer:
        dev = _device(replayer, rec["device_id"], rec["local_key"], rec["version"])
        await dev.connect()
        try:
            dev.subscribe(pushes)
            assert await dev.status() == expect["status"]
            assert await dev.set_dps({"1": True}) == expect["set"]
            await dev.heartbeat()
            await dev.update_dps([18, 19, 20])
            await pushes.wait_count(len(expect["pushes"]))
            await replayer.finished.wait()
        finally:
            await dev.close()
        await replayer.client_done.wait()
    assert pushes.items == expect["pushes"]
    assert pushes.items[1] == expect["button"]
    _assert_clean(replayer)


def test_recordings_cover_every_version() -> None:
    versions = {load_recording(p.stem)["version"] for p in RECORDED.glob("sim_v*.json")}
    assert versions == {"3.1", "3.3", "3.4", "3.5"}


async def test_replayer_reports_a_client_that_deviates() -> None:
    """The replayer is a real check: a recording that expects another request fails."""
    rec = json.loads(json.dumps(load_recording("sim_v33")))
    first = next(s for s in rec["steps"] if s.get("from") == "client")
    first["json"]["gwId"] = "somebody-else"
    async with asyncio.timeout(60), Replayer(rec) as replayer:
        dev = _device(replayer, rec["device_id"], rec["local_key"], "3.3")
        dev.timeout = 1.0
        with pytest.raises(TuyaError):
            await dev.connect()
        await dev.close()
        await replayer.client_done.wait()
    assert any("gwId" in e for e in replayer.errors)
    assert not replayer.finished.is_set()


# ------------------------------------------------------------------ vector sessions
@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes], None]:
    """Pin the client's timestamps to the vectors' and return a setter for the client nonce."""
    monkeypatch.setattr(tuya_payload.time, "time", lambda: float(PINNED_TIME))

    def pin_nonce(nonce: bytes) -> None:
        monkeypatch.setattr(tuya_session, "random_nonce", lambda: nonce)

    return pin_nonce


async def test_real_openhab_v34_handshake_replayed(pinned: Callable[[bytes], None]) -> None:
    """openHAB's 3.4 START: our client sends the same bytes. Then a real device's RESP frame: its
    HMAC verifies under the real key, but it proves another session's client nonce (the vector
    notes say so), so the client must refuse the key proof and send no FINISH."""
    data = load_vectors("openhab_smarthomej_v34_session.json")
    start, resp = data["vectors"][0], data["vectors"][1]
    pinned(bytes.fromhex(start["client_nonce_hex"]))
    rec = {
        "version": "3.4",
        "local_key": data["local_key_ascii"],
        "steps": [
            {"from": "client", "cmd": 3, "seqno": 1, "frame_hex": start["frame_hex"]},
            {
                "from": "device",
                "cmd": 4,
                "frame_hex": resp["frame_hex"],
                "device_nonce": resp["device_nonce_ascii"],
            },
        ],
    }
    async with asyncio.timeout(60), Replayer(rec) as replayer:
        dev = _device(replayer, "bf0000000000000000aa", data["local_key_ascii"], "3.4")
        with pytest.raises(TuyaKeyError, match="prove"):
            await dev.connect()
        await dev.close()
        await replayer.client_done.wait()
    _assert_clean(replayer)


@pytest.mark.parametrize("version", ["3.4", "3.5"])
async def test_tinytuya_session_vectors_replayed(
    version: str, pinned: Callable[[bytes], None]
) -> None:
    """tinytuya's handshake (START/FINISH byte-exact for 3.4), then its STATUS push frame."""
    neg = synth(f"{version} session negotiation")
    pinned(bytes.fromhex(neg["client_nonce_hex"]))
    start, resp, finish = (f["frame_hex"] for f in neg["frames"])
    push = synth(f"{version} device STATUS push")
    query = synth(f"{version} status query")
    exact = version == "3.4"  # 3.5 client frames carry a random GCM nonce
    client_start = {"from": "client", "cmd": 3, "seqno": 1}
    client_finish = {"from": "client", "cmd": 5, "seqno": 2}
    client_query: dict[str, Any] = {"from": "client", "cmd": 16, "seqno": 3, "json": {}}
    if exact:
        client_start["frame_hex"] = start
        client_finish["frame_hex"] = finish
        client_query["frame_hex"] = query["frame_hex"]
    rec = {
        "version": version,
        "local_key": neg["real_key_ascii"],
        "steps": [
            client_start,
            {
                "from": "device",
                "cmd": 4,
                "frame_hex": resp,
                "device_nonce": neg["device_nonce_ascii"],
            },
            client_finish,
            client_query,
            {"from": "device", "cmd": 16, "payload": '{"dps":{"1":false},"t":1700000000}'},
            {"from": "device", "cmd": 8, "frame_hex": push["frame_hex"]},
        ],
    }
    pushes = Collector()
    async with asyncio.timeout(60), Replayer(rec) as replayer:
        dev = _device(replayer, SYNTH["dev_id"], neg["real_key_ascii"], version)
        dev.subscribe(pushes)
        await dev.connect()
        try:
            await pushes.wait_count(1)
            await replayer.finished.wait()
        finally:
            await dev.close()
        await replayer.client_done.wait()
    assert pushes.items == [{"1": True}]
    _assert_clean(replayer)


async def test_tinytuya_v33_frames_replayed_byte_for_byte(pinned: Callable[[bytes], None]) -> None:
    """3.3: every client frame equals tinytuya's; the device frames are tinytuya's too."""
    del pinned  # the time is pinned; 3.3 has no nonce
    dev_id = SYNTH["dev_id"]
    rec = {
        "version": "3.3",
        "local_key": SYNTH["local_key_ascii"],
        "steps": [
            {"from": "client", "frame_hex": synth("3.3 DP_QUERY")["frame_hex"]},
            {"from": "device", "frame_hex": synth("3.3 device DP_QUERY response")["frame_hex"]},
            {"from": "client", "frame_hex": synth("3.3 CONTROL")["frame_hex"]},
            {"from": "device", "frame_hex": synth("3.3 device CONTROL ack")["frame_hex"]},
            {"from": "device", "frame_hex": synth("3.3 device STATUS push")["frame_hex"]},
            {"from": "client", "frame_hex": synth("3.3 HEART_BEAT")["frame_hex"]},
            {"from": "device", "cmd": 9, "seqno": 3},
            {"from": "client", "frame_hex": synth("3.3 UPDATEDPS")["frame_hex"]},
            {"from": "device", "cmd": 18, "seqno": 4},
        ],
    }
    async with asyncio.timeout(60), Replayer(rec) as replayer:
        dev = _device(replayer, dev_id, SYNTH["local_key_ascii"], "3.3")
        await dev.connect()
        try:
            # the device answered the CONTROL with "1": false, and the client reports that
            assert await dev.set_dps({"1": True}) == {"1": False}
            await dev.heartbeat()
            await dev.update_dps([18, 19, 20])
            await replayer.finished.wait()
        finally:
            await dev.close()
        await replayer.client_done.wait()
    _assert_clean(replayer)


async def test_v31_tinytuya_client_frames_and_real_encrypted_status(
    pinned: Callable[[bytes], None],
) -> None:
    """3.1: DP_QUERY and the signed CONTROL equal tinytuya's bytes; then, with tuyapi's key, a
    real device's signed and encrypted STATUS payload reaches the subscriber."""
    del pinned
    dev_id = SYNTH["dev_id"]
    rec = {
        "version": "3.1",
        "local_key": SYNTH["local_key_ascii"],
        "steps": [
            {"from": "client", "frame_hex": synth("3.1 DP_QUERY")["frame_hex"]},
            {"from": "device", "cmd": 10, "seqno": 1, "payload": '{"dps":{"1":false}}'},
            {"from": "client", "frame_hex": synth("3.1 CONTROL")["frame_hex"]},
            {"from": "device", "cmd": 7, "seqno": 2},
            {"from": "device", "cmd": 8, "seqno": 0, "payload": '{"dps":{"1":true}}'},
        ],
    }
    async with asyncio.timeout(60), Replayer(rec) as replayer:
        dev = _device(replayer, dev_id, SYNTH["local_key_ascii"], "3.1")
        await dev.connect()
        try:
            assert await dev.set_dps({"1": True}) == {"1": True}
            await replayer.finished.wait()
        finally:
            await dev.close()
        await replayer.client_done.wait()
    _assert_clean(replayer)

    real = load_vectors("tuyapi_test_cipher_v31.json")
    vector = real["vectors"][0]
    expected = json.loads(vector["decrypted_json"])
    status_frame = pack_55aa(0, 8, vector["payload_ascii"].encode())
    rec = {
        "version": "3.1",
        "local_key": real["local_key_ascii"],
        "steps": [
            {
                "from": "client",
                "cmd": 10,
                "seqno": 1,
                "json": {
                    "gwId": expected["devId"],
                    "devId": expected["devId"],
                    "uid": expected["devId"],
                    "t": "0",
                },
            },
            {"from": "device", "cmd": 10, "seqno": 1, "payload": '{"dps":{"1":true,"2":0}}'},
            {"from": "device", "frame_hex": status_frame.hex()},
        ],
    }
    pushes = Collector()
    async with asyncio.timeout(60), Replayer(rec) as replayer:
        dev = _device(replayer, expected["devId"], real["local_key_ascii"], "3.1")
        dev.subscribe(pushes)
        await dev.connect()
        try:
            await pushes.wait_count(1)
            await replayer.finished.wait()
        finally:
            await dev.close()
        await replayer.client_done.wait()
    assert pushes.items == [expected["dps"]]
    _assert_clean(replayer)
