"""Keeps the prior while the camera and its pose stay the same: ground geometry, then the scene prior.

On a vehicle the intrinsics never change and the tf pose changes by millimetres (suspension), so
recomputing per frame would be waste; a tolerance decides when the pose counts as "the same".
``ScenePriorCache`` is what the pipeline and prior_node use; ``GroundPriorCache`` is its first layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..depth_range import mask_outside_range
from ..geometry.camera import PinholeCamera
from .ground import RayGrid, ground_depth
from .scene import ScenePrior, inpainted, scene_prior


class GroundGeometry:
    """ground: float32 (H, W) depth; rays_ground: float32 (H, W, 3) z-normalised rays in the ground frame.

    The rotated rays are only needed for vertical surfaces (a road mask), so they are made on first use.
    """

    def __init__(self, ground: np.ndarray, rays: np.ndarray, T_ground_from_camera: np.ndarray):
        self.ground = ground
        self.T_ground_from_camera = T_ground_from_camera
        self._rays = rays
        self._rays_ground: np.ndarray | None = None

    @property
    def rays_ground(self) -> np.ndarray:
        if self._rays_ground is None:
            self._rays_ground = (self._rays @ self.T_ground_from_camera[:3, :3].T.astype(np.float32))
        return self._rays_ground


def pose_close(a: np.ndarray, b: np.ndarray, translation_tol: float, rotation_tol_rad: float) -> bool:
    """True when two 4x4 poses differ by less than the tolerances (metres, radians)."""
    if np.linalg.norm(a[:3, 3] - b[:3, 3]) > translation_tol:
        return False
    cos_angle = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos_angle, -1.0, 1.0))) <= rotation_tol_rad


class GroundPriorCache:
    """get(camera, pose) -> GroundGeometry, recomputed only when K, size or pose change beyond tolerance."""

    def __init__(self, max_depth: float | None = 80.0, translation_tol: float = 0.01,
                 rotation_tol_deg: float = 0.05):
        self.max_depth = max_depth
        self.translation_tol = translation_tol
        self.rotation_tol = np.radians(rotation_tol_deg)
        self._camera_key = None
        self._rays = None  # optical-frame rays for the cached camera
        self._grid: RayGrid | None = None  # the same, planar, for ground_depth of a distorted camera
        self._entry: GroundGeometry | None = None
        self.recomputes = 0

    def get(self, camera: PinholeCamera, T_ground_from_camera: np.ndarray) -> GroundGeometry:
        T = np.asarray(T_ground_from_camera, dtype=np.float64)
        key = camera.key()
        if key != self._camera_key:
            self._camera_key, self._entry = key, None
            self._rays = camera.pixel_rays().astype(np.float32)
            self._grid = RayGrid.from_rays(self._rays) if camera.is_distorted else None
        entry = self._entry
        if entry is not None and pose_close(entry.T_ground_from_camera, T, self.translation_tol, self.rotation_tol):
            return entry
        # Undistorted cameras take the separable closed form; distorted ones need the cached rays.
        ground = ground_depth(camera.K, camera.width, camera.height, T, self.max_depth, rays=self._grid)
        self._entry = GroundGeometry(ground, self._rays, T.copy())
        self.recomputes += 1
        return self._entry


@dataclass
class _KeptPrior:
    geometry: GroundGeometry
    prior: ScenePrior
    road_mask: np.ndarray | None = None  # the very mask object it was made with (None: no mask)
    in_range: np.ndarray | None = None  # the prior's depth masked to the depth range, made on first use


class ScenePriorCache:
    """prior(camera, pose, road_mask, inpaint) -> ScenePrior, and its depth masked to the depth range.

    The scene prior depends only on camera, pose, settings and the road mask, so it is kept while the
    ground cache returns the same geometry and the mask is the same object (no mask, or a segmenter's
    mask reused between its runs: the inpainted prior costs tens of ms at full HD, reusing it costs
    nothing). Masks are read-only: a new mask is a new array.
    """

    def __init__(self, mode: str = "scene", min_depth: float = 0.5, max_depth: float = 80.0):
        self.mode, self.min_depth, self.max_depth = mode, min_depth, max_depth
        self.ground = GroundPriorCache(max_depth=max_depth)
        # One kept prior per inpaint setting: with a network the alignment reads the prior without its
        # inpainted holes and the fusion the one with them, both at the same pose.
        self._kept: dict[bool, _KeptPrior] = {}
        self.reuses = 0

    def prior(self, camera: PinholeCamera, T_ground_from_camera: np.ndarray, road_mask: np.ndarray | None = None,
              inpaint: bool = True) -> ScenePrior:
        geometry = self.ground.get(camera, T_ground_from_camera)
        def current(kept: _KeptPrior | None) -> bool:
            return kept is not None and kept.geometry is geometry and kept.road_mask is road_mask

        if current(self._kept.get(inpaint)):
            self.reuses += 1
            return self._kept[inpaint].prior
        if inpaint and current(self._kept.get(False)):  # the aligner's prior at this pose: fill its holes
            prior = inpainted(self._kept[False].prior, self.max_depth)
        else:
            prior = scene_prior(camera, T_ground_from_camera, road_mask, mode=self.mode, max_depth=self.max_depth,
                                inpaint=inpaint, ground=geometry.ground,
                                # Rotated rays are only read by the vertical layer (a road mask): 17 MB at full HD.
                                rays_ground=geometry.rays_ground if road_mask is not None else None)
        self._kept[inpaint] = _KeptPrior(geometry, prior, road_mask)
        return prior

    def depth_in_range(self, prior: ScenePrior) -> np.ndarray:
        """The prior's depth with NaN outside [min_depth, max_depth]; computed once per kept prior, so
        treat it as read-only."""
        kept = next((k for k in self._kept.values() if k.prior is prior), None)
        if kept is None:
            return mask_outside_range(prior.depth, self.min_depth, self.max_depth)
        if kept.in_range is None:
            kept.in_range = mask_outside_range(prior.depth, self.min_depth, self.max_depth)
        return kept.in_range
