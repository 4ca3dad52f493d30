"""Losses as small named functions. Shapes: images (B, 3, H, W) in [0, 1]; depth/disp (B, 1, H, W).

Sources: photometric, auto-masking, min-reprojection and smoothness follow monodepth2 (Godard et al.,
ICCV 2019); teacher and semantic losses follow SSD (Mao et al., arXiv 2403.05056); the edge loss
follows Jasmine (Wang et al., arXiv 2503.15905).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WEIGHT = 0.85  # monodepth2: 0.85 * (1 - SSIM) / 2 + 0.15 * L1


def ssim_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1 - SSIM) / 2 per pixel over 3x3 windows (reflection padded): (B, C, H, W) -> (B, C, H, W) in [0, 1]."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x ** 2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y ** 2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_x + sigma_y + c2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """0.85 * SSIM distance + 0.15 * L1, channel mean: (B, 3, H, W) x2 -> (B, 1, H, W)."""
    l1 = (pred - target).abs().mean(1, keepdim=True)
    return SSIM_WEIGHT * ssim_distance(pred, target).mean(1, keepdim=True) + (1 - SSIM_WEIGHT) * l1


OUT_OF_VIEW_ERROR = 1.0  # the largest photometric error: a pixel warped out of the source never wins the minimum


def min_reprojection(warped: list[torch.Tensor], target: torch.Tensor,
                     valid: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Per-pixel minimum photometric error over the warped neighbours: -> (B, 1, H, W).

    valid: per neighbour, bool (B, 1, H, W) where the warp read real pixels; elsewhere the error is
    OUT_OF_VIEW_ERROR, so the other neighbour (or the auto-mask) decides that pixel."""
    errors = [photometric_error(w, target) for w in warped]
    if valid is not None:
        errors = [torch.where(v, e, torch.full_like(e, OUT_OF_VIEW_ERROR)) for e, v in zip(errors, valid)]
    return torch.cat(errors, dim=1).min(dim=1, keepdim=True).values


def identity_error(sources: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Min photometric error of the unwarped sources (B, 1, H, W): what a static scene would score."""
    return torch.cat([photometric_error(s, target) for s in sources], dim=1).min(dim=1, keepdim=True).values


def automask(reprojection: torch.Tensor, sources: list[torch.Tensor] | torch.Tensor, target: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """monodepth2 auto-mask: keep pixels whose min reprojection error beats the unwarped neighbours'.

    Static-camera frames and objects moving with the camera look 'correct' unwarped; those pixels are
    dropped. A tiny noise breaks ties (as in monodepth2). ``sources`` may be their ``identity_error``
    already (it does not depend on depth: computed once for all scales). Returns float (B, 1, H, W) in {0, 1}.
    """
    identity = sources if isinstance(sources, torch.Tensor) else identity_error(sources, target)
    noise = torch.rand(identity.shape, generator=generator, device=identity.device, dtype=identity.dtype) * 1e-5
    return (reprojection < identity + noise).float()


def masked_mean(value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return value.mean()
    return (value * mask).sum() / mask.sum().clamp_min(1.0)


def smoothness_loss(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware first-order smoothness of mean-normalised disparity (monodepth2): scalar."""
    disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_dx = (disp[..., :, :-1] - disp[..., :, 1:]).abs()
    grad_dy = (disp[..., :-1, :] - disp[..., 1:, :]).abs()
    img_dx = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    img_dy = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (grad_dx * torch.exp(-img_dx)).mean() + (grad_dy * torch.exp(-img_dy)).mean()


def teacher_mask(teacher_reprojection: torch.Tensor, student_reprojection: torch.Tensor) -> torch.Tensor:
    """SSD: distil only where the teacher's depth explains the neighbours better than the student's: (B,1,H,W)."""
    return (teacher_reprojection < student_reprojection).float().detach()


def teacher_loss(student_depth: torch.Tensor, teacher_depth: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """SSD teacher loss: masked L1 between log depths (scale-aware; the student learns the teacher's scale)."""
    diff = (torch.log(student_depth.clamp_min(1e-6)) - torch.log(teacher_depth.detach().clamp_min(1e-6))).abs()
    return masked_mean(diff, mask)


def semantic_loss(features_translated: list[torch.Tensor], features_original: list[torch.Tensor]) -> torch.Tensor:
    """SSD semantic loss: mean over layers and tokens of 1 - cos(f_translated, f_original.detach()).

    features: lists of (B, N, C) token features (e.g. DINOv2 hidden states of the chosen layers).
    """
    terms = [1 - F.cosine_similarity(t, o.detach(), dim=-1).mean() for t, o in zip(features_translated, features_original)]
    return torch.stack(terms).mean()


def log_depth_l1(pred_depth: torch.Tensor, gt_depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Supervised loss on ground-truth depth (the demo's synthetic teacher): mean |log p - log g| over valid."""
    diff = (torch.log(pred_depth.clamp_min(1e-6)) - torch.log(gt_depth.clamp_min(1e-6))).abs()
    return masked_mean(diff, valid.float())


def ground_prior_loss(depth: torch.Tensor, prior: torch.Tensor,
                      weights: tuple[float, float, float] = (1.0, 0.0, 0.0)) -> torch.Tensor:
    """Weak supervision by the embodied prior (the camera's mount pose and intrinsics, a road mask).

    depth (B, 1, H, W); prior (B, 3, H, W) metres, 0 where unknown, layers:
      0 road pixels: exact ground-plane depth          -> mean |log d - log p| over them
      1 upright surfaces on the road's edge (cars, walls: the contact depth carried up) -> the same
      2 ground-plane depth below the horizon: anything standing on the road is nearer than the road
        behind it                                       -> mean relu(log d - log g) (one-sided)
    weights: per layer. Returns the weighted sum (a scalar; a layer known nowhere adds 0).

    Scale-aware on purpose: the road's exact depth fixes the metric scale and the near field, which a
    rigid-scene photometric loss alone leaves free (it drove near surfaces to the depth floor)."""
    log_d = torch.log(depth.clamp_min(1e-6))
    prior = prior.detach()
    log_p = torch.log(prior.clamp_min(1e-6))
    known = (prior > 0).float()
    total = depth.new_zeros(())
    for layer in (0, 1):
        if weights[layer]:
            total = total + weights[layer] * masked_mean((log_d - log_p[:, layer:layer + 1]).abs(),
                                                         known[:, layer:layer + 1])
    if weights[2]:
        total = total + weights[2] * masked_mean(torch.relu(log_d - log_p[:, 2:3]), known[:, 2:3])
    return total


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences (B, C, H, W) -> dx (B, C, H, W-1), dy (B, C, H-1, W)."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def edge_loss(pred: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Jasmine-style edge loss: L1 between the normalised gradient maps of ``pred`` and a reference
    (e.g. the clean-image reconstruction or a pseudo depth), both (B, 1, H, W): scalar."""
    def norm(x):
        return (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-6)

    pdx, pdy = image_gradients(norm(pred))
    rdx, rdy = image_gradients(norm(reference.detach()))
    return (pdx - rdx).abs().mean() + (pdy - rdy).abs().mean()


def scale_shift_invariant_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiDaS-style: align each pred (B, 1, H, W) to target by median/mean-abs normalisation, then L1."""
    def normalise(x):
        flat = x.flatten(1)
        med = flat.median(dim=1, keepdim=True).values
        scale = (flat - med).abs().mean(dim=1, keepdim=True).clamp_min(1e-6)
        return ((flat - med) / scale).view_as(x)

    return masked_mean((normalise(pred) - normalise(target.detach())).abs(), mask)
