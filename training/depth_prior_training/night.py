"""A classical day -> night translation of a real driving photo (no diffusion weights needed).

Night is not a darker day: the sun is gone, so its hard shadows go with it, and what light there is
comes from street lamps and the car's own headlights, falling off with distance. In order:
  1. linear light; sun shadows relit by the lit/shadow ratio of the road (a soft shadow mask: pixels far
     darker than the sunlit level of their row; never brighter than that level);
  2. the sky replaced by a dark night sky with a faint orange sky-glow at the horizon;
  3. illumination = faint ambient + low-beam headlights (a cone on the road ahead, 1/d^2) + street lamps
     along both road edges (a pool of light below each, inverse-square with the cosine of incidence),
     with ground geometry from the image rows (camera height, horizon at the principal point);
  4. emitters: the lamps' heads with a soft halo, and the scene's own tail/brake lights (saturated red
     pixels) made to glow; no glare anywhere else (bright daylight surfaces are not light sources);
  5. sensor noise of a dark exposure, back to sRGB.
"""
from __future__ import annotations

import numpy as np

CAMERA_HEIGHT = 1.65       # m above the road (KITTI colour camera)
HORIZON = 0.46             # horizon row / image height (KITTI's principal point: 172.9 / 375)
FOCAL = 0.58               # focal length / image width (KITTI: 721.5 / 1242)


def ground_geometry(height: int, width: int, depth: np.ndarray | None = None):
    """Per-pixel lateral X, depth Z (m) and a below-horizon mask; Z from ``depth`` where it is known,
    else from the ground plane through each row (rows above the horizon get the far limit)."""
    f = FOCAL * width
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    below = v > HORIZON * height + 1
    z = np.where(below, CAMERA_HEIGHT * f / np.maximum(v - HORIZON * height, 1.0), 80.0).astype(np.float32)
    if depth is not None:
        d = np.asarray(depth, np.float32)
        known = np.isfinite(d) & (d > 0)
        z = np.where(known, d, z)
    z = np.clip(z, 2.0, 80.0)
    x = (u - width / 2) * z / f
    return x, z, below


def relight_shadows(lin: np.ndarray) -> np.ndarray:
    """Sun shadows out: divide the shadowed pixels' luminance up to their lit neighbourhood (linear RGB)."""
    import cv2

    lum = lin.mean(axis=2)
    h, w = lum.shape
    # The sunlit level of each row (a shadow rarely covers a whole row of the road), smoothed over rows.
    lit = cv2.GaussianBlur(np.percentile(lum, 85, axis=1).astype(np.float32)[:, None], (0, 0), h / 40)
    lit = np.broadcast_to(lit, lum.shape)
    shadow = np.clip((0.45 * lit - lum) / (0.3 * lit + 1e-4), 0, 1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 1.5)
    road = np.zeros_like(lum, bool)
    road[int(0.7 * h):] = True
    in_shadow, in_sun = road & (shadow > 0.5), road & (shadow < 0.05)
    ratio = 3.0
    if in_shadow.sum() > 50 and in_sun.sum() > 50:
        ratio = float(np.clip(np.median(lum[in_sun]) / max(np.median(lum[in_shadow]), 1e-4), 1.5, 8.0))
    gain = np.minimum(ratio, 0.8 * lit / np.maximum(lum, 1e-4))
    return lin * (1 + (np.maximum(gain, 1) - 1) * shadow)[..., None]


def sky_mask(x: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Bright, unsaturated pixels above the horizon (the sky; a white surface there is dark at night too)."""
    lum = x.mean(axis=2)
    sat = x.max(axis=2) - x.min(axis=2)
    return (lum > 0.6) & (sat < 0.25) & ~below


def night(image: np.ndarray, depth: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """uint8 RGB (H, W, 3) day photo -> uint8 RGB night (see the module docstring)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    x = image.astype(np.float32) / 255.0
    lin = x ** 2.2
    X, Z, below = ground_geometry(h, w, depth)
    albedo = np.clip(relight_shadows(lin), 0, 1.5)

    # Illumination (linear, white = 1): ambient + headlights + street lamps.
    light = np.full((h, w, 3), 0.006, np.float32) * np.array([0.7, 0.8, 1.0], np.float32)
    beam = np.exp(-(X / (0.3 * Z + 0.8)) ** 2) * np.clip(6.0 / Z, 0, 1.0) ** 2
    light += (beam * below)[..., None] * np.array([1.0, 0.97, 0.9], np.float32) * 0.5
    lamps = []
    spacing = rng.uniform(18, 28)
    for side in (-1, 1):
        offset = rng.uniform(0, spacing)
        for k in range(4):
            lamps.append((side * rng.uniform(5.5, 7.5), offset + 6 + k * spacing))
    warm = np.array([1.0, 0.72, 0.4], np.float32) if rng.random() < 0.6 else np.array([0.95, 0.95, 1.0], np.float32)
    lamp_height = 7.5
    for lx, lz in lamps:
        dx, dz, dy = X - lx, Z - lz, lamp_height
        r2 = dx * dx + dz * dz + dy * dy
        pool = 12.0 * dy / r2 ** 1.5
        light += pool[..., None] * warm
    lit = albedo * light

    # Sky: dark, with sky-glow near the horizon.
    sky = sky_mask(x, below)
    rows = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    glow = np.clip(1 - np.abs(rows - HORIZON) / HORIZON, 0, 1) ** 3
    night_sky = 0.004 + glow[..., None] * np.array([0.02, 0.012, 0.006], np.float32)
    lit = np.where(sky[..., None], np.broadcast_to(night_sky, lit.shape), lit)

    # Emitters: lamp heads (projected) and the scene's red tail lights, with a soft halo.
    emit = np.zeros((h, w), np.float32)
    f = FOCAL * w
    for lx, lz in lamps:
        u = int(round(w / 2 + lx * f / lz))
        v = int(round(HORIZON * h - (lamp_height - CAMERA_HEIGHT) * f / lz))
        if 0 <= u < w and 0 <= v < h:
            cv2.circle(emit, (u, v), max(1, int(f * 0.25 / lz)), 1.0, -1)
    halo = cv2.GaussianBlur(emit, (0, 0), max(2.0, w / 150)) * 1.5
    red = (x[..., 0] > 0.45) & (x[..., 0] > 1.7 * x[..., 1]) & (x[..., 0] > 1.7 * x[..., 2]) & below
    red_glow = cv2.GaussianBlur(red.astype(np.float32), (0, 0), max(1.5, w / 300)) * 1.5
    lit = lit + (emit + halo)[..., None] * warm + red.astype(np.float32)[..., None] * np.array([1.0, 0.08, 0.05]) \
        + red_glow[..., None] * np.array([0.6, 0.05, 0.03], np.float32)
    lit = lit + rng.normal(0, 0.004, lit.shape).astype(np.float32)
    out = np.clip(lit, 0, 1) ** (1 / 2.2)
    return (out * 255 + 0.5).astype(np.uint8)
