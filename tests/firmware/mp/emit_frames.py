# Run by tests/firmware/test_frame_crosscheck.py under MicroPython: the firmware's own codecs
# (esp32/tuya*.py) build client frames, printed as JSON lines for CPython to decode with the
# integration's codec and with tinytuya.
import binascii
import json
import sys

sys.path.insert(0, sys.argv[1])  # the esp32/ folder

import plug
import tuya
from hmacsha import HmacKey

DEV = "bf0123456789abcdefgh"
KEY = b"0123456789abcdef"
SESSION = bytes(range(16))
T = 1700000000

for version in ("3.1", "3.3", "3.4", "3.5"):
    codec = plug.make_codec(version, DEV, KEY)
    if version in ("3.4", "3.5"):
        codec.key = SESSION  # as after a negotiation
        if version == "3.4":
            codec.mac_key = HmacKey(SESSION)
    frames = [
        (codec.query_cmd, codec.query_json(T)),
        (codec.control_cmd, codec.control_json({"1": True, "9": 0}, T)),
        (tuya.HEART_BEAT, codec.heartbeat_json()),
        (tuya.UPDATEDPS, codec.refresh_json()),
    ]
    for seqno, (cmd, text) in enumerate(frames, 1):
        frame = codec.encode(seqno, cmd, text)
        hexed = binascii.hexlify(frame).decode()
        print(
            json.dumps(
                {"version": version, "seqno": seqno, "cmd": cmd, "text": text, "frame": hexed}
            )
        )
