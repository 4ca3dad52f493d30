"""How far the camera moved between two frames: by image motion, or by odometry when a source has it.

Self-supervision learns depth from parallax. A camera standing still gives none (every depth explains
an unmoved image, and a pose network fed such pairs learns to invent motion): monodepth2 (after Zhou
et al. 2017) removes those frames. A camera crawling through a jam gives too little: at 1 px of image
motion per frame, a wrong depth costs the photometric loss almost nothing, and degenerate depths win.
So a frame is a training target only while the camera moves (``min_step``: motion since the previous
frame), and its temporal neighbours are the nearest frames before and after it that moved at least
``min_parallax`` away from it (at most ``max_offset`` frames away): at 10 m/s those are t-1 and t+1,
in a jam t-3 and t+4.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANALYSIS_WIDTH = 416  # image motion is measured at this width (Zhou et al.'s 416 px)


def motion_image(image: np.ndarray, width: int = ANALYSIS_WIDTH) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> uint8 grey (h, width) used by ``image_motion``."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    height = max(8, round(grey.shape[0] * width / grey.shape[1]))
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def image_motion(a: np.ndarray, b: np.ndarray, corners: int = 300) -> float:
    """Median displacement (px) of corners tracked from grey image ``a`` to ``b`` (Lucas-Kanade).

    The median follows the static background, not the cars that move beside a standing camera.
    A pair with nothing to track counts as moving (inf), so it is never silently dropped.
    """
    import cv2

    points = cv2.goodFeaturesToTrack(a, corners, 0.01, 5)
    if points is None or len(points) < 8:
        return float("inf")
    moved, status, _ = cv2.calcOpticalFlowPyrLK(a, b, points, None)
    ok = status[:, 0] == 1
    if ok.sum() < 8:
        return float("inf")
    return float(np.median(np.linalg.norm((moved - points)[ok, 0], axis=1)))


def odometry_motion(T_world_from_a: np.ndarray, T_world_from_b: np.ndarray) -> float:
    """Distance (m) the camera travelled between two poses (4, 4)."""
    return float(np.linalg.norm(np.asarray(T_world_from_b)[:3, 3] - np.asarray(T_world_from_a)[:3, 3]))


@dataclass
class MotionConfig:
    """mode: auto (odometry where both frames have it, else image motion) | image | odometry | none.
    Image motion in px at ANALYSIS_WIDTH, odometry in metres."""

    mode: str = "auto"
    min_step_px: float = 0.25      # a frame moved (is a target) when it moved this far since the previous one
    min_step_m: float = 0.02
    min_parallax_px: float = 3.0   # a neighbour is at least this far from its target
    min_parallax_m: float = 0.3
    max_offset: int = 10           # neighbours at most this many frames from their target

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "image", "odometry", "none"):
            raise ValueError(f"motion mode '{self.mode}' is not one of auto, image, odometry, none")


@dataclass
class MotionProbe:
    """What a frame keeps for motion checks: a small grey image and its odometry pose (either may be None)."""

    grey: np.ndarray | None
    pose: np.ndarray | None


class Motion:
    """Motion measurements under a MotionConfig: ``probe(image, pose)``, then ``moved`` / ``far_enough``."""

    def __init__(self, config: MotionConfig | None = None):
        self.config = config or MotionConfig()
        self.unit = ""

    def probe(self, image: np.ndarray, pose: np.ndarray | None) -> MotionProbe:
        mode = self.config.mode
        if mode == "odometry" and pose is None:
            raise ValueError("motion mode 'odometry' needs a pose for every frame (the source has none)")
        return MotionProbe(motion_image(image) if mode in ("auto", "image") else None, pose)

    def _beyond(self, a: MotionProbe, b: MotionProbe, px: float, m: float) -> bool:
        if self.config.mode == "none":
            return True
        if a.pose is not None and b.pose is not None and self.config.mode in ("auto", "odometry"):
            self.unit = "m"
            return odometry_motion(a.pose, b.pose) >= m
        self.unit = "px"
        return image_motion(a.grey, b.grey) >= px

    def moved(self, previous: MotionProbe, current: MotionProbe) -> bool:
        """The camera moved between consecutive frames (``current`` may be a training target)."""
        return self._beyond(previous, current, self.config.min_step_px, self.config.min_step_m)

    def far_enough(self, target: MotionProbe, other: MotionProbe) -> bool:
        """``other`` is far enough from ``target`` to be its temporal neighbour."""
        return self._beyond(target, other, self.config.min_parallax_px, self.config.min_parallax_m)
