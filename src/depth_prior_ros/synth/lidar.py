"""Simulated spinning LiDAR: beams cast into the same analytic scene as the camera.

The LiDAR frame follows REP 103 (x forward, y left, z up). It is mounted rigidly on the camera:
``T_camera_from_lidar`` (4, 4) maps LiDAR coordinates into the camera optical frame. The default rig is
KITTI-like: the LiDAR 0.08 m above and 0.27 m behind the camera, level with the camera body.

Because the two sensors sit at different places, the LiDAR sees some surface points the camera does
not (parallax around object edges), exactly like a real rig. Projected naively into the image those
returns put far depths on near objects (AbsRel 0.01-0.03 against the camera's depth), so by default
(``drop_occluded=True``) only returns the camera also sees are kept, which makes LiDAR ground truth
agree with the depth image (AbsRel ~0.002, the rest is nearest-pixel rounding). Set it False for the
realistic cloud; ``LidarScan.visible`` then marks the returns the camera sees.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import PinholeCamera
from ..geometry.extrinsics import R_BODY_FROM_OPTICAL
from . import shading
from .raycast import NO_HIT, cast_rays
from .scene import BoxTable, Scene

F32 = np.float32


def default_T_camera_from_lidar(up: float = 0.08, back: float = 0.27) -> np.ndarray:
    """Rig transform (4, 4): LiDAR axes level with the camera body, ``up`` m above, ``back`` m behind."""
    T = np.eye(4)
    T[:3, :3] = R_BODY_FROM_OPTICAL.T  # optical <- body (x fwd, y left, z up)
    T[:3, 3] = (0.0, -up, -back)       # LiDAR origin in the optical frame (y is down, z forward)
    return T


@dataclass(frozen=True)
class LidarConfig:
    """Beam pattern and range model.

    beams spread evenly over [elevation_min_deg, elevation_max_deg] (ring 0 = lowest beam). Azimuth
    covers the camera's horizontal field of view plus ``azimuth_margin_deg`` on each side, unless
    ``azimuth_fov_deg`` asks for a fixed span centred on the camera's optical axis.
    """

    beams: int = 64
    elevation_min_deg: float = -25.0
    elevation_max_deg: float = 3.0
    azimuth_step_deg: float = 0.2
    azimuth_fov_deg: float | None = None
    azimuth_margin_deg: float = 5.0
    min_range: float = 1.0
    max_range: float = 100.0
    range_noise_m: float = 0.0
    drop_occluded: bool = True
    T_camera_from_lidar: np.ndarray = field(default_factory=default_T_camera_from_lidar)

    def __post_init__(self) -> None:
        if self.beams < 1 or self.azimuth_step_deg <= 0 or self.max_range <= self.min_range:
            raise ValueError("LidarConfig needs beams >= 1, azimuth_step_deg > 0 and max_range > min_range")
        if self.elevation_max_deg < self.elevation_min_deg:
            raise ValueError("LidarConfig elevation_max_deg must not be below elevation_min_deg")
        T = np.asarray(self.T_camera_from_lidar, dtype=np.float64)
        if T.shape != (4, 4):
            raise ValueError("LidarConfig.T_camera_from_lidar must be a 4x4 transform")
        object.__setattr__(self, "T_camera_from_lidar", T)


@dataclass
class LidarScan:
    """points (N, 3) float32 in the LiDAR frame; intensity (N,) float32 in [0, 1]; ring (N,) uint16 beam
    index (0 = lowest); visible (N,) bool: the camera sees the same surface point (False when outside
    the image or hidden from the camera by parallax)."""

    points: np.ndarray
    intensity: np.ndarray
    ring: np.ndarray
    visible: np.ndarray


def camera_azimuth_limits(camera: PinholeCamera, T_camera_from_lidar: np.ndarray) -> tuple[float, float]:
    """Azimuth span (rad, LiDAR frame) of the camera's image: min and max over its border pixels."""
    w, h = camera.width, camera.height
    u = np.concatenate([np.zeros(5), np.full(5, w - 1.0), np.linspace(0, w - 1, 9), np.linspace(0, w - 1, 9)])
    v = np.concatenate([np.linspace(0, h - 1, 5), np.linspace(0, h - 1, 5), np.zeros(9), np.full(9, h - 1.0)])
    pix = np.stack([u, v], axis=1)
    xy = camera.undistort_points(pix) if camera.is_distorted else \
        np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy], axis=1)
    rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
    in_lidar = rays @ T_camera_from_lidar[:3, :3]  # R^T applied to each ray: lidar <- camera
    az = np.arctan2(in_lidar[:, 1], in_lidar[:, 0])
    return float(az.min()), float(az.max())


def beam_directions(config: LidarConfig, azimuth_limits: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (N, 3) in the LiDAR frame and their ring index (N,), azimuth-major order."""
    elev = np.radians(np.linspace(config.elevation_min_deg, config.elevation_max_deg, config.beams))
    lo, hi = azimuth_limits
    margin = np.radians(config.azimuth_margin_deg)
    step = np.radians(config.azimuth_step_deg)
    if config.azimuth_fov_deg is not None:
        centre, half = (lo + hi) / 2, np.radians(config.azimuth_fov_deg) / 2
        lo, hi, margin = centre - half, centre + half, 0.0
    # Azimuth decreases with time on a clockwise spin (left to right as seen from above).
    az = np.arange(hi + margin, lo - margin, -step)
    a, e = np.meshgrid(az, elev, indexing="ij")
    dirs = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1).reshape(-1, 3)
    ring = np.broadcast_to(np.arange(config.beams, dtype=np.uint16), a.shape).reshape(-1)
    return dirs, ring


def scan(scene: Scene, table: BoxTable, T_world_from_lidar: np.ndarray, config: LidarConfig,
         azimuth_limits: tuple[float, float], seed: int = 0) -> tuple[LidarScan, np.ndarray]:
    """Cast every beam; keep returns within [min_range, max_range].

    Returns the scan (``visible`` all True; see ``mark_visible``) and the world points (N, 3) float64.
    """
    dirs_l, ring = beam_directions(config, azimuth_limits)
    R = np.asarray(T_world_from_lidar, dtype=np.float64)[:3, :3]
    origin = np.asarray(T_world_from_lidar, dtype=np.float64)[:3, 3]
    dirs_w = (dirs_l @ R.T).astype(F32)
    # The beams fan out less than 90 degrees either side of the middle azimuth: boxes behind are skipped.
    az_mid = float(np.arctan2(dirs_l[:, 1], dirs_l[:, 0]).mean()) if len(dirs_l) else 0.0
    forward = R @ np.array([np.cos(az_mid), np.sin(az_mid), 0.0]) if _fan_within_90(dirs_l, az_mid) else None
    t, ids = cast_rays(table, origin, dirs_w, max_distance=config.max_range, forward=forward)
    keep = np.flatnonzero((ids != NO_HIT) & (t >= config.min_range) & (t <= config.max_range))
    t, ids, dirs_w, dirs_l, ring = t[keep], ids[keep], dirs_w[keep], dirs_l[keep], ring[keep]
    surf = shading.shade_hits(scene, table, origin, dirs_w[:, 0], dirs_w[:, 1], dirs_w[:, 2], t, ids,
                              pixel_angle=np.radians(config.azimuth_step_deg))
    cos_inc = np.abs(np.einsum("ij,ji->i", dirs_w, surf.normal))
    reflectance = surf.albedo.T @ np.array([0.2126, 0.7152, 0.0722], F32)
    intensity = np.clip(F32(1.5) * reflectance * cos_inc + surf.retro, 0.0, 1.0).astype(F32)
    rng = t.astype(np.float64)
    world = origin + dirs_w.astype(np.float64) * rng[:, None]
    if config.range_noise_m > 0:
        rng = rng + np.random.default_rng(seed).normal(0.0, config.range_noise_m, rng.shape)
    points = (dirs_l * rng[:, None]).astype(F32)
    return LidarScan(points, intensity, ring.copy(), np.ones(len(points), bool)), world


def _fan_within_90(dirs: np.ndarray, azimuth: float) -> bool:
    """True when every direction (N, 3) has a positive horizontal component along ``azimuth``."""
    return bool(len(dirs)) and bool(np.all(dirs[:, 0] * np.cos(azimuth) + dirs[:, 1] * np.sin(azimuth) > 1e-6))


def mark_visible(scan_: LidarScan, world_points: np.ndarray, table: BoxTable, camera: PinholeCamera,
                 T_world_from_camera: np.ndarray, rel_tol: float = 1e-4) -> np.ndarray:
    """(N,) bool: the camera sees each LiDAR return (inside the image, in front, and nothing nearer on
    the camera ray through it). Exact: the camera ray is cast into the same scene."""
    T = np.asarray(T_world_from_camera, dtype=np.float64)
    origin = T[:3, 3]
    rel = world_points - origin
    cam = rel @ T[:3, :3]  # optical-frame coordinates
    z = cam[:, 2]
    visible = np.zeros(len(z), bool)
    front = np.flatnonzero(z > 1e-3)
    if front.size:
        uv, _ = camera.project(cam[front])
        inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= camera.width - 0.5) & \
                 (uv[:, 1] >= -0.5) & (uv[:, 1] <= camera.height - 0.5)
        idx = front[inside]
        dirs = (rel[idx] / z[idx, None]).astype(F32)  # z = 1 rays: the hit parameter is the z-depth
        # Camera rays all have optical z = 1 > 0, so boxes behind the camera cannot be hit.
        reach = float(np.linalg.norm(rel[idx], axis=1).max()) + 1.0 if idx.size else 0.0
        t, _ = cast_rays(table, origin, dirs, max_distance=reach, forward=T[:3, 2])
        visible[idx] = t >= z[idx] * (1 - rel_tol) - 1e-4
    scan_.visible = visible
    return visible
