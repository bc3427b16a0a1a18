"""Exceptions raised by the hub client library.

``HubError`` is the root; callers can catch it alone or map each subclass to its own
Home Assistant error (connection problems vs. wrong secret vs. a refused command).
"""

from __future__ import annotations


class HubError(Exception):
    """Base class of every error raised by this library."""


class HubConnectionError(HubError):
    """The TCP connection could not be opened or was lost."""


class HubAuthError(HubError):
    """The hub did not prove knowledge of the shared secret, or refused ours (wrong secret)."""


class HubProtocolError(HubError):
    """The peer broke the channel rules: bad framing, bad MAC, unsupported version, bad JSON."""


class HubTimeoutError(HubError):
    """The hub did not answer within the timeout."""


class HubCommandError(HubError):
    """The hub answered a request with an error code (see ``docs/hub-protocol.md`` §6).

    ``code`` is the machine-readable code (for example ``"offline"``, ``"limit"``) and
    ``message`` the hub's human-readable explanation.
    """

    def __init__(self, code: str, message: str = "") -> None:
        """Store the hub's error code and message."""
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class HubBusyError(HubConnectionError):
    """The hub refused us with ``busy``: it serves as many clients as it can (§2, §6)."""
