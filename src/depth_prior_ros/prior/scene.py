"""Embodied scene prior (after the VLE paper): road -> ground -> vertical surfaces -> inpainting.

Each layer gives a depth and a confidence; the result carries a per-pixel ``source`` code so
alignment can weigh road pixels above guessed ones and RViz can show where the prior comes from.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.camera import PinholeCamera
from .ground import ground_depth

# Source codes of the prior, per pixel (uint8).
SOURCE_NONE, SOURCE_ROAD, SOURCE_GROUND, SOURCE_VERTICAL, SOURCE_INPAINTED = 0, 1, 2, 3, 4
SOURCE_NAMES = {SOURCE_NONE: "none", SOURCE_ROAD: "road", SOURCE_GROUND: "ground",
                SOURCE_VERTICAL: "vertical", SOURCE_INPAINTED: "inpainted"}

# How much each layer is trusted: road pixels from a mask are exact up to the flat-road assumption;
# "ground" without a mask may be a car's bumper; vertical surfaces assume an upright face towards the
# camera; inpainting is a guess.
CONFIDENCE = {SOURCE_ROAD: 1.0, SOURCE_GROUND: 0.6, SOURCE_VERTICAL: 0.4, SOURCE_INPAINTED: 0.1}

PRIOR_MODES = ("road", "ground", "scene")


@dataclass
class ScenePrior:
    """Metric prior for one camera pose.

    depth: float32 (H, W) z-depth in metres, NaN where the prior knows nothing.
    confidence: float32 (H, W) in [0, 1].
    source: uint8 (H, W) SOURCE_* codes.
    ground: float32 (H, W) raw ground-plane depth (NaN above the horizon).
    """

    depth: np.ndarray
    confidence: np.ndarray
    source: np.ndarray
    ground: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.source != SOURCE_NONE

    def coverage(self) -> dict[str, float]:
        """Fraction of pixels from each source (for diagnostics)."""
        counts = np.bincount(self.source.ravel(), minlength=len(SOURCE_NAMES))
        total = max(self.source.size, 1)
        return {SOURCE_NAMES[i]: float(counts[i]) / total for i in SOURCE_NAMES}


def vertical_surface_depth(ground: np.ndarray, road: np.ndarray, rays_ground: np.ndarray,
                           camera_height: float, max_depth: float | None = None,
                           max_height: float = 4.0) -> np.ndarray:
    """Depth of upright surfaces standing on the road's upper edge, column by column.

    ground: (H, W) ground-plane depth; road: (H, W) bool road mask; rays_ground: (H, W, 3)
    z-normalised rays rotated into the ground frame. For a non-road pixel, its contact point P is the
    nearest road pixel below it in the same column; the surface is the vertical plane through P facing
    the camera (normal = horizontal viewing direction), so the depth is
    lambda = |P_xy|^2 / (P_xy . d_xy) (P relative to the camera). With a level camera that is the
    contact depth carried up the column. Surfaces are cut at ``max_height`` metres above the road
    (cars, people, walls' lower storeys), so the sky above a car is not claimed.
    Returns float32 (H, W), NaN where no surface applies.
    """
    H, W = road.shape
    rows = np.arange(H, dtype=np.int32)[:, None]
    road_row = np.where(road & np.isfinite(ground), rows, np.int32(H))
    # Nearest road row at or below each pixel: running minimum from the bottom of each column.
    contact = np.minimum.accumulate(road_row[::-1], axis=0)[::-1]
    out = np.full(H * W, np.nan, dtype=np.float32)
    sel = np.flatnonzero((contact < H) & ~road)
    if sel.size == 0:
        return out.reshape(H, W)
    rays = rays_ground.reshape(-1, 3)
    at_contact = contact.ravel()[sel] * W + sel % W
    lam_c = ground.ravel()[at_contact]
    px, py = lam_c * rays[at_contact, 0], lam_c * rays[at_contact, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = (px * px + py * py) / (px * rays[sel, 0] + py * rays[sel, 1])
    height = camera_height + lam * rays[sel, 2]
    upper = np.inf if max_depth is None else max_depth
    ok = (lam > 0) & (lam <= upper) & (height <= max_height)
    out[sel[ok]] = lam[ok]
    return out.reshape(H, W)


def inpaint_inverse_depth(depth: np.ndarray, holes: np.ndarray, downscale: int = 8) -> np.ndarray:
    """Telea inpainting of ``holes`` (H, W bool) in a depth map, done in inverse depth at low resolution.

    Inverse depth keeps far regions (sky, horizon) far instead of averaging them towards the near road;
    the low resolution keeps it cheap (Telea is O(holes x radius^2)). Returns float32 (H, W).
    """
    import cv2

    H, W = depth.shape
    h, w = max(H // downscale, 1), max(W // downscale, 1)
    with np.errstate(divide="ignore"):
        inv = np.where(np.isfinite(depth) & (depth > 0), 1.0 / depth, 0.0).astype(np.float32)
    small = cv2.resize(inv, (w, h), interpolation=cv2.INTER_AREA)
    known = cv2.resize((~holes).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    small_holes = (known < 0.999).astype(np.uint8)
    # Telea on 16-bit input: OpenCV 5's float32 path returns a checkerboard, and 16 bits of inverse
    # depth (1/65535 of the nearest value) is far finer than the prior is accurate.
    top = float(small[small_holes == 0].max()) if np.any(small_holes == 0) else 1.0
    top = top if top > 0 else 1.0
    quantised = np.clip(small / top * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
    filled = cv2.inpaint(quantised, small_holes, 3, cv2.INPAINT_TELEA).astype(np.float32) * (top / 65535.0)
    up = cv2.resize(filled, (W, H), interpolation=cv2.INTER_LINEAR)
    with np.errstate(divide="ignore"):
        out = np.where(up > 1e-6, 1.0 / np.maximum(up, 1e-6), np.nan).astype(np.float32)
    return out


def scene_prior(camera: PinholeCamera, T_ground_from_camera: np.ndarray, road_mask: np.ndarray | None = None,
                mode: str = "scene", max_depth: float | None = 80.0, inpaint: bool = False,
                ground: np.ndarray | None = None, rays_ground: np.ndarray | None = None) -> ScenePrior:
    """Embodied prior for one frame.

    mode: "road" (road-mask pixels only), "ground" (every pixel below the horizon), "scene"
    (ground, plus vertical surfaces on the road's edge when a road mask is given).
    road_mask: optional bool/uint8 (H, W), nonzero = drivable road.
    ground / rays_ground: cached ground_depth and ground-frame rays for this camera and pose.
    inpaint: Telea-fill what no layer covers (low confidence).
    """
    if mode not in PRIOR_MODES:
        raise ValueError(f"prior mode '{mode}' is not one of {', '.join(PRIOR_MODES)}")
    H, W = camera.height, camera.width
    if ground is None:
        ground = ground_depth(camera.K, W, H, T_ground_from_camera, max_depth, camera.D if camera.is_distorted else None)
    road = None
    if road_mask is not None:
        road = np.asarray(road_mask).astype(bool)
        if road.shape != (H, W):
            raise ValueError(f"road mask is {road.shape[1]}x{road.shape[0]} but the image is {W}x{H}")
    has_ground = np.isfinite(ground)

    source = np.zeros((H, W), dtype=np.uint8)
    if road is not None:
        source[road & has_ground] = SOURCE_ROAD
    if mode in ("ground", "scene") and road is None:
        source[has_ground] = SOURCE_GROUND
    depth = np.where(source != SOURCE_NONE, ground, np.nan).astype(np.float32)

    if mode == "scene" and road is not None:
        if rays_ground is None:
            rays_ground = (camera.pixel_rays() @ np.asarray(T_ground_from_camera)[:3, :3].T).astype(np.float32)
        vertical = vertical_surface_depth(ground, road, rays_ground, float(T_ground_from_camera[2, 3]), max_depth)
        use = (source == SOURCE_NONE) & np.isfinite(vertical)
        depth[use] = vertical[use]
        source[use] = SOURCE_VERTICAL
    if inpaint and np.any(source != SOURCE_NONE) and np.any(source == SOURCE_NONE):
        holes = source == SOURCE_NONE
        filled = inpaint_inverse_depth(depth, holes)
        upper = np.inf if max_depth is None else max_depth
        use = holes & np.isfinite(filled) & (filled > 0) & (filled <= upper)
        depth[use] = filled[use]
        source[use] = SOURCE_INPAINTED

    confidence = np.zeros((H, W), dtype=np.float32)
    for code, value in CONFIDENCE.items():
        confidence[source == code] = value
    return ScenePrior(depth=depth, confidence=confidence, source=source, ground=ground)
