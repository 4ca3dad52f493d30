"""One-slot mailbox with exact frame accounting, and the worker thread that empties it (no ROS).

A subscription callback must never block, so it validates cheaply and ``put``s the frame; a newer
frame replaces a waiting one, which is counted as dropped ("busy"). The worker ``take``s frames and
reports each as processed or dropped with a reason. At every instant, under one lock:

    received == processed + sum(dropped.values()) + pending

(pending: waiting + in progress <= 2, plus the images ``hold``-ed while their camera_info is awaited).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

DROP_BUSY = "busy"          # replaced in the mailbox by a newer frame
DROP_SHUTDOWN = "shutdown"  # still waiting when the node stopped
DROP_ERROR = "error"        # unexpected exception while processing (a bug; logged)


class FrameDropped(Exception):
    """Raised by a frame handler: this frame is dropped for ``reason`` (a counter key); message: one sentence."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Frame:
    """What the callback hands to the worker: the message and the calibration it was checked against."""

    msg: Any                              # the image (depth_node) or the camera_info (prior_node)
    received_at: float                    # time.perf_counter() in the callback
    camera: Any = None                    # PinholeCamera of the frame
    info: Any = None                      # the sensor_msgs/CameraInfo it came from


@dataclass(frozen=True)
class FrameCounts:
    received: int
    processed: int
    dropped: dict
    pending: int

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class FrameMailbox:
    """Newest-frame-wins slot between a callback (producer) and one worker (consumer)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._in_progress = False
        self._closed = False
        self._held = 0
        self._received = 0
        self._processed = 0
        self._dropped: Counter = Counter()

    # producer side -----------------------------------------------------------------------
    def hold(self) -> None:
        """Count a frame received but not decided yet (an image waiting for its camera_info); it must
        come back through ``put(frame, held=True)`` or ``reject(reason, held=True)``."""
        with self._cond:
            self._received += 1
            self._held += 1

    def _arrive(self, held: bool) -> None:
        if held:
            self._held -= 1
        else:
            self._received += 1

    def put(self, frame: Frame, held: bool = False) -> bool:
        """Queue a frame; returns False when it was refused because the mailbox is closed."""
        with self._cond:
            self._arrive(held)
            if self._closed:
                self._dropped[DROP_SHUTDOWN] += 1
                return False
            if self._slot is not None:
                self._dropped[DROP_BUSY] += 1
            self._slot = frame
            self._cond.notify()
            return True

    def reject(self, reason: str, held: bool = False) -> None:
        """Count a frame the callback refused without queueing it (invalid message, no camera_info...)."""
        with self._cond:
            self._arrive(held)
            self._dropped[reason] += 1

    # consumer side -----------------------------------------------------------------------
    def take(self, timeout: float | None = None) -> Frame | None:
        """Wait for the next frame; None on timeout or when closed. Call ``done`` after each frame."""
        with self._cond:
            if self._in_progress:
                raise RuntimeError("take() called before done() for the previous frame")
            if not self._cond.wait_for(lambda: self._slot is not None or self._closed, timeout):
                return None
            if self._slot is None:
                return None
            frame, self._slot = self._slot, None
            self._in_progress = True
            return frame

    def done(self, drop_reason: str | None = None) -> None:
        """Finish the frame from ``take``: processed (no reason) or dropped for ``drop_reason``."""
        with self._cond:
            if not self._in_progress:
                raise RuntimeError("done() called without a frame in progress")
            self._in_progress = False
            if drop_reason is None:
                self._processed += 1
            else:
                self._dropped[drop_reason] += 1
            self._cond.notify_all()

    # both ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting frames; a waiting frame is dropped ("shutdown"); wakes the worker."""
        with self._cond:
            self._closed = True
            if self._slot is not None:
                self._slot = None
                self._dropped[DROP_SHUTDOWN] += 1
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def counts(self) -> FrameCounts:
        with self._cond:
            pending = int(self._slot is not None) + int(self._in_progress) + self._held
            return FrameCounts(self._received, self._processed, dict(self._dropped), pending)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is waiting or in progress (tests, benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._slot is None and not self._in_progress, timeout)


class FrameWorker(threading.Thread):
    """Runs ``prepare()`` once, then ``handle(frame)`` for every frame taken from the mailbox.

    handle returns normally (processed) or raises FrameDropped (dropped with its reason). Any other
    exception is a bug: the frame is counted as "error", ``on_error(frame, exc)`` reports it, and the
    worker keeps going, because one odd frame must not stop a vehicle's depth stream.
    """

    def __init__(self, mailbox: FrameMailbox, handle: Callable[[Frame], None],
                 on_drop: Callable[[FrameDropped], None], on_error: Callable[[Exception], None],
                 prepare: Callable[[], None] | None = None, idle: Callable[[], None] | None = None,
                 name: str = "frame_worker"):
        super().__init__(name=name, daemon=True)
        self.mailbox = mailbox
        self._handle, self._on_drop, self._on_error = handle, on_drop, on_error
        self._prepare, self._idle = prepare, idle
        self.ready = threading.Event()

    def run(self) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception as exc:  # noqa: BLE001 - reported; frames still flow (e.g. prior only)
                self._on_error(exc)
        self.ready.set()
        while not self.mailbox.closed:
            frame = self.mailbox.take(timeout=0.25)
            if frame is None:
                if self._idle is not None and not self.mailbox.closed:
                    self._idle()
                continue
            reason = None
            try:
                self._handle(frame)
            except FrameDropped as drop:
                reason = drop.reason
                self._on_drop(drop)
            except Exception as exc:  # noqa: BLE001 - see class docstring
                reason = DROP_ERROR
                self._on_error(exc)
            finally:
                self.mailbox.done(reason)
            if self._idle is not None:
                self._idle()

    def stop(self, timeout: float = 5.0) -> None:
        self.mailbox.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


class ThrottledLog:
    """At most one line per key every ``period`` seconds, with the count of lines held back.

    Keys are drop reasons, so a flood of one kind of bad frame never hides another kind. (rclpy's
    own ``throttle_duration_sec`` throttles per call site, which would merge all reasons.)
    """

    def __init__(self, emit: Callable[[str], Any], period: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._emit, self.period, self._clock = emit, period, clock
        self._last: dict[str, float] = {}
        self._held: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._held[key] += 1
                return False
            held, self._held[key], self._last[key] = self._held[key], 0, now
        self._emit(message + (f" ({held} more like this since the last report)" if held else ""))
        return True
