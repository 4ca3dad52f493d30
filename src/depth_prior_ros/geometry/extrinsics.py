"""Camera pose above the road: T_ground_from_camera (4, 4) from tf, static parameters or a LiDAR plane.

Frames: the ground frame follows REP 103 (x forward, y left, z up) with the road at z = 0 and its
origin directly below the camera; the camera frame is the optical frame (z forward, x right, y down).
Angles: pitch > 0 tilts the camera down towards the road, roll > 0 turns it clockwise as seen from
behind (right side down), yaw > 0 turns it left. All in radians.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Optical axes expressed in a level, forward-looking body frame (x fwd, y left, z up).
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0],
                                [-1.0, 0.0, 0.0],
                                [0.0, -1.0, 0.0]])


class PoseError(ValueError):
    """A camera pose that cannot give a ground prior (the message says why, in one sentence)."""


def rotation_xyz(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll), (3, 3)."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def pose_from_static(height: float, pitch: float = 0.0, roll: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    """Static extrinsics -> T_ground_from_camera (4, 4): camera `height` metres above the road."""
    T = np.eye(4)
    T[:3, :3] = rotation_xyz(roll, pitch, yaw) @ R_BODY_FROM_OPTICAL
    T[2, 3] = height
    return T


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Unit quaternion (x, y, z, w) as in geometry_msgs -> rotation (3, 3). Normalises first."""
    q = np.array([w, x, y, z], dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise PoseError("transform rotation is not a valid quaternion (zero or non-finite norm)")
    w, x, y, z = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation (3, 3) -> quaternion (x, y, z, w) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    m = np.array([
        [R[0, 0] - R[1, 1] - R[2, 2], 0, 0, 0],
        [R[0, 1] + R[1, 0], R[1, 1] - R[0, 0] - R[2, 2], 0, 0],
        [R[0, 2] + R[2, 0], R[1, 2] + R[2, 1], R[2, 2] - R[0, 0] - R[1, 1], 0],
        [R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1], R[0, 0] + R[1, 1] + R[2, 2]],
    ]) / 3.0
    vals, vecs = np.linalg.eigh(m)
    x, y, z, w = vecs[:, np.argmax(vals)]
    if w < 0:
        x, y, z, w = -x, -y, -z, -w
    return float(x), float(y), float(z), float(w)


def pose_from_transform(translation, quaternion_xyzw) -> np.ndarray:
    """tf translation (3,) + rotation (x, y, z, w) -> 4x4 homogeneous transform."""
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(*quaternion_xyzw)
    T[:3, 3] = np.asarray(translation, dtype=np.float64)
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    R, t = T[:3, :3], T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


@dataclass(frozen=True)
class PoseSummary:
    """Height above the road (m) and pitch/roll of the optical axis (rad), for logs and diagnostics."""

    height: float
    pitch: float
    roll: float

    def __str__(self) -> str:
        return (f"height {self.height:.3f} m, pitch {np.degrees(self.pitch):.2f} deg, "
                f"roll {np.degrees(self.roll):.2f} deg")


def summarize_pose(T_ground_from_camera: np.ndarray) -> PoseSummary:
    """Recover height, pitch and roll from T_ground_from_camera (inverse of pose_from_static)."""
    R_body = T_ground_from_camera[:3, :3] @ R_BODY_FROM_OPTICAL.T
    pitch = float(np.arcsin(np.clip(-R_body[2, 0], -1.0, 1.0)))
    roll = float(np.arctan2(R_body[2, 1], R_body[2, 2]))
    return PoseSummary(float(T_ground_from_camera[2, 3]), pitch, roll)


def check_ground_pose(T_ground_from_camera: np.ndarray) -> None:
    """Raise PoseError (one sentence) unless the pose can see a ground plane below the camera."""
    T = np.asarray(T_ground_from_camera, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise PoseError("camera pose is not a finite 4x4 transform")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or np.linalg.det(R) < 0:
        raise PoseError("camera pose rotation is not a proper rotation matrix")
    if not T[2, 3] > 1e-6:  # not just > 0: a sub-micrometre height underflows -h/dz to depth 0 in float32
        raise PoseError(f"camera is {T[2, 3]:.3f} m above the ground plane; a ground prior needs it above the road")


# --------------------------------------------------------------------------- LiDAR ground fit
@dataclass(frozen=True)
class GroundPlane:
    """Plane n . x + d = 0 in the points' frame; n (3,) unit, pointing up (d > 0 at the sensor)."""

    normal: np.ndarray
    offset: float
    inliers: np.ndarray  # (N,) bool over the input points

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Signed height of points (N, 3) above the plane."""
        return points @ self.normal + self.offset


def fit_ground_plane(points: np.ndarray, threshold: float = 0.1, iterations: int = 300,
                     max_tilt_deg: float = 20.0, seed: int = 0) -> GroundPlane:
    """RANSAC plane fit to the road in a point cloud (N, 3) whose frame has z roughly up.

    Only near-horizontal candidate planes below the sensor are considered (the largest such plane is
    the road, not a wall); the winner is refined by least squares over its inliers.
    """
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if len(pts) < 3:
        raise PoseError("too few finite LiDAR points to fit a ground plane")
    rng = np.random.default_rng(seed)
    cos_tilt = np.cos(np.radians(max_tilt_deg))
    # The road is among the lowest points; sampling from the lower half makes RANSAC converge fast.
    low = pts[pts[:, 2] <= np.percentile(pts[:, 2], 50)]
    best, best_count = None, -1
    for _ in range(iterations):
        a, b, c = low[rng.choice(len(low), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            continue
        n /= norm
        if n[2] < 0:
            n = -n
        if n[2] < cos_tilt:
            continue
        d = -n @ a
        if d <= 0:  # plane must lie below the sensor
            continue
        count = int(np.count_nonzero(np.abs(pts @ n + d) < threshold))
        if count > best_count:
            best, best_count = (n, d), count
    if best is None:
        raise PoseError("no near-horizontal plane below the sensor found in the LiDAR points")
    n, d = best
    for _ in range(3):  # least-squares refinement on the inliers
        inl = np.abs(pts @ n + d) < threshold
        centroid = pts[inl].mean(axis=0)
        _, _, vt = np.linalg.svd(pts[inl] - centroid, full_matrices=False)
        n = vt[-1] if vt[-1][2] > 0 else -vt[-1]
        d = -n @ centroid
    inliers = np.abs(np.asarray(points, dtype=np.float64)[:, :3] @ n + d) < threshold
    return GroundPlane(n, float(d), inliers)


def pose_from_ground_plane(plane: GroundPlane, T_camera_from_points: np.ndarray) -> np.ndarray:
    """Camera pose above a plane fitted in another sensor's frame -> T_ground_from_camera (4, 4).

    The ground x axis is the camera's optical axis projected onto the road, so yaw is zero.
    """
    R, t = T_camera_from_points[:3, :3], T_camera_from_points[:3, 3]
    n_cam = R @ plane.normal
    height = plane.offset - n_cam @ t  # distance of the camera centre above the plane
    if height <= 0:
        raise PoseError("the fitted ground plane lies above the camera")
    forward = np.array([0.0, 0.0, 1.0]) - n_cam[2] * n_cam
    if np.linalg.norm(forward) < 1e-6:
        raise PoseError("the camera looks straight down at the ground plane; its heading is undefined")
    x_g = forward / np.linalg.norm(forward)
    y_g = np.cross(n_cam, x_g)
    R_camera_from_ground = np.stack([x_g, y_g, n_cam], axis=1)
    T = np.eye(4)
    T[:3, :3] = R_camera_from_ground.T
    T[2, 3] = height
    return T
