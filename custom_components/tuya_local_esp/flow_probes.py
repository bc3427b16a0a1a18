"""Validation of the config flow's input and the probes that check it against the device.

A plug is probed by connecting once and reading its DPS (the first status query doubles as the
local-key check, spec §4), then asking it to re-report the candidate meter DPs (UPDATEDPS, spec
§2.9 and §5) to detect its profile (``profiles.detect``); a hub by authenticating once
(``docs/hub-protocol.md`` §4). Each function returns the form errors (``strings.json``
``config.error``) instead of raising.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT

from .const import (
    CONF_DETECTED_VERSION,
    CONF_DEVICE_ID,
    CONF_DP_IDS,
    CONF_LOCAL_KEY,
    CONF_PROFILE,
    CONF_PROTOCOL_VERSION,
    CONF_SECRET,
    CONF_UNMATCHED_DPS,
    LOGGER,
    REQUEST_TIMEOUT,
)
from .hub import HubAuthError, HubClient, HubError, Inventory
from .profiles import CANDIDATE_METERING_DPS, Detection, detect_profile
from .source import PlugSource
from .tuya import TuyaDevice, TuyaError, TuyaKeyError

#: Length of every Tuya local key: it is used as the raw 16-byte AES-128 key (spec §2.2).
LOCAL_KEY_LENGTH = 16
#: Detection waits at most this long (s) for the STATUS pushes that answer UPDATEDPS ...
DETECT_WAIT: Final = 2.0
#: ... and stops early once the plug has been quiet this long (s) after a push.
DETECT_QUIET: Final = 0.3


def local_key_error(key: str) -> str | None:
    """The form error for a local key that cannot be right, or None.

    A local key is 16 ASCII characters (spec §2.2); anything else is ``invalid_local_key``.
    """
    return None if len(key) == LOCAL_KEY_LENGTH and key.isascii() else "invalid_local_key"


async def probe_plug(
    data: Mapping[str, Any], version: str | None
) -> tuple[list[str], str, Detection]:
    """Connect once, read the DPS and detect the profile.

    ``version`` overrides the entry's protocol version for this probe (a discovered plug
    announced its own, so a wrong key is reported after one try instead of five).

    Returns:
        The DP ids the plug reported, its protocol version, and the detection
        (:func:`~.profiles.detect_profile` of the status and the UPDATEDPS pushes).

    Raises:
        TuyaKeyError: the plug did not accept the local key or protocol version.
        TuyaError: the plug could not be reached or answered nonsense.

    """
    device = TuyaDevice(
        data[CONF_HOST],
        data[CONF_DEVICE_ID],
        data[CONF_LOCAL_KEY],
        version=version or data[CONF_PROTOCOL_VERSION],
        version_hint=data.get(CONF_DETECTED_VERSION),
        port=int(data[CONF_PORT]),
        timeout=REQUEST_TIMEOUT,
        auto_reconnect=False,
    )
    async with device:
        status = dict(device.dps)
        refreshed = await refreshed_meters(device)
        return sorted(device.dps), device.version, detect_profile(status, refreshed)


async def refreshed_meters(device: TuyaDevice) -> dict[str, Any]:
    """Ask for the candidate meter DPs and collect the pushes that follow (bounded wait).

    A plug that does not know UPDATEDPS (or drops the request) leaves the result empty.
    """
    loop = asyncio.get_running_loop()
    pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    unsubscribe = device.subscribe(pushes.put_nowait)
    refreshed: dict[str, Any] = {}
    try:
        await device.update_dps(CANDIDATE_METERING_DPS)
        deadline = loop.time() + DETECT_WAIT
        wait = DETECT_WAIT
        while (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(min(wait, left)):
                    refreshed.update(await pushes.get())
            except TimeoutError:
                break
            wait = DETECT_QUIET
    except TuyaError as err:
        LOGGER.debug("Plug %s did not refresh its meters: %s", device.device_id, err)
    finally:
        unsubscribe()
    return refreshed


async def validate_plug(user_input: dict[str, Any], version: str | None = None) -> dict[str, str]:
    """Normalise ``user_input`` in place and probe the plug; return the form errors.

    On success ``user_input`` also gets the DP ids the plug reported, its version, the detected
    profile (wire form; absent when the plug reported nothing to switch) and, when no metering
    layout matched, the DP ids seen (for the repair issue; empty otherwise).
    """
    for field in (CONF_HOST, CONF_DEVICE_ID, CONF_LOCAL_KEY):
        user_input[field] = str(user_input[field]).strip()
    user_input[CONF_PORT] = int(user_input[CONF_PORT])
    if error := local_key_error(user_input[CONF_LOCAL_KEY]):
        return {CONF_LOCAL_KEY: error}
    try:
        dp_ids, found_version, detection = await probe_plug(user_input, version)
    except TuyaKeyError:
        return {"base": "invalid_auth"}
    except TuyaError as err:
        LOGGER.debug("Probe of %s failed: %s", user_input[CONF_HOST], err)
        return {"base": "cannot_connect"}
    except Exception:
        LOGGER.exception("Unexpected error while probing %s", user_input[CONF_HOST])
        return {"base": "unknown"}
    user_input[CONF_DP_IDS] = dp_ids
    user_input[CONF_DETECTED_VERSION] = found_version
    if detection.profile is not None:
        user_input[CONF_PROFILE] = detection.profile.to_wire()
    user_input[CONF_UNMATCHED_DPS] = [] if detection.matched else list(detection.seen)
    if detection.notes:
        LOGGER.debug("Profile of %s: %s", user_input[CONF_DEVICE_ID], "; ".join(detection.notes))
    return {}


async def validate_releasing(entry: ConfigEntry, data: dict[str, Any]) -> dict[str, str]:
    """Run :func:`validate_plug` for a configured plug.

    Plugs accept one connection, so the running entry lets go of it while we probe (and takes
    it again if the probe fails).
    """
    source: PlugSource | None = (
        entry.runtime_data.source if entry.state is ConfigEntryState.LOADED else None
    )
    device_id = entry.data[CONF_DEVICE_ID]
    if source is not None:
        await source.async_release(device_id)
    errors = await validate_plug(data)
    if errors and source is not None:
        await source.async_resume(device_id)
    return errors


def hub_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The hub form's input, normalised."""
    return {
        CONF_HOST: str(user_input[CONF_HOST]).strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_SECRET: user_input[CONF_SECRET],
    }


async def check_hub(data: Mapping[str, Any]) -> tuple[dict[str, str], Inventory | None]:
    """Authenticate to the hub; return (form errors, inventory or None)."""
    try:
        return {}, await probe_hub(data)
    except HubAuthError:
        return {"base": "invalid_auth"}, None
    except HubError as err:
        LOGGER.debug("Hub at %s: %s", data[CONF_HOST], err)
        return {"base": "cannot_connect"}, None
    except Exception:
        LOGGER.exception("Unexpected error while connecting to the hub")
        return {"base": "unknown"}, None


async def probe_hub(data: Mapping[str, Any]) -> Inventory:
    """Authenticate to the hub once and return its inventory.

    Raises:
        HubAuthError: wrong hub secret.
        HubError: the hub cannot be reached or spoke nonsense.

    """
    client = HubClient(data[CONF_HOST], data[CONF_PORT], data[CONF_SECRET])
    try:
        return await client.connect()
    finally:
        await client.close()
