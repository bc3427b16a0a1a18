"""Why a Tuya device cannot be used: the classification of failed connection attempts.

One job: turn the evidence of connection set-ups and sessions into the error a user is shown,
across attempts: :class:`~.errors.TuyaKeyError` (the device refused the local key),
:class:`~.errors.TuyaBusyError` (another client holds the device) or a timeout/connection error
(silent or unreachable), and count what automatic version detection needs. The set-up itself
(:mod:`.device`) raises :class:`ClosedEarly` and :class:`Silent` for what it saw on one
connection; :class:`FailureTracker` keeps the counts between attempts.

Protocol facts used here (spec = ``../shared/docs/tuya-protocol.md``):

* devices accept one TCP connection at a time; another client holding it causes refusals, resets
  or connections dropped right after they opened (§4);
* a wrong local key gets no answer at all or an undecryptable one (§4): silence and resets never
  count as a key failure, and a silent set-up may also mean another protocol version.
"""

from __future__ import annotations

from .errors import TuyaBusyError, TuyaConnectionError, TuyaError, TuyaKeyError, TuyaTimeoutError

#: Connection set-ups in a row that stayed silent before ``auto`` tries the other versions
#: (a refused key or an undecryptable answer makes it try them at once).
REPROBE_AFTER = 2
#: A connection the device closes within this many seconds of opening it was "dropped early"
#: (a rival client, e.g. the vendor app, takes the plug back within moments of being dropped).
BUSY_WINDOW = 5.0
#: Early drops in a row that mean another client holds the device (-> TuyaBusyError).
BUSY_AFTER = 3


class ClosedEarly(TuyaConnectionError):
    """The device closed or reset the connection before answering the set-up."""

    def __init__(self, message: str, *, key_suspect: bool) -> None:
        """``key_suspect``: see the attribute."""
        super().__init__(message)
        #: True: an orderly close (FIN) right after our session-key request, or an answer to it
        #: that did not verify (3.4/3.5): the key may be wrong (checked by a second connection).
        self.key_suspect = key_suspect


class Silent(TuyaTimeoutError):
    """The device accepted the TCP connection and then answered nothing."""


def version_explains(err: TuyaError) -> bool:
    """Whether another protocol version could explain this set-up failure."""
    return isinstance(err, TuyaKeyError | Silent)


class FailureTracker:
    """The failure evidence of one device across connection attempts and sessions.

    Attributes:
        last_error: why the last background (re)connection failed; None after a success.
        key_failures: background attempts in a row that failed with :class:`TuyaKeyError`.
        suspect: set-ups in a row that failed in a way another protocol version could explain.
        early_drops: connections in a row the device closed early (busy evidence).

    """

    def __init__(self) -> None:
        """Start with no evidence."""
        self.last_error: TuyaError | None = None
        self.key_failures = 0
        self.suspect = 0
        self.early_drops = 0

    @property
    def busy(self) -> bool:
        """True while the last attempt found another client holding the device."""
        return isinstance(self.last_error, TuyaBusyError)

    def connected(self) -> None:
        """A set-up succeeded: forget the failures (the early-drop count waits for the session)."""
        self.last_error = None
        self.key_failures = 0
        self.suspect = 0

    def session_ended(
        self, opened: float, closed: float, *, by_device: bool
    ) -> TuyaBusyError | None:
        """A live session ended (loop times); a TuyaBusyError when it was an early drop too many."""
        if not by_device or closed - opened >= BUSY_WINDOW:
            self.early_drops = 0
            return None
        self.early_drops += 1
        if self.early_drops < BUSY_AFTER:
            return None
        return TuyaBusyError(
            f"the device dropped {self.early_drops} connections in a row within "
            f"{BUSY_WINDOW:g} s of opening them: another client holds it"
        )

    def classify(self, err: TuyaError, *, version_suspect: bool) -> TuyaError:
        """Count a failed attempt and return its public class.

        Args:
            err: why the attempt failed.
            version_suspect: the version is detected automatically and the TCP connection was
                accepted, so a failure :func:`version_explains` counts towards trying others.

        Returns:
            :class:`TuyaBusyError` after :data:`BUSY_AFTER` early closes in a row, else ``err``.

        """
        if isinstance(err, ClosedEarly):
            self.early_drops += 1
            if self.early_drops >= BUSY_AFTER:
                return TuyaBusyError(f"another client holds the device ({err})")
            return err
        self.early_drops = 0
        if version_suspect and version_explains(err):
            self.suspect += 1
        return err

    def record(self, err: TuyaError) -> None:
        """A classified failure is reported: remember it and count key refusals in a row."""
        self.last_error = err
        self.key_failures = self.key_failures + 1 if isinstance(err, TuyaKeyError) else 0
