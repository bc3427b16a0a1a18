"""FailureTracker: how failed attempts add up to a key refusal, a busy device or a version probe.

Pure bookkeeping (no I/O); the same rules over TCP are in ``test_faults_direct.py``.
"""

from __future__ import annotations

from custom_components.tuya_local_esp.tuya import (
    TuyaBusyError,
    TuyaConnectionError,
    TuyaKeyError,
    TuyaTimeoutError,
)
from custom_components.tuya_local_esp.tuya.failures import (
    BUSY_AFTER,
    BUSY_WINDOW,
    ClosedEarly,
    FailureTracker,
    Silent,
    version_explains,
)


def test_early_drops_in_a_row_mean_another_client() -> None:
    tracker = FailureTracker()
    for _ in range(BUSY_AFTER - 1):
        assert tracker.session_ended(0.0, BUSY_WINDOW / 2, by_device=True) is None
    busy = tracker.session_ended(0.0, 1.0, by_device=True)
    assert isinstance(busy, TuyaBusyError)
    tracker.record(busy)
    assert tracker.busy
    # a long session, or one we closed ourselves, starts the count again
    assert tracker.session_ended(0.0, BUSY_WINDOW, by_device=True) is None
    assert tracker.early_drops == 0
    tracker.session_ended(0.0, 1.0, by_device=True)
    assert tracker.session_ended(0.0, 1.0, by_device=False) is None
    assert tracker.early_drops == 0


def test_set_ups_closed_early_become_busy_and_other_failures_reset_the_count() -> None:
    tracker = FailureTracker()
    early = ClosedEarly("closed before answering", key_suspect=False)
    results = [tracker.classify(early, version_suspect=False) for _ in range(BUSY_AFTER)]
    assert results[:-1] == [early] * (BUSY_AFTER - 1)
    assert isinstance(results[-1], TuyaBusyError)
    refused = TuyaConnectionError("refused")
    assert tracker.classify(refused, version_suspect=True) is refused
    assert tracker.early_drops == 0
    assert tracker.suspect == 0  # a refused TCP connection says nothing about the version


def test_key_refusals_and_silence_count_towards_other_versions_only_when_suspect() -> None:
    tracker = FailureTracker()
    silent = Silent("nothing")
    assert version_explains(silent)
    assert version_explains(TuyaKeyError("refused"))
    assert not version_explains(TuyaTimeoutError("plain timeout"))
    tracker.classify(silent, version_suspect=False)
    assert tracker.suspect == 0
    tracker.classify(silent, version_suspect=True)
    tracker.classify(TuyaKeyError("refused"), version_suspect=True)
    assert tracker.suspect == 2
    tracker.connected()
    assert tracker.suspect == 0


def test_key_failures_count_in_a_row_and_a_success_forgets_them() -> None:
    tracker = FailureTracker()
    tracker.record(TuyaKeyError("refused"))
    tracker.record(TuyaKeyError("refused"))
    assert tracker.key_failures == 2
    tracker.record(TuyaTimeoutError("silent"))
    assert tracker.key_failures == 0
    tracker.record(TuyaKeyError("refused"))
    assert isinstance(tracker.last_error, TuyaKeyError)
    assert not tracker.busy
    tracker.connected()
    assert tracker.key_failures == 0
    assert tracker.last_error is None
