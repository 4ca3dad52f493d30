"""How far the camera moved between two frames: by image motion, or by odometry when a source has it.

Self-supervision learns nothing from a camera that stands still (every depth explains an unmoved
image), and a pose network fed such pairs learns to invent motion; monodepth2 (after Zhou et al. 2017)
removes those frames. ``KeyframeFilter`` keeps a frame when the camera moved enough since the last
kept one, so a slow car yields every 2nd or 3rd frame and a car standing in a jam yields none.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANALYSIS_WIDTH = 416  # image motion is measured at this width (Zhou et al.'s 416 px, 1 px threshold)


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
    """mode: auto (odometry where a frame has it, else image motion) | image | odometry | none."""

    mode: str = "auto"
    min_flow_px: float = 1.0       # median corner motion at ANALYSIS_WIDTH
    min_travel_m: float = 0.1      # odometry distance

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "image", "odometry", "none"):
            raise ValueError(f"motion mode '{self.mode}' is not one of auto, image, odometry, none")


class KeyframeFilter:
    """Streaming keyframe choice: ``keep(image, pose)`` says whether this frame moved enough since the
    last kept one (the first frame is always kept). Holds one small grey image, whatever the length."""

    def __init__(self, config: MotionConfig | None = None):
        self.config = config or MotionConfig()
        self._grey = None
        self._pose = None
        self.last_motion = float("nan")
        self.unit = ""

    def keep(self, image: np.ndarray, pose: np.ndarray | None = None) -> bool:
        cfg = self.config
        grey = motion_image(image) if cfg.mode in ("auto", "image") else None
        first = self._grey is None and self._pose is None
        use_odometry = cfg.mode == "odometry" or (cfg.mode == "auto" and pose is not None and self._pose is not None)
        if first or cfg.mode == "none":
            moved = True
        elif use_odometry:
            if pose is None or self._pose is None:
                raise ValueError("motion mode 'odometry' needs a pose for every frame (the source has none)")
            self.last_motion, self.unit = odometry_motion(self._pose, pose), "m"
            moved = self.last_motion >= cfg.min_travel_m
        else:
            self.last_motion, self.unit = image_motion(self._grey, grey), "px"
            moved = self.last_motion >= cfg.min_flow_px
        if moved:
            self._grey, self._pose = grey, pose
        return moved
