"""Frame accounting (mailbox + worker), throttled logs, backend degrade/retry/recover, diagnostics levels."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from depth_prior_ros.models import BackendBase, BackendError, Prediction, register_backend
from depth_prior_ros.ros.backend_manager import FAILED, READY, BackendManager
from depth_prior_ros.ros.diagnostics import ERROR, OK, WARN, DiagnosticReport, LatencyStats, add_frame_values
from depth_prior_ros.ros.worker import Frame, FrameCounts, FrameDropped, FrameMailbox, FrameWorker, ThrottledLog


def invariant(counts: FrameCounts) -> bool:
    return counts.received == counts.processed + counts.dropped_total + counts.pending


def test_newest_frame_wins_and_replaced_frames_count_as_busy():
    box = FrameMailbox()
    for i in range(3):
        box.put(Frame(i, time.perf_counter()))
    box.reject("invalid_image")
    counts = box.counts()
    assert (counts.received, counts.dropped, counts.pending) == (4, {"busy": 2, "invalid_image": 1}, 1)
    assert invariant(counts)
    frame = box.take(timeout=1)
    assert frame.msg == 2 and box.counts().pending == 1  # in progress
    box.done()
    assert box.take(timeout=0.01) is None
    box.put(Frame(3, 0.0))
    box.close()  # the waiting frame is dropped, later frames are refused
    assert not box.put(Frame(4, 0.0))
    counts = box.counts()
    assert counts.dropped["shutdown"] == 2 and counts.pending == 0 and invariant(counts)
    with pytest.raises(RuntimeError):
        box.done()


def test_worker_accounts_for_every_frame_under_a_burst():
    box = FrameMailbox()
    handled, drops, errors = [], [], []

    def handle(frame):
        time.sleep(0.002)  # slower than the producer, so frames get replaced
        if frame.msg % 7 == 0:
            raise FrameDropped("no_pose", "no transform")
        if frame.msg % 11 == 0:
            raise RuntimeError("bug")
        handled.append(frame.msg)

    worker = FrameWorker(box, handle, drops.append, errors.append)
    worker.start()
    assert worker.ready.wait(5)
    snapshots = []

    def watch():
        while worker.is_alive() and not box.closed:
            snapshots.append(box.counts())

    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(1, 401):
        box.put(Frame(i, time.perf_counter()))
    box.put(Frame(401, time.perf_counter()))
    assert box.wait_idle(30)
    worker.stop()
    watcher.join(5)
    counts = box.counts()
    assert counts.received == 401 and counts.pending == 0
    assert counts.processed == len(handled) and counts.processed >= 1
    assert counts.dropped.get("no_pose", 0) == len(drops) and counts.dropped.get("error", 0) == len(errors)
    assert invariant(counts) and all(invariant(c) for c in snapshots)
    assert handled[-1] == 401  # the newest frame is never the one dropped
    assert handled == sorted(handled)


def test_throttled_log_holds_back_repeats_per_key():
    lines, now = [], [0.0]
    log = ThrottledLog(lines.append, period=5.0, clock=lambda: now[0])
    assert log("invalid_image", "a")
    assert not log("invalid_image", "b")
    assert log("no_pose", "c")  # another reason is not hidden by the first
    now[0] = 6.0
    assert log("invalid_image", "d")
    assert lines == ["a", "c", "d (1 more like this since the last report)"]


# --------------------------------------------------------------------------- backend degrade / recover
class ScaleAmbiguousBackend(BackendBase):
    """A real (tiny) backend: returns inverse image brightness as scale-ambiguous depth."""

    name = "test_worker_backend"
    output_kind = "scale_depth"

    def __init__(self):
        self.warmed = None

    def predict(self, image):
        if image[0, 0, 0] == 255:
            raise RuntimeError("poisoned frame")
        return Prediction(256.0 / (image[..., 0].astype(np.float32) + 1.0), "scale_depth")

    def warmup(self, width, height):
        self.warmed = (width, height)


LOAD_FAILURES = {"left": 0}


@register_backend("test_worker_backend")
def _make_backend(weights="", device="auto", dtype="fp32", **options):
    if LOAD_FAILURES["left"] > 0:
        LOAD_FAILURES["left"] -= 1
        raise BackendError("CUDA out of memory (simulated load failure)")
    return ScaleAmbiguousBackend()


def test_backend_load_failure_degrades_then_retries_and_recovers():
    LOAD_FAILURES["left"] = 2
    infos, errors, now = [], [], [100.0]
    manager = BackendManager("test_worker_backend", {"weights": "", "device": "cpu", "dtype": "fp32"},
                             infos.append, errors.append, retry_period=10.0, clock=lambda: now[0])
    assert not manager.load(lambda timeout: (64, 48))
    assert manager.backend is None and manager.state == FAILED
    assert len(errors) == 1 and "CUDA out of memory" in errors[0] and "retrying every 10 s" in errors[0]
    report = DiagnosticReport()
    manager.report(report)
    assert report.level == ERROR and report.as_dict()["backend_state"] == "failed"

    assert not manager.maybe_retry(lambda t: (64, 48))  # not due yet
    now[0] += 10.0
    assert manager.maybe_retry(lambda t: (64, 48))
    manager._loader.join(5)
    assert manager.state == FAILED and manager.load_attempts == 2
    now[0] += 10.0
    assert manager.maybe_retry(lambda t: (64, 48))
    manager._loader.join(5)
    assert manager.state == READY and manager.backend.warmed == (64, 48)
    assert any("ready" in line for line in infos)
    report = DiagnosticReport()
    manager.report(report)
    assert report.level == OK


def test_frame_failures_mark_the_period_error_until_frames_succeed():
    LOAD_FAILURES["left"] = 0
    manager = BackendManager("test_worker_backend", {}, lambda m: None, lambda m: None)
    assert manager.load(lambda timeout: None)  # no camera yet: the default warm-up size
    assert manager.backend.warmed == (640, 360)
    manager.record_frame("RuntimeError: poisoned frame")
    manager.record_frame(None)
    report = DiagnosticReport()
    manager.report(report)
    assert report.level == ERROR and "1 frame(s)" in report.message
    report = DiagnosticReport()
    manager.report(report)  # next period: frames succeed again
    assert report.level == OK and report.as_dict()["backend_frame_failures"] == "1"


# --------------------------------------------------------------------------- diagnostics
def test_frame_values_warn_on_bad_input_but_not_on_load_shedding():
    prev = FrameCounts(10, 8, {"busy": 2}, 0)
    busy_only = FrameCounts(20, 14, {"busy": 6}, 0)
    report = DiagnosticReport()
    add_frame_values(report, busy_only, prev, 1.0, ("busy", "invalid_image"))
    values = report.as_dict()
    assert report.level == OK and values["dropped_invalid_image"] == "0" and values["rate_out_hz"] == "6"
    bad = FrameCounts(25, 15, {"busy": 6, "invalid_image": 4}, 0)
    report = DiagnosticReport()
    add_frame_values(report, bad, busy_only, 1.0)
    assert report.level == WARN and "4 invalid_image" in report.message
    report = DiagnosticReport()
    add_frame_values(report, bad, bad, 1.0)
    assert report.level == WARN and "no frames received" in report.message


def test_latency_window_reports_mean_and_max_then_keeps_last():
    stats = LatencyStats()
    stats.add({"node": 2.0, "prior": 1.0})
    stats.add({"node": 4.0})
    assert stats.window() == {"node": (3.0, 4.0), "prior": (1.0, 1.0)}
    assert stats.window() == {"node": (3.0, 4.0), "prior": (1.0, 1.0)}
