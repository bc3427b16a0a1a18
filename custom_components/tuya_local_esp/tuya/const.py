"""Constants of the Tuya local protocol.

Sources: ``../shared/docs/tuya-protocol.md`` §1-§3, which cites tinytuya ``core/command_types.py``
and ``core/header.py``, tuyapi ``lib/message-parser.js`` and hass-localtuya ``pytuya/const.py``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class Command(IntEnum):
    """Tuya command numbers (tinytuya ``core/command_types.py``; spec §2.0)."""

    UDP = 0x00
    SESS_KEY_NEG_START = 0x03
    SESS_KEY_NEG_RESP = 0x04
    SESS_KEY_NEG_FINISH = 0x05
    CONTROL = 0x07
    STATUS = 0x08
    HEART_BEAT = 0x09
    DP_QUERY = 0x0A
    CONTROL_NEW = 0x0D
    DP_QUERY_NEW = 0x10
    UPDATEDPS = 0x12
    UDP_NEW = 0x13
    BOARDCAST_LPV34 = 0x23
    REQ_DEVINFO = 0x25
    LAN_EXT_STREAM = 0x40


#: TCP port of the device (tinytuya ``const.py`` ``TCPPORT``).
DEFAULT_PORT: Final = 6668

PREFIX_55AA: Final = 0x000055AA
SUFFIX_55AA: Final = 0x0000AA55
PREFIX_6699: Final = 0x00006699
SUFFIX_6699: Final = 0x00009966
PREFIX_55AA_BYTES: Final = PREFIX_55AA.to_bytes(4, "big")
PREFIX_6699_BYTES: Final = PREFIX_6699.to_bytes(4, "big")
SUFFIX_55AA_BYTES: Final = SUFFIX_55AA.to_bytes(4, "big")
SUFFIX_6699_BYTES: Final = SUFFIX_6699.to_bytes(4, "big")

#: Largest value accepted in a frame's length field. Real frames stay under 2 KiB
#: (tinytuya rejects > 1440, hass-localtuya > 2000; spec §1.3); IR blasters send ~1 KiB.
MAX_FRAME_LENGTH: Final = 4096

#: Protocol versions this library speaks.
VERSIONS: Final = ("3.1", "3.2", "3.3", "3.4", "3.5")

#: Commands sent without the 15-byte "3.x" version header (spec §2.1; tinytuya
#: ``NO_PROTOCOL_HEADER_CMDS``).
NO_HEADER_CMDS: Final = frozenset(
    {
        Command.DP_QUERY,
        Command.DP_QUERY_NEW,
        Command.UPDATEDPS,
        Command.HEART_BEAT,
        Command.SESS_KEY_NEG_START,
        Command.SESS_KEY_NEG_RESP,
        Command.SESS_KEY_NEG_FINISH,
        Command.LAN_EXT_STREAM,
    }
)

#: Commands of the 3.4/3.5 session-key negotiation, always keyed with the real local key.
NEGOTIATION_CMDS: Final = frozenset(
    {Command.SESS_KEY_NEG_START, Command.SESS_KEY_NEG_RESP, Command.SESS_KEY_NEG_FINISH}
)

#: Length of the "3.x" + 12 bytes version header (tinytuya ``PROTOCOL_3x_HEADER``).
VERSION_HEADER_LEN: Final = 15

#: AES key of UDP discovery packets: md5("yGAdlopoPVldABfn") (tinytuya ``udp_helper.py``; spec §3).
UDP_KEY: Final = bytes.fromhex("6c1ec8e2bb9bb59ab50b0daf649b410a")

#: Error strings devices return as payload (spec §4).
ERROR_DATA_UNVALID: Final = b"json obj data unvalid"
ERROR_DATA_FORMAT: Final = b"data format error"
