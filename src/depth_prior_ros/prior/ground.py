"""Analytic depth of the ground plane seen by a pinhole camera (the embodied prior's first layer).

A pixel's ray r (optical frame, normalised to z = 1) leaves the camera centre C = t (ground frame,
height h = t_z) along d = R r. It meets the road z = 0 at lambda = -h / d_z when d_z < 0, and
because r_z = 1 that lambda is exactly the pixel's z-depth. Without distortion d_z is affine in
(u, v), so the whole map is one outer sum and one division.
"""
from __future__ import annotations

import numpy as np

from ..geometry.camera import PinholeCamera
from ..geometry.extrinsics import check_ground_pose


def ray_ground_z(K: np.ndarray, width: int, height: int, R_ground_from_camera: np.ndarray,
                 D: np.ndarray | None = None, rays: np.ndarray | None = None) -> np.ndarray:
    """Vertical component d_z of every pixel's z-normalised ray in the ground frame: float64 (H, W).

    rays: optional precomputed undistorted rays (H, W, 3) (e.g. cached per camera).
    """
    R = np.asarray(R_ground_from_camera, dtype=np.float64)
    if rays is None and D is not None and np.any(np.asarray(D) != 0):
        rays = PinholeCamera(K, width, height, D).pixel_rays()
    if rays is not None:
        return rays @ R[2]
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    y = (np.arange(height, dtype=np.float64) - cy) / fy  # (H,)
    x_u = (np.arange(width, dtype=np.float64) - cx) / fx  # (W,)
    # x = (u - cx - skew * y * fy / fy) / fx  -> x = x_u - skew * y / fx
    col = R[2, 0] * x_u  # (W,)
    row = (R[2, 1] - R[2, 0] * skew / fx) * y + R[2, 2]  # (H,)
    return row[:, None] + col[None, :]


def ground_depth(K, width: int, height: int, T_ground_from_camera, max_depth: float | None = None,
                 D=None, rays: np.ndarray | None = None) -> np.ndarray:
    """Z-depth (m) where each pixel's ray meets the ground plane in front of the camera.

    K: (3, 3) intrinsics; T_ground_from_camera: (4, 4), camera above the road (z up, road z = 0);
    D: optional plumb_bob / rational_polynomial distortion (rays are undistorted first).
    Returns float32 (height, width); NaN above the horizon, beyond ``max_depth``, or where the ray
    meets the ground behind the camera.
    """
    T = np.asarray(T_ground_from_camera, dtype=np.float64)
    check_ground_pose(T)
    dz = ray_ground_z(K, int(width), int(height), T[:3, :3], D, rays)
    h = T[2, 3]
    # depth = -h / dz lies in (0, max_depth] exactly when dz <= -h / max_depth, so comparisons on dz replace
    # those on the depth; the lower bound keeps absurd intrinsics from underflowing the float32 depth to 0,
    # and without a cap the float32 maximum keeps near-horizon rays from overflowing to inf.
    f32 = np.finfo(np.float32)
    upper = max_depth if max_depth is not None else float(f32.max)
    off_ground = ~(dz <= -h / upper)  # also catches NaN rays
    lower = -h / float(f32.tiny)
    # Without distortion dz is affine in (u, v), so its minimum sits at an image corner: an O(1) check
    # spares a full-frame pass. Only absurd intrinsics ever need the extra mask.
    lowest = min(dz[0, 0], dz[0, -1], dz[-1, 0], dz[-1, -1]) if rays is None and D is None else dz.min()
    if lowest < lower:
        off_ground |= dz < lower
    depth = np.empty(dz.shape, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(-h, dz, out=depth, casting="same_kind")
    depth[off_ground] = np.nan
    return depth


def ground_points(depth: np.ndarray, rays_ground: np.ndarray, camera_centre: np.ndarray) -> np.ndarray:
    """Ground-frame 3-D points of pixels with known z-depth: C + depth * (R r). (H, W, 3) float64."""
    return camera_centre[None, None, :] + depth[..., None].astype(np.float64) * rays_ground


def horizon_row(K: np.ndarray, R_ground_from_camera: np.ndarray, u: float) -> float:
    """Image row v where d_z = 0 in column u (the horizon line); rows below it see the ground."""
    K = np.asarray(K, dtype=np.float64)
    R = np.asarray(R_ground_from_camera, dtype=np.float64)
    x = (u - K[0, 2]) / K[0, 0]
    coef_y = R[2, 1]
    if abs(coef_y) < 1e-12:
        return float("nan")
    y = -(R[2, 0] * x + R[2, 2]) / coef_y
    return float(y * K[1, 1] + K[1, 2])
