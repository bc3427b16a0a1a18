"""Firmware update of a hub over its channel (``docs/hub-protocol.md`` §7.3.1).

One job: send a firmware bundle (the modules built by ``scripts/build_firmware.py``, described
by its ``manifest.json``) to a connected hub with the requests ``update_begin``,
``update_file``, ``update_chunk`` and ``update_commit``, through :meth:`HubClient.request`. The
hub checks each file's SHA-256, writes it beside the running firmware and switches at the
commit, then restarts into the new version on trial (it rolls back by itself if that version
does not come up). No Home Assistant imports.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .client import HubClient
from .errors import HubCommandError, HubError, HubProtocolError
from .models import parse_reply_object

CHUNK: Final = 1024
"""Largest ``update_chunk`` sent (1368 base64 characters: a record stays far below 4096 bytes,
§3, §5); the hub's ``update_begin`` answer asks for less (256 bytes: its heap is fragmented)."""

type Progress = Callable[[int, int], None]
"""Called with (bytes sent, bytes in all) after every chunk."""


@dataclass(frozen=True, slots=True)
class FirmwareFile:
    """One module of a bundle: file name on the hub, content, and its SHA-256 (hex)."""

    name: str
    data: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class FirmwareBundle:
    """A firmware to install.

    ``version`` is what the hub reports in ``hello.fw`` once running it, ``mpy`` the
    ``sys.implementation._mpy`` value its modules need (None for source modules), ``notes``
    its release notes (Markdown, from the firmware's section of ``CHANGELOG.md``; None when
    the bundle has none).
    """

    version: str
    mpy: int | None
    files: tuple[FirmwareFile, ...]
    notes: str | None = None

    @property
    def size(self) -> int:
        """Bytes in all files."""
        return sum(len(f.data) for f in self.files)


class FirmwareBundleError(ValueError):
    """A bundle directory that cannot be installed.

    It is missing or malformed, or a file does not match the SHA-256 in its manifest.
    """


def load_bundle(directory: Path) -> FirmwareBundle:
    """Read ``directory/manifest.json`` and its files (blocking I/O: run it in an executor).

    The manifest is ``{"version", "mpy", "notes", "files": [{"name", "size", "sha256"}]}``
    (``scripts/build_firmware.py``; ``notes`` optional). Raises :class:`FirmwareBundleError`.
    """
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        version = manifest["version"]
        mpy = manifest.get("mpy")
        notes = manifest.get("notes")
        files = []
        for entry in manifest["files"]:
            name, digest = entry["name"], entry["sha256"]
            data = (directory / name).read_bytes()
            if (
                not isinstance(name, str)
                or "/" in name
                or hashlib.sha256(data).hexdigest() != digest
                or len(data) != entry["size"]
            ):
                raise FirmwareBundleError(f"{name}: content does not match the manifest")
            files.append(FirmwareFile(name, data, digest))
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, FirmwareBundleError):
            raise
        raise FirmwareBundleError(f"firmware bundle in {directory}: {err}") from err
    if (
        not isinstance(version, str)
        or not files
        or not (mpy is None or isinstance(mpy, int))
        or not (notes is None or isinstance(notes, str))
    ):
        raise FirmwareBundleError(f"firmware bundle in {directory}: malformed manifest")
    return FirmwareBundle(version, mpy, tuple(files), notes or None)


def _chunk_size(data: object) -> int:
    """``update_begin`` result data: ``{"chunk": largest chunk in bytes}``."""
    obj = parse_reply_object(data)
    chunk = obj.get("chunk")
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise HubProtocolError("update_begin result: chunk must be a positive integer")
    return min(chunk, CHUNK)


async def install(
    client: HubClient, bundle: FirmwareBundle, progress: Progress | None = None
) -> str:
    """Install ``bundle`` on the hub of ``client`` (connected); return the committed version.

    The hub restarts right after the commit's answer, so the connection drops then and the
    client reconnects by itself; the hub reports the new version in its next ``hello``. On any
    failure before the commit, the hub keeps running its old firmware (the update is abandoned
    with ``update_abort``, or when the connection ends).

    Raises :class:`HubCommandError` (``busy``: another client is updating or the running
    firmware is still on trial; ``bad_hash``; ``incompatible``: modules for another
    MicroPython or chip; ``storage``: flash full or failing; ``unknown_type``: a firmware
    without updates, which needs one USB install), :class:`HubTimeoutError`,
    :class:`HubConnectionError`, :class:`HubProtocolError`.
    """
    total = bundle.size
    chunk = await client.request(
        "update_begin",
        _chunk_size,
        version=bundle.version,
        files=len(bundle.files),
        size=total,
        mpy=bundle.mpy,
    )
    sent = 0
    try:
        for f in bundle.files:
            await client.request(
                "update_file", parse_reply_object, name=f.name, size=len(f.data), sha256=f.sha256
            )
            for offset in range(0, len(f.data), chunk):
                part = f.data[offset : offset + chunk]
                await client.request(
                    "update_chunk",
                    parse_reply_object,
                    name=f.name,
                    offset=offset,
                    data=base64.b64encode(part).decode(),
                )
                sent += len(part)
                if progress is not None:
                    progress(sent, total)
        answer: dict[str, Any] = await client.request("update_commit", parse_reply_object)
    except HubCommandError as err:
        if err.code != "bad_hash":  # a bad hash ends the update on the hub already
            await _abort(client)
        raise
    version = answer.get("version")
    return version if isinstance(version, str) else bundle.version


async def _abort(client: HubClient) -> None:
    """Ask the hub to drop the update now (best effort: a dropped connection does it too)."""
    with contextlib.suppress(HubError):
        await client.request("update_abort", parse_reply_object)
