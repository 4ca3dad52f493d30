"""Camera geometry for view synthesis (monodepth2 style), as pure torch functions.

Conventions: K (B, 3, 3) pixel intrinsics at the image's size; T_source_from_target (B, 4, 4) maps
points of the target camera frame into the source camera frame (optical frames, metres).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (B, 3) rotation vectors -> (B, 3, 3) rotation matrices."""
    angle = axis_angle.norm(dim=1, keepdim=True).clamp_min(1e-7)      # (B, 1)
    axis = axis_angle / angle
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    s = torch.sin(angle)[..., None]
    c = torch.cos(angle)[..., None]
    return eye + s * skew + (1 - c) * (skew @ skew)


def pose_from_axis_angle(axis_angle: torch.Tensor, translation: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """(B, 3) rotation vector + (B, 3) translation -> (B, 4, 4) transform (its inverse when ``invert``)."""
    R = axis_angle_to_matrix(axis_angle)
    t = translation.unsqueeze(-1)
    if invert:
        R = R.transpose(1, 2)
        t = -R @ t
    T = torch.eye(4, dtype=R.dtype, device=R.device).repeat(R.shape[0], 1, 1)
    T[:, :3, :3] = R
    T[:, :3, 3:] = t
    return T


def backproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """depth (B, 1, H, W), K (B, 3, 3) -> camera points (B, 3, H*W)."""
    B, _, H, W = depth.shape
    v, u = torch.meshgrid(torch.arange(H, dtype=depth.dtype, device=depth.device),
                          torch.arange(W, dtype=depth.dtype, device=depth.device), indexing="ij")
    pixels = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], 0)  # (3, HW)
    rays = torch.linalg.inv(K) @ pixels.unsqueeze(0)                                           # (B, 3, HW)
    return rays * depth.reshape(B, 1, -1)


def project_to_grid(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int,
                    with_validity: bool = False):
    """points (B, 3, N) of the target camera, T (B, 4, 4) source<-target -> grid_sample grid (B, H, W, 2) in [-1, 1]
    (and, ``with_validity``, bool (B, 1, H, W): the point lies in front of the source camera and inside its image)."""
    moved = T[:, :3, :3] @ points + T[:, :3, 3:]
    pix = K @ moved
    uv = pix[:, :2] / pix[:, 2:3].clamp_min(1e-6)
    u = uv[:, 0] / (width - 1) * 2 - 1
    v = uv[:, 1] / (height - 1) * 2 - 1
    grid = torch.stack([u, v], dim=-1).view(-1, height, width, 2)
    if not with_validity:
        return grid
    inside = (pix[:, 2] > 1e-3) & (u.abs() <= 1) & (v.abs() <= 1)
    return grid, inside.view(-1, 1, height, width)


def warp_image(source: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, T_source_from_target: torch.Tensor) -> torch.Tensor:
    """Synthesise the target view from ``source`` (B, C, H, W) with the target's depth (B, 1, H, W)."""
    return warp_with_validity(source, depth, K, T_source_from_target)[0]


def warp_with_validity(source: torch.Tensor, depth: torch.Tensor, K: torch.Tensor,
                       T_source_from_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``warp_image`` plus bool (B, 1, H, W): where the warp read real source pixels.

    Outside that mask grid_sample repeats the border, which a texture-less object at the image edge
    (a white tanker filling the right edge) matches well: the photometric loss must not reward it."""
    H, W = depth.shape[-2:]
    grid, inside = project_to_grid(backproject(depth, K), K, T_source_from_target, H, W, with_validity=True)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True), inside
