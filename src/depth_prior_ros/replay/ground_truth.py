"""Ground-truth depth for a camera frame: from a depth image topic, or from LiDAR projected into the image.

LiDAR projection follows the KITTI convention: every point in front of the camera is transformed
into the optical frame, projected with the pinhole model and rounded to the nearest pixel; where
several points land on one pixel the nearest one wins (a z-buffer), because the farther ones are
hidden behind it from the camera's point of view.
"""
from __future__ import annotations

import numpy as np

from ..geometry.camera import PinholeCamera


class GroundTruthError(ValueError):
    """Ground truth that cannot be built for this frame (one sentence says why)."""


def depth_from_image(depth: np.ndarray, encoding: str = "32FC1") -> np.ndarray:
    """A depth image (REP 118) -> float32 (H, W) metres with NaN where unknown.

    32FC1 is metres with NaN/inf/0 unknown; 16UC1 (and mono16) is millimetres with 0 unknown.
    """
    enc = encoding.lower()
    if enc in ("16uc1", "mono16"):
        out = np.asarray(depth, dtype=np.float32) / np.float32(1000.0)
    elif enc == "32fc1":
        out = np.array(depth, dtype=np.float32, copy=True)
    else:
        raise GroundTruthError(f"a depth image must be 32FC1 (m) or 16UC1 (mm), not {encoding}")
    if out.ndim != 2:
        raise GroundTruthError(f"a depth image must have one channel, got shape {out.shape}")
    with np.errstate(invalid="ignore"):
        out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def project_points(points: np.ndarray, T_camera_from_points: np.ndarray, camera: PinholeCamera,
                   min_depth: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (N, 3) in any frame -> pixel rows (M,), cols (M,) and z-depth (M,) of those inside the image.

    Points closer than ``min_depth`` along the optical axis (or behind the camera) are dropped.
    """
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    T = np.asarray(T_camera_from_points, dtype=np.float64)
    cam = pts @ T[:3, :3].T + T[:3, 3]
    cam = cam[np.isfinite(cam).all(axis=1) & (cam[:, 2] > min_depth)]
    uv, z = camera.project(cam)
    col = np.rint(uv[:, 0])
    row = np.rint(uv[:, 1])
    inside = (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height) & np.isfinite(z)
    return row[inside].astype(np.int64), col[inside].astype(np.int64), z[inside]


def zbuffer(rows: np.ndarray, cols: np.ndarray, depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scatter depths (M,) to an (H, W) float32 image keeping the nearest per pixel; NaN where none."""
    out = np.full(height * width, np.nan, dtype=np.float32)
    if depth.size == 0:
        return out.reshape(height, width)
    flat = rows * width + cols
    order = np.lexsort((depth, flat))  # by pixel, then nearest first
    flat, depth = flat[order], depth[order]
    first = np.ones(flat.size, dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    out[flat[first]] = depth[first]
    return out.reshape(height, width)


def lidar_depth(points: np.ndarray, T_camera_from_lidar: np.ndarray, camera: PinholeCamera,
                min_depth: float = 0.1) -> np.ndarray:
    """Sparse ground truth: LiDAR points (N, 3) in their own frame -> float32 (H, W) z-depth, NaN elsewhere."""
    rows, cols, z = project_points(points, T_camera_from_lidar, camera, min_depth)
    return zbuffer(rows, cols, z, camera.height, camera.width)


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    """AbsRel of depth ``a`` against ``b`` (H, W) where both are known, and how many pixels that is."""
    with np.errstate(invalid="ignore"):
        both = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    n = int(np.count_nonzero(both))
    if n == 0:
        return float("nan"), 0
    return float(np.mean(np.abs(a[both] - b[both]) / b[both])), n
