"""Exceptions raised by the Tuya protocol library.

``TuyaError`` is the base; callers map the subclasses to their own errors (Home Assistant maps
``TuyaKeyError`` to ``invalid_auth`` and the others to ``cannot_connect``). No message ever contains
a local key or session key.
"""

from __future__ import annotations


class TuyaError(Exception):
    """Base class of every error of this library."""


class TuyaConnectionError(TuyaError):
    """The TCP connection could not be opened, or was closed or reset by the device."""


class TuyaBusyError(TuyaConnectionError):
    """Another client holds the device's only connection (accepted, then closed as it connects)."""


class TuyaKeyError(TuyaError):
    """The device rejected or did not understand our local key (wrong key, or wrong version)."""


class TuyaProtocolError(TuyaError):
    """A frame or payload violated the protocol (bad CRC/HMAC/tag, bad length, bad JSON)."""


class TuyaFrameError(TuyaProtocolError):
    """One frame in the byte stream was malformed; the stream itself stays usable."""


class TuyaDeviceError(TuyaProtocolError):
    """The device answered with an error (non-zero retcode or an error string)."""


class TuyaTimeoutError(TuyaError):
    """The device did not answer within the allotted time."""
