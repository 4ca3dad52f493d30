"""Image <-> camera_info pairing by header stamp (what message_filters' synchronisers do for
depth_image_proc and its peers), as a pure class: no ROS, no threads, an injected clock.

Rules (stamps in integer nanoseconds):

- the newest ``capacity`` camera_infos are kept, by arrival;
- an image takes the camera_info with its exact stamp, else the nearest within ``tolerance``
  (ties: the later arrival). A camera_info stamped 0 carries no time (a static calibration
  publisher): it pairs with any image no stamped one matches (the newest such);
- an image with no partner yet waits: the two topics are not ordered with respect to each other, so
  its camera_info may still be on the way. At most ``hold`` images wait, each at most ``max_wait`` s.
  A waiting image is given up when newer images push it out, when it times out, or when a newer image
  is paired (frames stay in order: the newest wins, as in the node's mailbox).

Given-up images carry the reason ``no_camera_info`` when no camera_info has arrived at all, else
``unpaired_camera_info``, and a one-sentence message with the nearest stamp seen.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

NO_CAMERA_INFO = "no_camera_info"
UNPAIRED = "unpaired_camera_info"


@dataclass(frozen=True)
class Outcome:
    """What became of one image: paired with ``info`` (reason None), or given up for ``reason``."""

    image: Any
    info: Any = None
    reason: str | None = None
    message: str = ""


@dataclass
class _Waiting:
    stamp_ns: int
    image: Any
    since: float


class StampPairing:
    def __init__(self, tolerance_s: float, capacity: int = 10, hold: int = 3, max_wait_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        self.tolerance_ns = int(round(tolerance_s * 1e9))
        self.hold, self.max_wait_s, self._clock = hold, max_wait_s, clock
        self._infos: deque[tuple[int, Any]] = deque(maxlen=capacity)  # (stamp_ns, info), by arrival
        self._waiting: list[_Waiting] = []
        self.infos_seen = 0
        self.last_gap_ns: int | None = None  # nearest |image - camera_info| stamp of the last given-up image

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    # ------------------------------------------------------------------ inputs
    def add_info(self, stamp_ns: int, info) -> list[Outcome]:
        """Keep a camera_info; returns the waiting images it pairs (and the older ones it passes over)."""
        self._infos.append((int(stamp_ns), info))
        self.infos_seen += 1
        matched = [i for i, w in enumerate(self._waiting) if self._fits(w.stamp_ns, int(stamp_ns))]
        if not matched:
            return self.expire()
        last = matched[-1]
        outcomes = [self._give_up(w) for w in self._waiting[:last]]
        outcomes.append(Outcome(self._waiting[last].image, info))
        self._waiting = self._waiting[last + 1:]
        return outcomes + self.expire()

    def add_image(self, stamp_ns: int, image) -> list[Outcome]:
        """Pair an image now, or let it wait; returns every image decided by this call, oldest first."""
        info = self.match(int(stamp_ns))
        if info is not None:
            outcomes = [self._give_up(w) for w in self._waiting]  # older than this one: newest wins
            self._waiting = []
            return outcomes + [Outcome(image, info)]
        self._waiting.append(_Waiting(int(stamp_ns), image, self._clock()))
        outcomes = []
        while len(self._waiting) > self.hold:
            outcomes.append(self._give_up(self._waiting.pop(0)))
        return outcomes + self.expire()

    def expire(self) -> list[Outcome]:
        """Give up the images that waited longer than ``max_wait`` (call it now and then)."""
        now = self._clock()
        old = [w for w in self._waiting if now - w.since > self.max_wait_s]
        if not old:
            return []
        self._waiting = [w for w in self._waiting if now - w.since <= self.max_wait_s]
        return [self._give_up(w) for w in old]

    def drain(self, reason: str, message: str) -> list[Outcome]:
        """Give up every waiting image for ``reason`` (the inputs are going away)."""
        waiting, self._waiting = self._waiting, []
        return [Outcome(w.image, reason=reason, message=message) for w in waiting]

    # ------------------------------------------------------------------ matching
    def match(self, stamp_ns: int):
        """The camera_info for an image stamp (rules in the module docstring), None when there is none."""
        best, best_gap, timeless = None, None, None
        for info_stamp, info in self._infos:  # by arrival: later ones win ties
            if info_stamp == 0:
                timeless = info
                continue
            gap = abs(info_stamp - stamp_ns)
            if gap <= self.tolerance_ns and (best_gap is None or gap <= best_gap):
                best, best_gap = info, gap
        return best if best is not None else timeless

    def _fits(self, image_stamp: int, info_stamp: int) -> bool:
        return info_stamp == 0 or abs(info_stamp - image_stamp) <= self.tolerance_ns

    def _give_up(self, waiting: _Waiting) -> Outcome:
        if self.infos_seen == 0:
            return Outcome(waiting.image, reason=NO_CAMERA_INFO, message="no camera_info received yet")
        gaps = [abs(s - waiting.stamp_ns) for s, _ in self._infos if s != 0]
        self.last_gap_ns = min(gaps) if gaps else None
        nearest = f"the nearest is {self.last_gap_ns / 1e9:.3g} s away" if gaps else "none is stamped"
        return Outcome(waiting.image, reason=UNPAIRED,
                       message=f"no camera_info within camera_info_tolerance {self.tolerance_ns / 1e9:g} s of the "
                               f"image stamp {waiting.stamp_ns / 1e9:.9f} s ({nearest})")
