"""The per-frame embodied prior and the applied alignment in torch, on the device of a torch network.

On a vehicle the network runs on a GPU. Computing the ground depth, the scene prior and the aligned
depth there too (every torch op runs on the device's current CUDA stream, after the network's) leaves a
single copy to the host: the published depth. The alignment's fit itself reads a few thousand samples,
which come to the host as a strided grid (``align.sample_fit_pixels``).

Same math as prior/ground.py, prior/scene.py and ``align.apply_model``, equal to them to float32
rounding (tests/test_prior_torch.py, on CPU torch). The numpy path stays the default everywhere; this
one is used when a prediction arrives as a torch tensor. Differences in how it is computed: the ground
disparity is summed in float64 on the whole frame at once (a GPU has no cache blocks to fit), and the
inpainting's low-resolution nearest-sample fill (a few thousand samples) runs on the host.
"""
from __future__ import annotations

import numpy as np

from .geometry.camera import PinholeCamera
from .geometry.extrinsics import check_ground_pose
from .prior.ground import F32, affine_terms, disparity_limits, ground_disparity_coefficients
from .prior.scene import (PRIOR_MODES, SOURCE_GROUND, SOURCE_INPAINTED, SOURCE_ROAD, SOURCE_VERTICAL, ScenePrior,
                          inpaint_samples, nearest_inverse_depth)


class DevicePrior:
    """Ground depth and scene prior as float32 torch tensors on ``device``; per-camera rays kept there."""

    def __init__(self, device="cpu"):
        import torch

        self.device = torch.device(device)
        self._camera_key = None
        self._rays = None  # (H, W, 3) float32 undistorted rays on the device

    def rays(self, camera: PinholeCamera):
        """Optical-frame z-normalised rays (H, W, 3) on the device, made once per camera."""
        import torch

        if camera.key() != self._camera_key:
            self._camera_key = camera.key()
            self._rays = torch.from_numpy(camera.pixel_rays().astype(np.float32)).to(self.device)
        return self._rays

    def ground_depth(self, camera: PinholeCamera, T_ground_from_camera, max_depth: float | None = None):
        """As ``prior.ground.ground_depth`` (distortion from the camera's cached rays): float32 (H, W)."""
        import torch

        T = np.asarray(T_ground_from_camera, dtype=np.float64)
        check_ground_pose(T)
        c = ground_disparity_coefficients(T)
        if camera.is_distorted:
            rays = self.rays(camera)
            q = rays[..., 0].double() * c[0] + rays[..., 1].double() * c[1] + c[2]
        else:
            row, col = affine_terms(camera.K, c, camera.width, camera.height)
            q = torch.from_numpy(row).to(self.device)[:, None] + torch.from_numpy(col).to(self.device)[None, :]
        q = q.float()
        lo, hi = disparity_limits(float(F32.tiny), max_depth)
        return torch.where((q >= float(lo)) & (q <= float(hi)), q.reciprocal(), float("nan"))

    def scene_prior(self, camera: PinholeCamera, T_ground_from_camera, road_mask=None, mode: str = "scene",
                    max_depth: float | None = 80.0, inpaint: bool = False, ground=None) -> ScenePrior:
        """As ``prior.scene.scene_prior``, with every array of the result a tensor on the device."""
        import torch

        if mode not in PRIOR_MODES:
            raise ValueError(f"prior mode '{mode}' is not one of {', '.join(PRIOR_MODES)}")
        H, W = camera.height, camera.width
        T = np.asarray(T_ground_from_camera, dtype=np.float64)
        if ground is None:
            ground = self.ground_depth(camera, T, max_depth)
        nan = float("nan")
        has_ground = ~torch.isnan(ground)
        if road_mask is not None:
            road = torch.as_tensor(np.asarray(road_mask).astype(bool), device=self.device)
            if tuple(road.shape) != (H, W):
                raise ValueError(f"road mask is {road.shape[1]}x{road.shape[0]} but the image is {W}x{H}")
            known = road & has_ground
            source = known.to(torch.uint8) * SOURCE_ROAD
            depth = torch.where(known, ground, nan)
            if mode == "scene":
                rays_ground = self.rays(camera) @ torch.from_numpy(T[:3, :3].T.astype(np.float32)).to(self.device)
                vertical = vertical_surface_depth(ground, road, rays_ground, float(T[2, 3]), max_depth)
                use = ~known & ~torch.isnan(vertical)
                depth = torch.where(use, vertical, depth)
                source = torch.where(use, SOURCE_VERTICAL, source)
                known = known | use
        elif mode == "road":
            known = torch.zeros((H, W), dtype=torch.bool, device=self.device)
            source = torch.zeros((H, W), dtype=torch.uint8, device=self.device)
            depth = torch.full((H, W), nan, device=self.device)
        else:
            known = has_ground
            source = known.to(torch.uint8) * SOURCE_GROUND
            depth = ground.clone()
        if inpaint:
            holes = ~known
            filled = inpaint_inverse_depth(depth, holes, max_depth)
            if filled is not None:
                depth = torch.where(holes, filled, depth)
                source = torch.where(holes, SOURCE_INPAINTED, source)
        return ScenePrior(depth=depth, source=source, ground=ground)


def vertical_surface_depth(ground, road, rays_ground, camera_height: float, max_depth: float | None = None,
                           max_height: float = 4.0):
    """As ``prior.scene.vertical_surface_depth`` on tensors (ground, road (H, W), rays_ground (H, W, 3))."""
    import torch

    H, W = road.shape
    rows = torch.arange(H, device=road.device)[:, None].expand(H, W)
    road_row = torch.where(road & torch.isfinite(ground), rows, H)
    # Nearest road row at or below each pixel: running minimum from the bottom of each column.
    contact = torch.flip(torch.cummin(torch.flip(road_row, [0]), dim=0).values, [0])
    at = contact.clamp(max=H - 1)
    lam_c = ground.gather(0, at)
    px = lam_c * rays_ground[..., 0].gather(0, at)
    py = lam_c * rays_ground[..., 1].gather(0, at)
    lam = (px * px + py * py) / (px * rays_ground[..., 0] + py * rays_ground[..., 1])
    height = camera_height + lam * rays_ground[..., 2]
    upper = float("inf") if max_depth is None else float(max_depth)
    ok = (contact < H) & ~road & (lam > 0) & (lam <= upper) & (height <= max_height)
    return torch.where(ok, lam, float("nan"))


def inpaint_inverse_depth(depth, holes, max_depth: float | None = None, downscale: int = 8):
    """As ``prior.scene.inpaint_inverse_depth``, returning the filled depth (H, W) (take it where ``holes``)."""
    import torch
    import torch.nn.functional as F

    H, W = depth.shape
    if not bool(holes.any()):
        return None
    rows, cols = inpaint_samples(H, W, downscale)
    rows_t, cols_t = torch.from_numpy(rows).to(depth.device), torch.from_numpy(cols).to(depth.device)
    samples = depth.index_select(0, rows_t).index_select(1, cols_t)
    sample_holes = holes.index_select(0, rows_t).index_select(1, cols_t)
    filled = nearest_inverse_depth(samples.cpu().numpy(), sample_holes.cpu().numpy(), max_depth)
    if filled is None:
        return None
    small = torch.from_numpy(filled).to(depth.device)[None, None]
    up = F.interpolate(small, scale_factor=downscale, mode="bilinear", align_corners=False)[0, 0, :H, :W]
    return up.reciprocal()


def apply_model(kind: str, prediction, params, min_depth: float, max_depth: float):
    """As ``align.apply_model`` on a tensor: metric depth float32 (H, W), NaN outside [min, max]."""
    import torch

    a, b = float(np.float32(params[0])), float(np.float32(params[1]))
    lo_depth, hi_depth = float(np.float32(min_depth)), float(np.float32(max_depth))
    invert = kind == "affine_disparity"
    lo, hi = disparity_limits(lo_depth, hi_depth) if invert else (lo_depth, hi_depth)
    values = prediction.to(torch.float32)
    if kind != "metric_depth":
        values = values * a
        if invert:
            values = values + b
    inside = (values >= float(lo)) & (values <= float(hi))
    return torch.where(inside, values.reciprocal() if invert else values, float("nan"))
