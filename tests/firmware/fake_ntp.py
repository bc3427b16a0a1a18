"""A minimal SNTP server on loopback for firmware tests (RFC 4330 server answer: mode 4,
stratum 1, transmit timestamp), run in a daemon thread so any test's event loop can use it."""

from __future__ import annotations

import socket
import struct
import threading
import time

NTP_DELTA = 2208988800  # 1900-01-01 -> 1970-01-01 (RFC 5905 §6)


class FakeNtp:
    """Answers every 48-byte request with the host clock plus ``offset`` seconds.

    ``silent`` drops requests instead (an unreachable server); ``requests`` counts them.
    """

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self.silent = False
        self.requests = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)  # lets close() end the thread promptly
        self._closing = False
        self.port: int = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="fake-ntp", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closing:
            try:
                data, addr = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            if self.silent or len(data) < 48:
                continue
            secs = int(time.time()) + self.offset + NTP_DELTA
            reply = bytearray(48)
            reply[0] = 0x24  # LI 0, version 4, mode 4 (server)
            reply[1] = 1  # stratum 1
            struct.pack_into(">II", reply, 40, secs & 0xFFFFFFFF, 0)
            self._sock.sendto(bytes(reply), addr)

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._closing = True
        self._thread.join(5)
        self._sock.close()
