"""Analytic depth of the ground plane seen by a pinhole camera (the embodied prior's first layer).

A pixel's ray r = (x, y, 1) (optical frame, normalised to z = 1) leaves the camera centre C = t (ground
frame, height h = t_z) along d = R r. It meets the road z = 0 at lambda = -h / d_z when d_z < 0, and
because r_z = 1 that lambda is exactly the pixel's z-depth. Its inverse, the ground disparity
q = -d_z / h = c . (x, y, 1) with c = -R[2] / h, is affine in the ray's (x, y): without distortion
(x, y) are affine in (u, v), so q is an outer sum of a row and a column term; with distortion (x, y) are
the undistorted coordinates cached per camera (:class:`RayGrid`). The depth is 1 / q where
1 / max_depth <= q (and q small enough that the float32 depth does not underflow), NaN elsewhere.

The map is computed in blocks of rows that fit in the L2 cache, so the frame is written to memory once;
the range of q over a block is known in O(1) (affine: extremes at the block's corners), so blocks wholly
above the horizon are filled with NaN and blocks wholly on the ground skip the NaN mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.camera import PinholeCamera
from ..geometry.extrinsics import check_ground_pose

F32 = np.finfo(np.float32)
BLOCK_PIXELS = 1 << 16  # pixels per block: 256 KiB of float32 scratch stays in L2
# Relative bound on float32 rounding of q = sum of three products, against the sum of their magnitudes.
_ROUNDING = 8 * float(F32.eps)
# A block whose terms are larger than this many times its smallest valid q is summed in float64.
_CANCELLATION = 2.0


def block_rows(width: int) -> int:
    """Rows per block of an image ``width`` pixels wide."""
    return max(1, BLOCK_PIXELS // max(int(width), 1))


@dataclass(frozen=True, eq=False)
class RayGrid:
    """Undistorted normalised coordinates of every pixel centre, planar, cached per camera.

    x, y: (H, W), float32 or float64 as the rays given (pixel (u, v) sees the optical-frame ray (x, y, 1));
    they are read as float32 except where q's terms cancel digits (see ``_fill_depth``).
    bounds: float64 (B, 4), per block of ``block_rows(W)`` rows the min and max of x and of y, so the range
    of an affine function of (x, y) over a block is known without reading the block.
    """

    x: np.ndarray
    y: np.ndarray
    bounds: np.ndarray

    @classmethod
    def from_rays(cls, rays: np.ndarray) -> "RayGrid":
        """rays: (H, W, 3) z-normalised rays (e.g. ``PinholeCamera.pixel_rays()``, float64, or the
        float32 copy a cache keeps)."""
        dtype = np.float64 if rays.dtype == np.float64 else np.float32
        x = np.ascontiguousarray(rays[..., 0], dtype=dtype)
        y = np.ascontiguousarray(rays[..., 1], dtype=dtype)
        step = block_rows(x.shape[1])
        bounds = [(x[r:r + step].min(), x[r:r + step].max(), y[r:r + step].min(), y[r:r + step].max())
                  for r in range(0, x.shape[0], step)]
        return cls(x, y, np.asarray(bounds, dtype=np.float64).reshape(-1, 4))

    @classmethod
    def from_camera(cls, camera: PinholeCamera) -> "RayGrid":
        return cls.from_rays(camera.pixel_rays())

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape


def disparity_limits(min_depth: float, max_depth: float | None) -> tuple[np.float32, np.float32]:
    """float32 (lo, hi) such that a float32 disparity d has lo <= d <= hi exactly when its float32 depth
    1 / d lies in [min_depth, max_depth] (max_depth None: the depth is finite; min_depth <= 0: hi = inf).

    Testing d instead of the depth lets a pass mask before (or without) dividing; lo and hi are found by
    stepping from the rounded reciprocals, so the test agrees with the division to the last bit.
    """
    one = np.float32(1.0)
    upper = float(F32.max) if max_depth is None else float(max_depth)
    with np.errstate(over="ignore", divide="ignore"):
        lo = np.float32(1.0 / upper)
        while not one / lo <= upper:
            lo = np.nextafter(lo, np.float32(np.inf))
        while lo > 0 and one / np.nextafter(lo, np.float32(0)) <= upper:
            lo = np.nextafter(lo, np.float32(0))
        if min_depth <= 0:
            return lo, np.float32(np.inf)
        hi = np.float32(1.0 / min_depth)
        while not one / hi >= min_depth:
            hi = np.nextafter(hi, np.float32(0))
        while np.isfinite(hi) and one / np.nextafter(hi, np.float32(np.inf)) >= min_depth:
            hi = np.nextafter(hi, np.float32(np.inf))
    return lo, hi


def ground_disparity_coefficients(T_ground_from_camera: np.ndarray) -> np.ndarray:
    """c (3,): the ground disparity (inverse ground depth) of the optical-frame ray (x, y, 1) is c . (x, y, 1)."""
    T = np.asarray(T_ground_from_camera, dtype=np.float64)
    return -T[2, :3] / T[2, 3]


def affine_terms(K: np.ndarray, c: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted camera: the ground disparity is row[v] + col[u]; float64 (H,), (W,).

    x = (u - cx) / fx - skew * y / fx and y = (v - cy) / fy (the inverse of K).
    """
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    y = (np.arange(height, dtype=np.float64) - cy) / fy
    x_u = (np.arange(width, dtype=np.float64) - cx) / fx
    return (c[1] - c[0] * skew / fx) * y + c[2], c[0] * x_u


class _AffineDisparity:
    """q = row[v] + col[u] of an undistorted camera (float64 terms, float32 copies)."""

    def __init__(self, K: np.ndarray, c: np.ndarray, width: int, height: int):
        self.row, self.col = affine_terms(K, c, width, height)
        self.row32, self.col32 = self.row.astype(np.float32), self.col.astype(np.float32)

    def term_ranges(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per block (rows from each start to the next), the (B, 2) minima and maxima of the two terms."""
        n = starts.size
        lo = np.stack([np.minimum.reduceat(self.row, starts), np.full(n, self.col.min())], axis=1)
        hi = np.stack([np.maximum.reduceat(self.row, starts), np.full(n, self.col.max())], axis=1)
        return lo, hi

    def evaluate(self, r0: int, r1: int, out: np.ndarray) -> None:
        row, col = (self.row32, self.col32) if out.dtype == np.float32 else (self.row, self.col)
        np.add(row[r0:r1, None], col[None, :], out=out)


class _RayDisparity:
    """q = c0 x + c1 y + c2 over cached undistorted coordinates."""

    def __init__(self, rays: RayGrid, c: np.ndarray):
        self.rays, self.c = rays, c
        self.scratch: dict = {}

    def term_ranges(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = self.rays.bounds
        c0, c1, c2 = self.c
        x_terms = np.sort(c0 * b[:, 0:2], axis=1)
        y_terms = np.sort(c1 * b[:, 2:4], axis=1)
        const = np.full(b.shape[0], c2)
        return (np.stack([x_terms[:, 0], y_terms[:, 0], const], axis=1),
                np.stack([x_terms[:, 1], y_terms[:, 1], const], axis=1))

    def evaluate(self, r0: int, r1: int, out: np.ndarray) -> None:
        dtype = out.dtype
        scratch = self.scratch.get(dtype)
        if scratch is None or scratch.size < out.size:
            scratch = self.scratch[dtype] = np.empty(out.size, dtype=dtype)
        np.multiply(self.rays.x[r0:r1], self.c[0], out=out, dtype=dtype)
        out += np.multiply(self.rays.y[r0:r1], self.c[1], out=scratch[:out.size].reshape(out.shape), dtype=dtype)
        out += dtype.type(self.c[2])


def _block_plan(term_lo: np.ndarray, term_hi: np.ndarray, lo: float, hi: float) -> dict[str, np.ndarray]:
    """Per block, from the (B, n) ranges of q's n terms: what to do (bool arrays of length B).

    sky: every q < lo (NaN fill); wide: the terms can cancel digits (opposite signs, magnitudes well above
    the smallest valid q), so sum in float64; mask: some q may lie outside [lo, hi]; hi: some q may exceed hi.
    """
    q_min, q_max = term_lo.sum(axis=1), term_hi.sum(axis=1)
    magnitude = np.maximum(np.abs(term_lo), np.abs(term_hi)).sum(axis=1)
    slack = _ROUNDING * magnitude
    pos, neg = term_hi > 0, term_lo < 0
    opposite = pos.sum(axis=1) * neg.sum(axis=1) > (pos & neg).sum(axis=1)  # a term > 0 and another < 0
    with np.errstate(invalid="ignore"):
        need_hi = ~(q_max < hi - slack)
        return {"sky": q_max < lo - slack,
                "wide": opposite & (magnitude > _CANCELLATION * np.maximum(q_min, lo)),
                "mask": need_hi | ~(q_min >= lo + slack), "hi": need_hi}


def _fill_depth(depth: np.ndarray, disparity, lo, hi) -> None:
    """Write 1 / q into depth block by block, NaN where q < lo, q > hi or q is NaN.

    The range of q over each block (known without evaluating it) decides: all below lo -> NaN fill; all
    within [lo, hi] -> no mask. Where the terms of q nearly cancel (rays grazing the horizon of a rolled
    camera), float32 terms would lose digits, so those blocks are summed in float64 and rounded once.
    """
    height, width = depth.shape
    step = block_rows(width)
    starts = np.arange(0, height, step)
    plan = _block_plan(*disparity.term_ranges(starts), float(lo), float(hi))
    mask = np.empty((step, width), dtype=bool)
    wide = np.empty((step, width), dtype=np.float64)
    for r0, sky, use_wide, use_mask, use_hi in zip(starts.tolist(), *(plan[k].tolist() for k in
                                                                     ("sky", "wide", "mask", "hi"))):
        block = depth[r0:r0 + step]
        n = block.shape[0]
        if sky:
            block.fill(np.nan)
            continue
        if use_wide:
            disparity.evaluate(r0, r0 + n, wide[:n])
            np.copyto(block, wide[:n], casting="same_kind")
        else:
            disparity.evaluate(r0, r0 + n, block)
        if use_mask:
            np.less(block, lo, out=mask[:n])
            if use_hi:
                mask[:n] |= block > hi
        np.reciprocal(block, out=block)  # NaN q stays NaN
        if use_mask:
            np.copyto(block, np.float32(np.nan), where=mask[:n])


def ground_depth(K, width: int, height: int, T_ground_from_camera, max_depth: float | None = None,
                 D=None, rays: RayGrid | None = None) -> np.ndarray:
    """Z-depth (m) where each pixel's ray meets the ground plane in front of the camera.

    K: (3, 3) intrinsics; T_ground_from_camera: (4, 4), camera above the road (z up, road z = 0);
    D: optional plumb_bob / rational_polynomial distortion (rays are undistorted first);
    rays: the camera's undistorted rays, cached (:class:`RayGrid`; takes precedence over D).
    Returns float32 (height, width); NaN above the horizon, beyond ``max_depth``, or where the ray
    meets the ground behind the camera.
    """
    T = np.asarray(T_ground_from_camera, dtype=np.float64)
    check_ground_pose(T)
    width, height = int(width), int(height)
    K = np.asarray(K, dtype=np.float64)
    if rays is None and D is not None and np.any(np.asarray(D) != 0):
        rays = RayGrid.from_camera(PinholeCamera(K, width, height, D))
    c = ground_disparity_coefficients(T)
    lo, hi = disparity_limits(float(F32.tiny), max_depth)  # depth >= tiny: no underflow to 0
    depth = np.empty((height, width), dtype=np.float32)
    if rays is not None and rays.shape != (height, width):
        raise ValueError(f"cached rays are {rays.shape[1]}x{rays.shape[0]} but the image is {width}x{height}")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        disparity = _AffineDisparity(K, c, width, height) if rays is None else _RayDisparity(rays, c)
        _fill_depth(depth, disparity, lo, hi)
    return depth


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
