"""Per-frame camera pose to the road (pitch, roll, height offsets from the mount calibration).

The mount pose is not the pose: a car pitches when it brakes, the road's grade changes, and at 1.5 m
height a 1 degree pitch error moves the ground depth at 20 m by 20-30%. The ground prior's disparity
is affine in the ray, q = c . (x, y, 1) with c = -u / h (u: the road's up axis in the optical frame,
h: the height; prior/ground.py), so the road pixels of the network, once aligned, give c by least squares:

- ``metric_depth``: 1 / d = c . ray: the whole c, so pitch, roll and height are observable;
- ``scale_depth`` (d = s p): 1 / p = s c . ray: c up to the unknown scale, so the direction u (pitch
  and roll) is observable, the height is not (it trades off with s);
- ``affine_disparity`` (a p + b = 1 / d): p = (c . ray - b) / a: b absorbs c's constant term, which
  is where the pitch mostly lives (c_y y + c_z with c_z = sin(pitch) / h): on road pixels of one frame
  alone the shift and the pitch trade off, and only the roll (c_x / c_y) is observable. Over a stream the
  network's (a, b) change slowly (``align.ScaleFilter``) while the body pitches at 1-2 Hz, so the plane
  is fitted to a p + b with the *filtered* (a, b): the fast pitch and roll are observable, a constant
  pitch error stays traded against the shift (it is the mount pose's, and stays). This is opt-in
  (``PoseRefineConfig.affine``, parameter ``pose_refine_affine``): on the synthetic pitching sequence it
  tracks the pitch to 0.15 deg RMS, but on the demo student (whose far road is compressed, so its
  disparity is not affine) it reads a -0.1..-0.6 degree roll against a true +-0.07 and moves the demo's
  fused road AbsRel from 0.016 to 0.019.

``measure_offsets`` measures the offsets from the pixels that agree with the first fit (against the mount
prior), bounds them; ``PoseFilter`` smooths them (a light EMA behind a jump gate: a 1.3 Hz pitch
oscillation at 10 Hz must not lag) and lets them decay to the mount pose while unobservable.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .geometry.camera import PinholeCamera
from .geometry.extrinsics import R_BODY_FROM_OPTICAL, pose_from_static

OBSERVABLE = {"metric_depth": ("pitch", "roll", "height"), "scale_depth": ("pitch", "roll"),
              "affine_disparity": ("pitch", "roll")}


@dataclass
class PoseRefineConfig:
    max_offset_deg: float = 3.0      # bound on the pitch and roll offsets from the mount pose
    max_height_offset: float = 0.3   # metres, metric_depth only
    inlier_threshold: float = 0.15   # relative error to the first fit that counts as road agreeing
    plane_threshold: float = 0.08    # then to the fitted plane (tighter: a car's bottom pulls the plane)
    samples: int = 3000              # grid pixels tried
    min_samples: int = 100           # fewer agreeing road pixels -> unobservable this frame
    alpha: float = 0.9               # EMA gain of the offsets
    gate_deg: float = 3.0            # a jump larger than this (a 3% grade change is 1.7 deg) ...
    reset_after: int = 3             # ... is rejected unless it repeats this many frames in a row
    decay: float = 0.8               # per unobservable frame, the offsets shrink by this factor
    min_plane_fraction: float = 0.5  # share of the road pixels the plane must fit
    max_plane_depth: float = 25.0    # metres: farther road is left out (small networks compress it)
    affine: bool = False             # refine affine_disparity predictions too (through the filtered fit)


@dataclass
class PoseOffsets:
    """Offsets from the mount pose: pitch and roll in radians, height in metres; ``observed`` the
    quantities this frame measured (empty: fell back)."""

    pitch: float = 0.0
    roll: float = 0.0
    height: float = 0.0
    observed: tuple[str, ...] = ()


def pitch_roll(up: np.ndarray) -> tuple[float, float]:
    """Pitch and roll (radians, extrinsics.py conventions) of a camera whose road up axis in the optical
    frame is ``up`` (3,) (the third row of R_ground_from_camera; yaw does not change it)."""
    body = (up / np.linalg.norm(up)) @ R_BODY_FROM_OPTICAL.T
    return float(np.arcsin(np.clip(-body[0], -1.0, 1.0))), float(np.arctan2(body[1], body[2]))


def pose_angles(T_ground_from_camera: np.ndarray) -> tuple[float, float, float, float]:
    """(height, pitch, roll, yaw) of a ground pose (the inverse of pose_from_static)."""
    T = np.asarray(T_ground_from_camera, dtype=np.float64)
    body = T[:3, :3] @ R_BODY_FROM_OPTICAL.T
    pitch, roll = pitch_roll(T[2, :3])
    return float(T[2, 3]), pitch, roll, float(np.arctan2(body[1, 0], body[0, 0]))


def offset_pose(T_mount: np.ndarray, offsets: PoseOffsets) -> np.ndarray:
    """The mount pose (4, 4) with the offsets applied (yaw kept); the mount pose itself (checked, as
    ground_depth would) when they are all zero."""
    from .geometry.extrinsics import check_ground_pose

    check_ground_pose(T_mount)  # a malformed pose must not be rebuilt into a valid one
    if offsets.pitch == 0.0 and offsets.roll == 0.0 and offsets.height == 0.0:
        return T_mount
    h, pitch, roll, yaw = pose_angles(T_mount)
    return pose_from_static(h + offsets.height, pitch + offsets.pitch, roll + offsets.roll, yaw)


class GridRays:
    """Undistorted rays (N, 2) of a strided pixel grid, cached per camera: where the pose is measured."""

    def __init__(self):
        self._key, self.index, self.xy = None, None, None

    def get(self, camera: PinholeCamera, samples: int) -> tuple[tuple[slice, slice], np.ndarray]:
        key = (camera.key(), samples)
        if key != self._key:
            stride = max(1, int(np.sqrt(camera.width * camera.height / samples)))
            grid = (slice(stride // 2, None, stride), slice(stride // 2, None, stride))
            v, u = np.mgrid[grid[0].start:camera.height:stride, grid[1].start:camera.width:stride]
            pts = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
            if camera.is_distorted:
                xy = camera.undistort_points(pts)
            else:
                xy = (pts - camera.K[:2, 2]) / np.diag(camera.K)[:2]
                xy[:, 0] -= camera.K[0, 1] / camera.K[0, 0] * xy[:, 1]
            self._key, self.index, self.xy = key, grid, xy
        return self.index, self.xy


def _plane(target: np.ndarray, xy: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """Weighted least squares target ~ k . (x, y, 1), two Huber-style reweightings: k (3,) or None."""
    A = np.column_stack([xy, np.ones(len(xy))])
    weight = w.copy()
    k = None
    for _ in range(3):
        sw = np.sqrt(weight)
        sol, *_ = np.linalg.lstsq(A * sw[:, None], target * sw, rcond=None)
        if not np.all(np.isfinite(sol)):
            return k
        k = sol
        r = np.abs(A @ k - target)
        scale = 1.4826 * np.median(r) + 1e-12
        weight = w * np.minimum(1.0, 2.0 * scale / np.maximum(r, 1e-12))
    return k


def measure_offsets(kind: str, params, prediction: np.ndarray, prior_depth: np.ndarray, trust: np.ndarray,
                    camera: PinholeCamera, T_reference: np.ndarray, T_mount: np.ndarray, rays: GridRays,
                    config: PoseRefineConfig) -> PoseOffsets | None:
    """This frame's offsets from the mount pose, or None when unobservable or implausible.

    params: the alignment (a, b) to use: this frame's first fit against the prior of ``T_reference`` (the
    last frame's refined pose) for scale_depth / metric_depth, the stream's temporally filtered (a, b)
    for affine_disparity (module docstring); prediction (H, W); prior_depth (H, W) that prior; trust
    (H, W) the alignment weights (road pixels). Pixels within ``inlier_threshold`` of the aligned depth
    are the road that agrees; the plane through their disparity z gives c, re-chosen twice against the
    plane itself (the first set, chosen against the old pose, favours it). A measurement beyond the
    bound, or one that fewer than ``min_plane_fraction`` of the road pixels fit, is refused: a network
    whose road is not a plane (an indoor network outdoors) must not tilt the prior.
    """
    from .arrays import to_host

    if kind == "affine_disparity" and not config.affine:
        return None
    grid, xy = rays.get(camera, config.samples)
    p = np.asarray(to_host(prediction[grid]), dtype=np.float64).ravel()
    y = np.asarray(to_host(prior_depth[grid]), dtype=np.float64).ravel()
    w = np.asarray(to_host(trust[grid]), dtype=np.float64).ravel()
    a, b = float(params[0]), float(params[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        # z: the network's disparity on the prior's scale (scale_depth: up to s, which cancels below).
        z = a * p + b if kind == "affine_disparity" else 1.0 / p
        model = z if kind == "affine_disparity" else z / (a if kind == "scale_depth" else 1.0)
        trusted = np.isfinite(z) & (z > 0) & (w > 0) & (y < config.max_plane_depth)
        ok = trusted & np.isfinite(y) & (y > 0) & (np.abs(1.0 / model - y) < config.inlier_threshold * y)
    if np.count_nonzero(ok) < config.min_samples:
        return None
    A = np.column_stack([xy, np.ones(len(xy))])
    for _ in range(3):
        k = _plane(z[ok], xy[ok], w[ok])
        if k is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = trusted & (np.abs((A @ k) / z - 1.0) < config.plane_threshold)
        if np.count_nonzero(ok) < max(config.min_samples, config.min_plane_fraction * np.count_nonzero(trusted)):
            return None
    if not np.all(np.isfinite(k)) or np.linalg.norm(k) <= 0:
        return None
    h, pitch0, roll0, _ = pose_angles(T_mount)
    pitch, roll = pitch_roll(-k)  # c = -u / h: its direction is the road's up axis
    observed = OBSERVABLE[kind]
    height = 1.0 / np.linalg.norm(k) - h if "height" in observed else 0.0
    offsets = PoseOffsets(pitch - pitch0, roll - roll0, float(height), observed)
    bound = np.radians(config.max_offset_deg)
    if max(abs(offsets.pitch), abs(offsets.roll)) > bound or abs(offsets.height) > config.max_height_offset:
        return None
    return offsets


@dataclass
class PoseFilter:
    """Temporal filter of the offsets: EMA behind a jump gate; decays to the mount pose when unobserved."""

    config: PoseRefineConfig = field(default_factory=PoseRefineConfig)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros(3)  # pitch, roll, height
        self.initialised = False
        self.rejected_in_row = 0

    def offsets(self, observed: tuple[str, ...] = ()) -> PoseOffsets:
        return PoseOffsets(*map(float, self.state), observed=observed)

    def update(self, measured: PoseOffsets | None) -> PoseOffsets:
        cfg = self.config
        if measured is None:
            self.state *= cfg.decay
            return self.offsets()
        z = np.array([measured.pitch, measured.roll, measured.height])
        if not self.initialised:
            self.state, self.initialised = z, True
            return self.offsets(measured.observed)
        if np.degrees(np.max(np.abs(z[:2] - self.state[:2]))) > cfg.gate_deg:
            self.rejected_in_row += 1
            if self.rejected_in_row < cfg.reset_after:
                return self.offsets()
            self.state = z  # the jump is real (a grade change, a re-mounted camera)
        else:
            self.state += cfg.alpha * (z - self.state)
        self.rejected_in_row = 0
        return self.offsets(measured.observed)


class MountCheck:
    """WARN state for diagnostics: the offsets exceeded ``limit_deg`` (pitch or roll) continuously for
    ``hold_s`` seconds, which is how a wrong extrinsic shows."""

    def __init__(self, limit_deg: float = 1.0, hold_s: float = 5.0):
        self.limit, self.hold = np.radians(limit_deg), hold_s
        self.since: float | None = None
        self.last = 0.0  # time of the last update

    def update(self, t: float, offsets: PoseOffsets) -> bool:
        self.last = t
        if max(abs(offsets.pitch), abs(offsets.roll)) > self.limit:
            if self.since is None:
                self.since = t
        else:
            self.since = None
        return self.disagrees(t)

    def disagrees(self, t: float) -> bool:
        return self.since is not None and t - self.since >= self.hold
