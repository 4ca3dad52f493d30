"""Exact ray casting against the road plane and boxes (vectorised numpy, no rasteriser).

Rays are given by their direction components as separate arrays (any, equal shapes) from a common
origin. All positions here are relative to that origin (camera-centred, world-aligned axes), which
keeps float32 exact to well below a millimetre wherever the vehicle is in the world.

Box ids: k >= 0 is box k of a ``BoxTable``; ``GROUND`` (-1) is the plane z = 0; ``NO_HIT`` (-2) is sky.
The ray parameter ``t`` is returned, so for camera rays normalised to optical z = 1 it *is* the z-depth,
and for unit rays it is the range.
"""
from __future__ import annotations

import numpy as np

from .scene import BoxTable

GROUND = -1
NO_HIT = -2
_TINY = np.float32(1e-12)


def safe_reciprocal(d: np.ndarray) -> np.ndarray:
    """1 / d with exact zeros nudged to a tiny value (keeps slab tests free of 0 * inf = NaN)."""
    d = np.where(d == 0, _TINY, d)
    return (np.float32(1.0) / d).astype(np.float32, copy=False)


def ground_hit(dz: np.ndarray, origin_height: float) -> np.ndarray:
    """Ray parameter of the plane z = 0 seen from ``origin_height`` above it; +inf for rays not going down."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.float32(-origin_height) / dz
    return np.where(dz < 0, t, np.float32(np.inf)).astype(np.float32, copy=False)


def box_hit(dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, centre_rel: np.ndarray, half: np.ndarray,
            yaw: float, inv: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Entry parameter of rays into a box (slab method); +inf where a ray misses or starts inside.

    dx, dy, dz: ray directions (same shapes, float32); centre_rel: (3,) box centre minus ray origin;
    half: (3,) half extents in the box frame; yaw: box rotation about z. ``inv`` are precomputed
    reciprocals of (dx, dy, dz), usable when yaw == 0.
    """
    c, s = np.cos(yaw), np.sin(yaw)
    # Ray origin in the box frame (the origin is 0 in the relative frame).
    o = np.array([-(c * centre_rel[0] + s * centre_rel[1]), -(-s * centre_rel[0] + c * centre_rel[1]),
                  -centre_rel[2]], dtype=np.float64)
    if yaw == 0.0 and inv is not None:
        ix, iy, iz = inv
    else:
        ix = safe_reciprocal(np.float32(c) * dx + np.float32(s) * dy)
        iy = safe_reciprocal(np.float32(-s) * dx + np.float32(c) * dy)
        iz = inv[2] if inv is not None else safe_reciprocal(dz)
    near = far = None
    for axis_inv, o_a, h_a in ((ix, o[0], half[0]), (iy, o[1], half[1]), (iz, o[2], half[2])):
        a = np.float32(-o_a) * axis_inv
        b = np.float32(h_a) * np.abs(axis_inv)
        lo, hi = a - b, a + b
        near = lo if near is None else np.maximum(near, lo)
        far = hi if far is None else np.minimum(far, hi)
    hit = (near <= far) & (near > 0)
    return np.where(hit, near, np.float32(np.inf))


def clipped_image_rect(points_cam: np.ndarray, K: np.ndarray, width: int, height: int,
                       near: float = 1e-3) -> tuple[int, int, int, int] | None:
    """Pixel rectangle (u0, u1, v0, v1), end-exclusive, that contains the image of the convex hull of
    ``points_cam`` (N, 3, optical frame) after clipping it at z = near; None when nothing is in view.

    The clipped hull's vertices are among the points in front and the crossings of segments between
    front and behind points, so projecting those gives the exact bounds.
    """
    z = points_cam[:, 2]
    front, behind = points_cam[z > near], points_cam[z <= near]
    if len(front) == 0:
        return None
    if len(behind):
        za, zb = front[:, None, 2], behind[None, :, 2]
        w = (za - near) / (za - zb)
        crossings = front[:, None, :] + w[..., None] * (behind[None, :, :] - front[:, None, :])
        front = np.concatenate([front, crossings.reshape(-1, 3)])
    uv = (front @ K.T)[:, :2] / front[:, 2:3]
    u0 = max(int(np.floor(uv[:, 0].min())) - 1, 0)
    u1 = min(int(np.ceil(uv[:, 0].max())) + 2, width)
    v0 = max(int(np.floor(uv[:, 1].min())) - 1, 0)
    v1 = min(int(np.ceil(uv[:, 1].max())) + 2, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return u0, u1, v0, v1


def cast_image(table: BoxTable, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray,
               T_camera_from_world: np.ndarray | None, K: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit for an image grid of rays (H, W) from ``origin`` (world, (3,)).

    Each box is only tested inside the pixel rectangle its corners project to (when the camera
    transform and K are given; pass None for distorted cameras to test every pixel).
    Returns t (H, W) float32 (+inf for sky) and ids (H, W) int16 (box index, GROUND or NO_HIT).
    """
    t_best = ground_hit(dz, float(origin[2]))
    ids = np.where(np.isfinite(t_best), np.int16(GROUND), np.int16(NO_HIT)).astype(np.int16)
    inv = (safe_reciprocal(dx), safe_reciprocal(dy), safe_reciprocal(dz))
    height, width = dz.shape
    candidates = range(len(table))
    if T_camera_from_world is not None and len(table):
        corners_cam = table.all_corners() @ T_camera_from_world[:3, :3].T + T_camera_from_world[:3, 3]
        candidates = np.flatnonzero(corners_cam[..., 2].max(axis=1) > 1e-3)  # not entirely behind
    for k in candidates:
        if T_camera_from_world is not None:
            rect = clipped_image_rect(corners_cam[k], K, width, height)
            if rect is None:
                continue
            u0, u1, v0, v1 = rect
        else:
            u0, u1, v0, v1 = 0, width, 0, height
        win = (slice(v0, v1), slice(u0, u1))
        t = box_hit(dx[win], dy[win], dz[win], table.center[k] - origin, table.half[k], float(table.yaw[k]),
                    (inv[0][win], inv[1][win], inv[2][win]))
        closer = t < t_best[win]
        np.copyto(t_best[win], t, where=closer)
        np.copyto(ids[win], np.int16(k), where=closer)
    return t_best, ids


def cast_rays(table: BoxTable, origin: np.ndarray, dirs: np.ndarray, max_distance: float | None = None,
              forward: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit for a list of rays dirs (N, 3) from ``origin`` (world, (3,)).

    Boxes are skipped when they lie entirely farther than ``max_distance`` (m) from the origin, or
    entirely behind the plane through the origin normal to ``forward`` (only pass ``forward`` when every
    ray points into its half-space); hits beyond ``max_distance`` may then be missed, nothing nearer.
    Returns t (N,) float32 (+inf on no hit) and ids (N,) int16.
    """
    d = np.asarray(dirs, dtype=np.float32)
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    t_best = ground_hit(dz, float(origin[2]))
    ids = np.where(np.isfinite(t_best), np.int16(GROUND), np.int16(NO_HIT)).astype(np.int16)
    inv = (safe_reciprocal(dx), safe_reciprocal(dy), safe_reciprocal(dz))
    candidates = np.arange(len(table))
    if len(table) and (max_distance is not None or forward is not None):
        keep = np.ones(len(table), bool)
        if max_distance is not None:
            keep &= np.linalg.norm(table.center - origin, axis=1) - np.linalg.norm(table.half, axis=1) <= max_distance
        if forward is not None:
            ahead = (table.all_corners() - origin) @ np.asarray(forward, dtype=np.float64)
            keep &= ahead.max(axis=1) > 0
        candidates = np.flatnonzero(keep)
    for k in candidates:
        t = box_hit(dx, dy, dz, table.center[k] - origin, table.half[k], float(table.yaw[k]), inv)
        closer = t < t_best
        t_best[closer] = t[closer]
        ids[closer] = k
    return t_best, ids
