"""Pinhole camera model built from ROS camera_info fields, with resize/crop bookkeeping.

Conventions: pixel (u, v) with u to the right and v down, pixel centres at integer coordinates
(the ROS / OpenCV convention). Rays are in the optical frame (REP 103: z forward, x right, y down)
and normalised to z = 1, so the ray parameter at an intersection *is* the z-depth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUPPORTED_DISTORTION = ("plumb_bob", "rational_polynomial", "")
# Plausibility bounds of a calibration: a pinhole model covers less than 170 degrees of view (wider
# lenses need a fisheye model), no camera has a narrower view than 1/1000 of its image in focal length
# (about 0.06 degrees), and no real lens has a distortion coefficient of magnitude 1000.
MAX_FIELD_OF_VIEW_DEG = 170.0
MAX_FOCAL_PER_PIXEL = 1000.0
MAX_DISTORTION = 1000.0
MAX_SIDE = 32768              # pixels; and at most 50 megapixels (8K video has 33)
MAX_PIXELS = 50_000_000


class CameraModelError(ValueError):
    """A camera_info that cannot describe a pinhole camera (the message says why, in one sentence)."""


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics K (3, 3), image size, and optional plumb_bob / rational_polynomial distortion D (n,)."""

    K: np.ndarray
    width: int
    height: int
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        D = np.asarray(self.D if self.D is not None else [], dtype=np.float64).reshape(-1)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "D", D)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        validate_intrinsics(K, self.width, self.height)
        if self.distortion_model not in SUPPORTED_DISTORTION and np.any(D != 0):
            raise CameraModelError(
                f"distortion model '{self.distortion_model}' is not supported "
                f"(use one of plumb_bob, rational_polynomial, or rectified images)"
            )
        if not np.all(np.isfinite(D)):
            raise CameraModelError("camera_info distortion coefficients D contain NaN or inf")
        if np.any(D != 0) and D.size not in (4, 5, 8, 12, 14):  # else cv2.undistortPoints throws cv2.error later
            raise CameraModelError(f"camera_info has {D.size} distortion coefficients; plumb_bob takes 5 "
                                   "(rational_polynomial 8; OpenCV accepts 4, 5, 8, 12 or 14)")
        if D.size and np.max(np.abs(D)) > MAX_DISTORTION:
            raise CameraModelError(f"camera_info distortion coefficient {np.max(np.abs(D)):g} is not plausible "
                                   f"(real lenses stay below {MAX_DISTORTION:g}); the calibration is broken")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_camera_info_fields(cls, k, d, width: int, height: int, distortion_model: str = "plumb_bob",
                                p=None, use_projection: bool = False) -> "PinholeCamera":
        """From the flat fields of sensor_msgs/CameraInfo (k: 9 values, d: n values).

        With ``use_projection`` the rectified camera (P[:, :3], no distortion) is returned: use it
        when the image topic is ``image_rect``.
        """
        if use_projection and p is not None and np.any(np.asarray(p, dtype=float) != 0):
            P = np.asarray(p, dtype=np.float64).reshape(3, 4)
            return cls(P[:, :3].copy(), width, height, np.zeros(0), "")
        return cls(np.asarray(k, dtype=np.float64).reshape(3, 3), width, height,
                   np.asarray(d if d is not None else [], dtype=np.float64), distortion_model or "")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PinholeCamera":
        """From a ROS camera_calibration YAML file (camera_info_manager format)."""
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CameraModelError(f"{path}: not a readable camera_info YAML ({str(exc).splitlines()[0][:120]})") \
                from None
        try:
            k = data["camera_matrix"]["data"]
            d = data.get("distortion_coefficients", {}).get("data", [])
            return cls.from_camera_info_fields(k, d, data["image_width"], data["image_height"],
                                               data.get("distortion_model", "plumb_bob"))
        except (KeyError, TypeError, ValueError) as exc:
            raise CameraModelError(f"{path}: not a camera_info YAML (missing or malformed {exc})") from exc

    # ----------------------------------------------------------------- properties
    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def is_distorted(self) -> bool:
        return self.D.size > 0 and bool(np.any(self.D != 0))

    def key(self, decimals: int = 6) -> tuple:
        """Hashable identity for caching (K, D, size rounded)."""
        return (self.width, self.height, tuple(np.round(self.K.ravel(), decimals)),
                tuple(np.round(self.D, decimals)))

    # ----------------------------------------------------------------- resize / crop
    def resized(self, width: int, height: int) -> "PinholeCamera":
        """Camera of the same view rendered at (width, height) (pixel-centre-correct scaling)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0, 0] *= sx
        K[0, 1] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return PinholeCamera(K, width, height, self.D, self.distortion_model)

    def cropped(self, x0: int, y0: int, width: int, height: int) -> "PinholeCamera":
        """Camera of the sub-window starting at pixel (x0, y0) with the given size."""
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise CameraModelError(f"crop ({x0}, {y0}, {width}, {height}) leaves the "
                                   f"{self.width}x{self.height} image")
        K = self.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        return PinholeCamera(K, width, height, self.D, self.distortion_model)

    # ----------------------------------------------------------------- rays
    def pixel_rays(self, undistort: bool = True) -> np.ndarray:
        """Ray through every pixel centre in the optical frame, normalised to z = 1.

        Returns: float64 (height, width, 3). With distortion, the rays are the undistorted ones
        (the directions the distorted pixels actually see).
        """
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64),
                           np.arange(self.height, dtype=np.float64))
        pts = np.stack([u.ravel(), v.ravel()], axis=1)
        xy = self.undistort_points(pts) if (undistort and self.is_distorted) else normalise_pixels(self.K, pts)
        rays = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)
        return rays.reshape(self.height, self.width, 3)

    def undistort_points(self, pixels: np.ndarray) -> np.ndarray:
        """Distorted pixels (N, 2) -> normalised undistorted image coordinates (N, 2)."""
        import cv2

        pts = np.ascontiguousarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-9)
        # OpenCV >= 4.8 takes the criteria in undistortPoints; older ones (Ubuntu 22.04) name it ...Iter.
        iterative = getattr(cv2, "undistortPointsIter", None)
        if iterative is not None:
            out = iterative(pts, self.K, self.D, None, None, criteria)
        else:
            out = cv2.undistortPoints(pts, self.K, self.D, None, None, None, criteria)
        return out.reshape(-1, 2)

    def project(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points in the optical frame (N, 3) -> pixels (N, 2) and z-depth (N,). No distortion applied
        for rectified cameras; with D, OpenCV's forward model is used."""
        pts = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
        z = pts[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.is_distorted:
                import cv2

                uv, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), self.K, self.D)
                uv = uv.reshape(-1, 2)
            else:
                uv = (pts @ self.K.T)[:, :2] / z[:, None]
        return uv, z


def normalise_pixels(K: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) -> normalised coordinates (N, 2) through K^-1 (no distortion)."""
    K = np.asarray(K, dtype=np.float64)
    x = (pixels[:, 0] - K[0, 2] - K[0, 1] * (pixels[:, 1] - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (pixels[:, 1] - K[1, 2]) / K[1, 1]
    return np.stack([x, y], axis=1)


def validate_intrinsics(K: np.ndarray, width: int, height: int) -> None:
    """Raise CameraModelError (one sentence) unless K is a usable pinhole matrix for the size."""
    if width <= 0 or height <= 0:
        raise CameraModelError(f"camera_info has an empty image size {width}x{height}")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise CameraModelError(f"camera_info has an implausible image size {width}x{height} (at most {MAX_SIDE} "
                               f"pixels a side and {MAX_PIXELS // 1_000_000} megapixels)")
    if not np.all(np.isfinite(K)):
        raise CameraModelError("camera_info K contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise CameraModelError(f"camera_info K has non-positive focal lengths fx={K[0, 0]:g}, fy={K[1, 1]:g} "
                               "(an uncalibrated camera publishes zeros)")
    if abs(K[2, 2] - 1.0) > 1e-6 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0:
        raise CameraModelError("camera_info K is not an upper-triangular pinhole matrix with K[2,2] = 1")
    half = np.tan(np.radians(MAX_FIELD_OF_VIEW_DEG / 2))
    for name, f, side in (("fx", K[0, 0], width), ("fy", K[1, 1], height)):
        if f < side / (2 * half) or f > MAX_FOCAL_PER_PIXEL * max(width, height):
            raise CameraModelError(f"camera_info K has an implausible focal length {name}={f:g} px for a "
                                   f"{width}x{height} image (a pinhole view wider than {MAX_FIELD_OF_VIEW_DEG:g} "
                                   "degrees or narrower than a milliradian); the calibration is broken")
    if not (-width <= K[0, 2] <= 2 * width and -height <= K[1, 2] <= 2 * height) or abs(K[0, 1]) > K[0, 0]:
        raise CameraModelError(f"camera_info K puts the principal point at ({K[0, 2]:g}, {K[1, 2]:g}) with skew "
                               f"{K[0, 1]:g}, implausible for a {width}x{height} image")
