"""Hub set-up without editing files (docs/hub-setup.md).

* Improv serial: the firmware (``esp32/main.py`` on the unix port) runs with its console on one
  end of a pty, exactly as on a board's USB serial; the PC side of ``scripts/hub_setup.py``
  (``ImprovClient``, ``provision``) talks to it from the other end. Protocol:
  https://www.improv-wifi.com/serial/.
* Setup access point: ``hubsetup.setup`` serves the setup page on loopback; a real HTTP client
  (``http.client``) posts the form.
* ``scripts/hub_setup.py --dry-run``: commands printed, firmware compiled and version-checked.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import pty
import random
import re
import socket
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custom_components.tuya_local_esp.hub import HubClient

from .conftest import ESP32, MICROPYTHON, MPY_CROSS, ROOT, free_port, load_script

hs = load_script("hub_setup")
SSID = "home-iot"
PASSWORD = "wifi pass wörd"


class Board:
    """esp32/main.py under MicroPython with stdin/stdout/stderr on a raw pty (the "USB serial")."""

    def __init__(self, workdir: Path, cfg: dict[str, Any] | None) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.json"
        if cfg is not None:
            self.config_path.write_text(json.dumps(cfg))
        master, slave = pty.openpty()
        tty.setraw(slave)  # a UART: no echo, no line editing, Ctrl-C is just a byte
        self.proc = subprocess.Popen(
            [MICROPYTHON, str(ESP32 / "main.py"), str(self.config_path)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=workdir,
        )
        os.close(slave)
        self.fd = master
        self.read, self.write = hs.fd_link(master)
        self.client = hs.ImprovClient(self.read, self.write)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_output(self, text: str, within: float = 15.0) -> None:
        """Read the console until ``text`` appears (packets are parsed away by the client)."""
        deadline = time.monotonic() + within
        while text.encode() not in self.client.text + self.client._buf:
            assert self.alive(), self.console()
            assert time.monotonic() < deadline, f"{text!r} not seen:\n{self.console()}"
            self.client.next(0.2)

    def console(self) -> str:
        return bytes(self.client.text + self.client._buf).decode(errors="replace")

    def close(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        os.close(self.fd)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Any]:
    made: list[Board] = []

    def make(cfg: dict[str, Any] | None) -> Board:
        b = Board(tmp_path, cfg)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def _unprovisioned(port: int) -> dict[str, Any]:
    # what a user may have on the board before provisioning: everything but Wi-Fi and secret
    return {"hub_id": "provtest", "bind": "127.0.0.1", "port": port, "ntp_host": False}


async def test_improv_provisions_wifi_and_secret_then_hub_serves(board) -> None:
    port = free_port()
    b = board(_unprovisioned(port))
    secret = hs.secrets.token_urlsafe(24)
    info = await asyncio.to_thread(hs.provision, b.read, b.write, SSID, PASSWORD, secret)
    assert info == {
        "hub_id": "provtest",
        "ip": "",  # the unix port has no Wi-Fi interface
        "port": str(port),
        "hostname": "tuya-esp-hub-provtest",
    }
    cfg = json.loads(b.config_path.read_text())
    assert cfg["wifi"] == {"ssid": SSID, "password": PASSWORD}
    assert cfg["secret"] == secret
    assert cfg["port"] == port
    assert cfg["hub_id"] == "provtest"
    assert not (b.workdir / "config.json.tmp").exists()
    # the same boot goes on into the hub, which accepts the new secret
    await asyncio.to_thread(b.wait_output, "ready")
    client = HubClient("127.0.0.1", port, secret)
    try:
        await client.connect()
        health = await client.health()
        assert health.plugs_online == 0
    finally:
        await client.close()
    assert secret not in b.console()
    assert PASSWORD not in b.console()


async def test_improv_device_info_and_state(board) -> None:
    b = board(None)  # no config.json at all
    assert await asyncio.to_thread(b.client.current_state, 10.0) == hs.S_READY
    name, version, chip, device = await asyncio.to_thread(b.client.call, hs.C_INFO)
    assert name == "tuya_local_esp hub"
    # improv.py keeps its own copy of the version (importing app.py there would load the hub's
    # modules during set-up): it must be the one the hub reports (app.FW_VERSION)
    assert version == re.search(r'FW_VERSION = "([^"]+)"', (ESP32 / "app.py").read_text())[1]
    assert chip
    assert device.startswith("tuya-esp-hub-")
    addr = await asyncio.to_thread(b.client.call, hs.C_HUB_INFO)
    assert addr[2] == "6670"  # the default port


def test_reprovision_a_configured_board_through_the_raw_repl(tmp_path: Path) -> None:
    """A configured board does not serve Improv at boot: the script interrupts it, enters the
    raw REPL (Ctrl-A) and starts improv.main() there. The unix port's REPL stands in for the
    board's (it has the same raw REPL); machine.reset() afterwards exists only on a board."""
    old = {
        "secret": "old-secret-0123456789abcdef",
        "wifi": {"ssid": "old", "password": "oldpassword"},
        "port": 7123,
        "plugs_file": "plugs.json",
    }
    (tmp_path / "config.json").write_text(json.dumps(old))
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen(
        [MICROPYTHON],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env={**os.environ, "MICROPYPATH": f":.frozen:{ESP32}"},
    )
    os.close(slave)
    try:
        read, write = hs.fd_link(master)
        secret = "new-secret-0123456789abcdefXYZ"
        info = hs.provision(read, write, "new-net", "newpassword", secret, boot_wait=2.0)
        assert info["port"] == "7123"
        cfg = json.loads((tmp_path / "config.json").read_text())
        assert cfg == {
            **old,
            "secret": secret,
            "wifi": {"ssid": "new-net", "password": "newpassword"},
        }
    finally:
        proc.kill()
        proc.wait(5)
        os.close(master)


def _expect_error(b: Board, code: int) -> None:
    p = b.client.next(5.0)
    assert p == (hs.T_ERROR, bytes((code,))), (p, b.console())


def _bad_inputs(b: Board) -> None:
    assert b.client.current_state(10.0) == hs.S_READY
    bad = bytearray(hs.improv_rpc(hs.C_STATE, ()))
    bad[-1] ^= 0xFF
    b.write(bytes(bad))
    _expect_error(b, 0x01)  # invalid RPC packet (checksum)
    b.write(hs.improv_rpc(0x42, ()))
    _expect_error(b, 0x02)  # unknown RPC command
    b.write(hs.improv_packet(hs.T_RPC, bytes((hs.C_WIFI, 250)) + bytes(250)))
    _expect_error(b, 0x01)  # oversize: refused, its bytes skipped
    b.write(hs.improv_rpc(hs.C_WIFI, [b"", b"password"]))
    _expect_error(b, 0x01)  # empty SSID
    b.write(hs.improv_rpc(hs.C_SET_SECRET, [b"short"]))
    _expect_error(b, 0x01)
    # a secret that is valid but no Wi-Fi yet: nothing is written
    # random garbage, then a well-formed request is still answered
    rnd = random.Random(8)
    for _ in range(20):
        b.write(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 80))))
    b.write(b"IMPROV\x01\x03")  # a header cut short, then silence longer than the 1 s gap
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        b.client.next(0.1)  # drain whatever errors the garbage caused
    # a request eaten by a leftover partial packet is answered with an error: clients retry
    assert any(b.client.current_state(5.0) == hs.S_READY for _ in range(3))


async def test_improv_bad_input_gets_errors_and_never_crashes(board) -> None:
    b = board(_unprovisioned(free_port()))
    await asyncio.to_thread(_bad_inputs, b)
    assert b.alive()
    assert "Traceback" not in b.console()
    assert json.loads(b.config_path.read_text()) == _unprovisioned(
        json.loads(b.config_path.read_text())["port"]
    )


async def test_improv_client_skips_log_noise_and_split_reads() -> None:
    """The PC side on its own: packets split across reads, log text around them."""
    pkt = b"12 I main: hello\r\n" + hs.improv_packet(hs.T_STATE, b"\x02") + b"IMPRO"
    pkt += hs.improv_packet(hs.T_RESULT, bytes((3, 4, 3)) + b"abc") + b"\n"
    chunks = [pkt[i : i + 3] for i in range(0, len(pkt), 3)]
    c = hs.ImprovClient(lambda _t: chunks.pop(0) if chunks else b"", lambda _d: None)
    assert c.next(1.0) == (hs.T_STATE, b"\x02")
    assert c.state == hs.S_READY
    assert c.next(1.0) == (hs.T_RESULT, bytes((3, 4, 3)) + b"abc")
    assert b"hello" in c.text


# --- setup access point ------------------------------------------------------------------------


class SetupPage:
    """hubsetup.setup serving only the setup page (no serial) on loopback."""

    def __init__(self, workdir: Path, cfg: dict[str, Any] | None) -> None:
        self.config_path = workdir / "config.json"
        if cfg is not None:
            self.config_path.write_text(json.dumps(cfg))
        self.port = free_port()
        code = (
            "import sys\n"
            f"sys.path.insert(0, {str(ESP32)!r})\n"
            "import hubsetup\n"
            f"r = hubsetup.setup({str(self.config_path)!r}, http=('127.0.0.1', {self.port}),"
            " serial=False)\n"
            "print('SETUP-RESULT', r)\n"
        )
        self.log_path = workdir / "setup.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [MICROPYTHON, "-c", code], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
            )
        deadline = time.monotonic() + 10
        while "setup page on" not in self.log():
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.02)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode()
        finally:
            conn.close()

    def post_form(self, fields: dict[str, str]) -> tuple[int, dict[str, str], str]:
        from urllib.parse import urlencode

        return self.request(
            "POST",
            "/save",
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def setup_page(tmp_path: Path) -> Iterator[Any]:
    made: list[SetupPage] = []

    def make(cfg: dict[str, Any] | None) -> SetupPage:
        s = SetupPage(tmp_path, cfg)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


async def test_setup_page_validates_then_saves_and_shows_secret_once(setup_page) -> None:
    page = await asyncio.to_thread(setup_page, {"hub_id": "aptest", "port": 7777})

    def run() -> str:
        status, _, body = page.request("GET", "/")
        assert status == 200
        assert "<form" in body
        assert "aptest" in body
        status, headers, _ = page.request("GET", "/generate_204")  # a phone's captive probe
        assert status == 302
        assert headers["Location"] == "/"
        assert page.request("GET", "/save")[0] == 405
        # a client that opens a connection and sends nothing does not block the page
        with socket.create_connection(("127.0.0.1", page.port)):
            assert page.request("GET", "/")[0] == 200
        # refused requests: nothing is written
        status, _, body = page.post_form({"ssid": "", "password": "password1"})
        assert status == 400
        assert "SSID" in body
        status, _, body = page.post_form({"ssid": "net", "password": "short"})
        assert status == 400
        assert "password" in body
        assert page.request("POST", "/save", b"ssid=%ZZ")[0] == 400
        assert _raw(page.port, b"POST /save HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 411")
        big = b"POST /save HTTP/1.0\r\nContent-Length: 100000\r\n\r\n"
        assert _raw(page.port, big).startswith(b"HTTP/1.0 413")
        assert _raw(page.port, b"garbage\r\n\r\n").startswith(b"HTTP/1.0 400")
        long_line = b"GET /" + b"a" * 2000 + b" HTTP/1.0\r\n\r\n"
        assert _raw(page.port, long_line).startswith(b"HTTP/1.0 431")
        assert json.loads(page.config_path.read_text()) == {"hub_id": "aptest", "port": 7777}
        # the real thing
        status, _, body = page.post_form({"ssid": "My Net & Co", "password": "pässwörd 1+1"})
        assert status == 200
        return body

    body = await asyncio.to_thread(run)
    cfg = json.loads(page.config_path.read_text())
    assert cfg["wifi"] == {"ssid": "My Net & Co", "password": "pässwörd 1+1"}
    assert cfg["port"] == 7777
    assert len(cfg["secret"]) == 32
    assert cfg["secret"] in body  # shown once, on this answer
    assert "My Net &amp; Co" in body
    assert "pässwörd" not in body
    # provisioning is done: setup() returns
    await asyncio.to_thread(page.proc.wait, 10)
    assert "SETUP-RESULT True" in page.log()
    assert cfg["secret"] not in page.log()


async def test_setup_page_keeps_an_existing_secret(setup_page) -> None:
    secret = "existing-secret-0123456789abcdef"
    page = await asyncio.to_thread(setup_page, {"secret": secret})
    status, _, body = await asyncio.to_thread(
        page.post_form, {"ssid": "net", "password": "password1"}
    )
    assert status == 200
    assert "unchanged" in body
    assert secret not in body
    assert json.loads(page.config_path.read_text())["secret"] == secret


# --- scripts/hub_setup.py ----------------------------------------------------------------------


def _script(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "hub_setup.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TUYA_LOCAL_ESP_CACHE": str(cache), "HUB_WIFI_PASSWORD": "x"},
    )


def test_script_dry_run_prints_commands_and_compiles(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "firmware").mkdir(parents=True)
    image = cache / "firmware" / "ESP32_GENERIC-v1.26.1.bin"
    image.write_bytes(b"\xe9fake image")
    build = tmp_path / "build"
    res = _script(
        "--port", "/dev/ttyUSB7", "--ssid", "home", "--dry-run", "--mpy-cross", MPY_CROSS,
        "--build-dir", str(build), cache=cache,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "esptool --chip esp32 --port /dev/ttyUSB7 erase-flash" in out
    assert f"write-flash -z 0x1000 {image}" in out  # found in the cache folder
    assert "mpremote connect /dev/ttyUSB7 fs cp" in out
    assert "mpremote connect /dev/ttyUSB7 reset" in out
    assert "config.json" not in out  # never overwritten
    assert "SSID 'home'" in out
    modules = {p.stem for p in ESP32.glob("*.py")} - {"main", "boot"}
    assert {p.stem for p in build.glob("*.mpy")} == modules
    assert (build / "main.py").exists()
    assert (build / "boot.py").exists()
    ver, sub, arch = hs.mpy_header(build / "gcm.mpy")  # viper code: carries the arch
    assert (ver, sub, hs.ARCH_NUM[arch]) == (6, 3, "xtensawin")
    assert not hs.ImprovClient(lambda _t: b"", lambda _d: None).text  # nothing was sent anywhere


def test_script_refuses_mismatched_bytecode(tmp_path: Path) -> None:
    board_mpy = 6 | (2 << 8) | (10 << 10)  # an older MicroPython: mpy v6.2
    res = _script(
        "--port", "/dev/null", "--skip", "flash", "--dry-run", "--mpy-cross", MPY_CROSS,
        "--board-mpy", str(board_mpy), "--build-dir", str(tmp_path / "b"), cache=tmp_path,
    )  # fmt: skip
    assert res.returncode != 0
    assert "mpy v6.3" in res.stderr
    assert "v6.2" in res.stderr
    assert "mpy-cross" in res.stderr


def test_script_without_image_says_where_to_put_it(tmp_path: Path) -> None:
    res = _script("--port", "/dev/null", "--dry-run", cache=tmp_path)
    assert res.returncode != 0
    assert str(tmp_path / "firmware") in res.stderr


def test_script_chip_from_image_name(tmp_path: Path) -> None:
    image = tmp_path / "ESP32_GENERIC_S3-v1.26.1.bin"
    res = _script(
        "--port", "/dev/null", "--image", str(image), "--skip", "compile,copy,provision",
        "--dry-run", cache=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "--chip esp32s3" in res.stdout
    assert f"write-flash -z 0x0 {image}" in res.stdout


def test_unconfigured_hub_without_console_exits(tmp_path: Path) -> None:
    """Unix port, stdin closed and no setup page: provisioning gives up instead of hanging."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"port": free_port()}))
    res = subprocess.run(
        [MICROPYTHON, str(ESP32 / "main.py"), str(cfg)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hub not configured" in res.stdout
    assert "ready" not in res.stdout
    assert "secret" not in json.loads(cfg.read_text())


def test_summary_tells_what_to_enter_in_ha(capsys: pytest.CaptureFixture[str]) -> None:
    info = {"hub_id": "a1b2c3", "ip": "192.0.2.7", "port": "6670", "hostname": "tuya-esp-hub-a1"}
    hs.print_summary(info, "the-secret-0123456789abcdefghijk")
    out = capsys.readouterr().out
    assert "discovered by DHCP (host name tuya-esp-hub-a1)" in out
    assert "host:   192.0.2.7" in out
    assert "port:   6670" in out
    assert "secret: the-secret-0123456789abcdefghijk" in out


def test_improv_client_resends_a_lost_or_swallowed_request() -> None:
    """The device drops a packet it lost half-read (silence) or reports it invalid: the client
    sends it again, and gives up with a clear error after its attempts."""
    answer = hs.improv_packet(hs.T_RESULT, bytes((hs.C_INFO, 4, 3)) + b"abc")
    invalid = hs.improv_packet(hs.T_ERROR, b"\x01")
    for replies in ([b"", answer], [invalid, answer], [b"", invalid, answer]):
        sent: list[bytes] = []
        pending: list[bytes] = []

        def write(data: bytes, sent: list[bytes] = sent, pending: list[bytes] = pending,
                  replies: list[bytes] = replies) -> None:  # fmt: skip
            sent.append(data)
            pending.append(replies[len(sent) - 1])

        def read(_t: float, pending: list[bytes] = pending) -> bytes:
            return pending.pop(0) if pending else b""

        c = hs.ImprovClient(read, write)
        assert c.call(hs.C_INFO, resend_after=0.2) == ["abc"]
        assert sent == [hs.improv_rpc(hs.C_INFO, ())] * len(replies)
    c = hs.ImprovClient(lambda _t: invalid, lambda _d: None)
    with pytest.raises(hs.ImprovError, match="invalid RPC packet"):
        c.call(hs.C_INFO, resend_after=0.2)
    c = hs.ImprovClient(lambda _t: b"", lambda _d: None)
    with pytest.raises(hs.ImprovError, match="no answer"):
        c.call(hs.C_INFO, timeout=0.5, resend_after=0.1)


def test_script_reports_a_failing_tool_clearly(tmp_path: Path) -> None:
    """No board on the port (here mpremote is not even installed): a short error, no traceback."""
    res = _script("--port", str(tmp_path / "no-such-tty"), "--skip", "flash", cache=tmp_path)
    assert res.returncode != 0
    assert "failed (exit status" in res.stderr
    assert "Traceback" not in res.stderr
