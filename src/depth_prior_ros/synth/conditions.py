"""Adverse conditions as a classical image translator: night, rain and fog from a clear-day image.

``translate`` works on ANY uint8 RGB image; depth (metres, NaN/inf for sky), labels (``Label`` ids)
and a light-source map make it physically better when given (the synthetic renderer provides all three):

- night: exposure drop with a blue (scotopic) tint, the ego's headlight beam falling off with distance,
  light sources (lamps, car lights, lit windows) that light their surroundings and bloom, a dark night
  sky, and sensor noise (Poisson shot noise + Gaussian read noise in linear light, then demosaic blur).
- rain: overcast desaturated light, a grey sky, wet road reflections (each column mirrored about the far
  end of the road, strongest at grazing angles and in puddles), light haze with distance, windscreen
  defocus, and motion-blurred rain streaks in three depth layers.
- fog: Koschmieder's law I = J t + A (1 - t), t = exp(-beta d), beta = 3.912 / visibility, with slightly
  patchy density; without depth a flat-road pseudo-depth from the image row is used.

Everything is seeded (numpy Generator from ``seed``) and deterministic; output is uint8 of the input shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import noise
from .labels import Label

F32 = np.float32
CONDITIONS = ("day", "night", "rain", "fog")


class ConditionError(ValueError):
    """Bad input to ``translate`` (the message says which argument and why, in one sentence)."""


@dataclass(frozen=True)
class NightConfig:
    """Night look. Radiances are display-linear (1 = white after the camera's auto exposure)."""

    exposure: float = 0.08              # ambient light left, relative to day (after auto exposure)
    tint: tuple[float, float, float] = (0.70, 0.85, 1.20)
    headlights: float = 1.0             # ego low-beam strength; 0 switches them off
    headlight_reach_m: float = 12.0     # distance where the beam lights surfaces like half daylight
    street_lamps: int = 6               # lamp blobs invented when no light map is given
    glare: float = 1.0                  # bloom strength around over-bright sources
    light_pool: float = 1.5             # how much light sources light their surroundings
    photons: float = 800.0              # photo-electrons for a linear value of 1 (lower = noisier)
    read_noise: float = 3.0             # electrons


@dataclass(frozen=True)
class RainConfig:
    darken: float = 0.55                # overcast light level (linear)
    desaturate: float = 0.45
    streak_density: float = 2200.0      # streaks per megapixel, over all layers
    streak_angle_deg: float | None = None  # None: drawn from the seed within +-20 deg
    streak_strength: float = 0.5
    reflection: float = 0.55            # wet-road mirror strength at grazing angles
    visibility_m: float = 500.0         # light rain haze (needs depth or pseudo-depth)
    defocus: float = 1.2                # blur sigma per 1000 px of image width


@dataclass(frozen=True)
class FogConfig:
    visibility_m: float | None = None   # None: drawn from the seed in [50, 150] m
    airlight: tuple[float, float, float] = (0.62, 0.64, 0.66)  # linear
    patchiness: float = 0.25            # relative density variation
    horizon_row: float = 0.45           # fraction of the height, for the pseudo-depth without depth
    camera_height_m: float = 1.5        # for the pseudo-depth
    focal_px: float | None = None       # for the pseudo-depth; None: 0.8 * width


# --------------------------------------------------------------------------- colour helpers
_DECODE = np.where(np.arange(256) / 255.0 <= 0.04045, np.arange(256) / 255.0 / 12.92,
                   ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(F32)
_ENCODE_SIZE = 16384
_x = np.arange(_ENCODE_SIZE + 1) / _ENCODE_SIZE
_ENCODE = np.clip(np.round(255 * np.where(_x <= 0.0031308, 12.92 * _x, 1.055 * _x ** (1 / 2.4) - 0.055)),
                  0, 255).astype(np.uint8)
del _x


def to_linear(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB (H, W, 3) -> float32 linear (H, W, 3)."""
    return _DECODE[image]


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    """float32 linear (H, W, 3), clipped to [0, 1] -> uint8 sRGB."""
    idx = np.clip(linear * F32(_ENCODE_SIZE), F32(0.0), F32(_ENCODE_SIZE)).astype(np.int32)
    return _ENCODE[idx]


def luminance(linear: np.ndarray) -> np.ndarray:
    return linear[..., 0] * F32(0.2126) + linear[..., 1] * F32(0.7152) + linear[..., 2] * F32(0.0722)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run on a downsampled copy (same look, a fraction of the cost)."""
    import cv2

    if sigma <= 0.3:
        return img
    factor = int(sigma // 3)
    h, w = img.shape[:2]
    if factor < 2 or min(h, w) // factor < 8:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    small = cv2.resize(img, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- inputs
def _check(image, depth, labels, lights) -> tuple:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConditionError(f"translate needs a uint8 RGB image of shape (H, W, 3), got {image.dtype} "
                             f"{image.shape}")
    h, w = image.shape[:2]
    if depth is not None:
        depth = np.asarray(depth, dtype=F32)
        if depth.shape != (h, w):
            raise ConditionError(f"depth has shape {depth.shape} but the image is {h}x{w}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (h, w):
            raise ConditionError(f"labels have shape {labels.shape} but the image is {h}x{w}")
    if lights is not None:
        lights = np.asarray(lights, dtype=F32)
        if lights.shape == (h, w):
            lights = lights[..., None] * np.ones(3, F32)
        if lights.shape != (h, w, 3):
            raise ConditionError(f"lights must be (H, W) or (H, W, 3) for a {h}x{w} image, got {lights.shape}")
    return image, depth, labels, lights


def pseudo_depth(height: int, width: int, horizon_row: float = 0.45, camera_height_m: float = 1.5,
                 focal_px: float | None = None, far_m: float = 1000.0) -> np.ndarray:
    """Depth (H, W) float32 of a flat road seen by a level camera: f h / (v - v_horizon), ``far_m`` above."""
    f = focal_px if focal_px is not None else 0.8 * width
    v = np.arange(height, dtype=F32)[:, None] - F32(horizon_row * height)
    with np.errstate(divide="ignore"):
        d = np.where(v > 0.5, F32(f * camera_height_m) / np.maximum(v, F32(0.5)), F32(far_m))
    return np.broadcast_to(np.minimum(d, F32(far_m)), (height, width)).astype(F32)


def _sky_mask(labels, depth) -> np.ndarray | None:
    if labels is not None:
        return labels == Label.SKY
    if depth is not None:
        return ~np.isfinite(depth)
    return None


def _finite_depth(depth: np.ndarray, far: float = 1e4) -> np.ndarray:
    return np.where(np.isfinite(depth), np.minimum(depth, F32(far)), F32(far)).astype(F32)


# --------------------------------------------------------------------------- night
def _invent_lamps(h: int, w: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Street-lamp blobs (H, W, 3) in the upper part of an image that came without a light map."""
    import cv2

    lights = np.zeros((h, w, 3), F32)
    unit = max(h, w) / 1000.0
    for _ in range(n):
        u, v = rng.uniform(0.05, 0.95) * w, rng.uniform(0.12, 0.42) * h
        radius = max(1, int(round(rng.uniform(1.5, 4.5) * unit * (1.5 - abs(u / w - 0.5)))))
        colour = (4.0, 3.0, 1.6) if rng.random() < 0.5 else (3.4, 3.4, 3.6)  # sodium or LED
        cv2.circle(lights, (int(u), int(v)), radius, colour, -1, lineType=cv2.LINE_AA)
    return lights


def night(image, depth=None, labels=None, lights=None, seed=0, config: NightConfig | None = None,
          albedo: np.ndarray | None = None) -> np.ndarray:
    import cv2

    cfg = config or NightConfig()
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    unit = max(h, w) / 1000.0
    # The day image stands in for surface colour unless the true (unlit) albedo is known; with it no
    # sunlit patches or daylight shadows survive into the night.
    albedo = to_linear(image) if albedo is None else np.clip(albedo, 0.0, 1.0)
    out = albedo * (F32(cfg.exposure) * np.array(cfg.tint, F32))
    sky = _sky_mask(labels, depth)
    if sky is not None and sky.any():
        # A dark blue night sky with a faint orange city glow near the horizon.
        rows = np.broadcast_to(np.arange(h, dtype=F32)[:, None] / h, (h, w))[sky]
        glow = np.exp(-np.abs(rows - F32(0.45)) * F32(8.0))[:, None]
        out[sky] = F32(0.002) * np.array([0.6, 0.8, 1.6], F32) + glow * np.array([0.010, 0.006, 0.003], F32)
    # Ego low beams: a lobe below the horizon, falling off with the square of distance.
    if cfg.headlights > 0:
        d = _finite_depth(depth) if depth is not None else pseudo_depth(h, w)
        uu = (np.arange(w, dtype=F32) - F32(w / 2)) / F32(0.32 * w)
        vv = (np.arange(h, dtype=F32) - F32(0.5 * h)) / F32(0.25 * h)
        lobe = np.exp(-uu * uu)[None, :] * (F32(1.0) / (F32(1.0) + np.exp(-vv * F32(4.0))))[:, None]
        reach = F32(cfg.headlight_reach_m)
        beam = F32(0.5 * cfg.headlights) * lobe * np.minimum((reach / np.maximum(d, F32(0.5))) ** 2, F32(4.0))
        if sky is not None:
            beam = np.where(sky, F32(0.0), beam)
        out += albedo * (beam[..., None] * np.array([1.0, 0.97, 0.88], F32))
    if lights is None:
        lights = _invent_lamps(h, w, cfg.street_lamps, rng)
    if lights.any():
        # Light pools on nearby surfaces: a wide blur of the sources, modulated by the surface albedo.
        out += albedo * _blur(lights, 40.0 * unit) * F32(cfg.light_pool)
        out = np.maximum(out, lights)  # the sources themselves
        # Glare from over-bright sources (lamps, headlights): tight and wide halos and a faint streak.
        bright = np.clip(lights - F32(0.8), 0.0, 8.0)
        if bright.any():
            halo = _blur(bright, 3.0 * unit) * F32(0.8) + _blur(bright, 14.0 * unit) * F32(0.6)
            streak = cv2.blur(bright, (max(3, int(60 * unit)) | 1, 1)) * F32(0.25)
            out += (halo + streak) * F32(cfg.glare * 0.5)
    # Sensor: Poisson shot noise (Gaussian approximation) and read noise in electrons, then demosaic blur.
    electrons = np.clip(out, 0.0, 1.0) * F32(cfg.photons)
    sigma = np.sqrt(electrons + F32(cfg.read_noise ** 2))
    noisy = electrons + rng.standard_normal(electrons.shape, dtype=F32) * sigma
    return to_srgb8(_blur(noisy * F32(1.0 / cfg.photons), 0.5 * unit))


# --------------------------------------------------------------------------- rain
def _rain_streaks(h: int, w: int, count: float, angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Rain streak layer (H, W) float32 in [0, 1]: anti-aliased lines in three depth layers, from far
    (short, faint, many) to near (long, bright, few), all falling at about ``angle_deg``."""
    import cv2

    unit = max(h, w) / 1000.0
    canvas = np.zeros((h, w), np.uint8)
    for share, length, thickness, level in ((0.55, 10, 1, 60), (0.30, 24, 1, 110), (0.15, 50, 2, 170)):
        n = int(count * share)
        xs, ys = rng.uniform(0, w, n), rng.uniform(-0.1 * h, h, n)
        lengths = length * unit * rng.uniform(0.6, 1.4, n)
        angles = np.radians(angle_deg + rng.normal(0.0, 2.0, n))
        ex, ey = xs + np.sin(angles) * lengths, ys + np.cos(angles) * lengths
        levels = (level * rng.uniform(0.6, 1.0, n)).astype(int)
        thick = max(1, int(round(thickness * unit)))
        for x0, y0, x1, y1, lv in zip(xs.astype(int), ys.astype(int), ex.astype(int), ey.astype(int), levels):
            cv2.line(canvas, (x0, y0), (x1, y1), int(lv), thick, lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(canvas, (3, 3), 0.6).astype(F32) * F32(1.0 / 255.0)


def _road_top_rows(road: np.ndarray) -> np.ndarray:
    """Per column, the row of the farthest (topmost) road pixel; columns without road get a smooth fill."""
    import cv2

    h, w = road.shape
    has = road.any(axis=0)
    top = np.where(has, road.argmax(axis=0), h).astype(F32)
    if has.any():
        cols = np.arange(w)
        top = np.interp(cols, cols[has], top[has]).astype(F32)
    return cv2.blur(top[None, :], (max(3, w // 40) | 1, 1)).reshape(w)


def rain(image, depth=None, labels=None, lights=None, seed=0, config: RainConfig | None = None) -> np.ndarray:
    import cv2

    cfg = config or RainConfig()
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    unit = max(h, w) / 1000.0
    lin = to_linear(image)
    grey = luminance(lin)[..., None]
    out = (lin + (grey - lin) * F32(cfg.desaturate)) * F32(cfg.darken)
    sky = _sky_mask(labels, depth)
    if sky is not None and sky.any():
        rows = np.broadcast_to(np.arange(h, dtype=F32)[:, None] / h, (h, w))[sky]
        cloud = (grey[sky, 0] - grey[sky, 0].mean()) * F32(0.3)
        out[sky] = ((F32(0.20) + F32(0.12) * rows + cloud)[:, None] * np.array([0.95, 0.98, 1.0], F32))
    # Wet road: mirror each column about the far end of the road, blurred vertically (ripples).
    if labels is not None:
        ground = (labels == Label.ROAD) | (labels == Label.OTHER_GROUND)
        top = _road_top_rows(labels == Label.ROAD)
    else:
        ground = np.zeros((h, w), bool)
        ground[int(0.55 * h):] = True
        top = np.full(w, 0.55 * h, F32)
    if ground.any() and cfg.reflection > 0:
        vv = np.arange(h, dtype=F32)[:, None]
        src_v = np.clip(F32(2.0) * top[None, :] - vv, 0, h - 1).astype(F32)
        wobble = noise.sample(noise.noise_texture(seed + 5, 1.5), np.arange(w, dtype=F32)[None, :] * F32(0.8),
                              vv * F32(0.3)) * F32(1.5 * unit)
        src_u = (np.arange(w, dtype=F32)[None, :] + wobble).astype(F32)
        mirror = cv2.remap(out, src_u, np.broadcast_to(src_v, (h, w)).astype(F32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
        mirror = cv2.blur(mirror, (1, max(3, int(12 * unit)) | 1))
        below = np.maximum(vv - top[None, :], F32(0.0))
        grazing = F32(0.25) + F32(0.75) * np.exp(-below / F32(0.2 * h))
        puddles = np.clip(noise.sample(noise.noise_texture(seed + 6, 2.5), np.arange(w, dtype=F32)[None, :]
                                       * F32(0.02 / unit), vv * F32(0.06 / unit)) * F32(0.8), 0.0, 1.0)
        weight = (F32(cfg.reflection) * grazing * (F32(0.55) + F32(0.45) * puddles)) * ground
        road_only = np.where(labels == Label.ROAD, F32(1.0), F32(0.5)) if labels is not None else F32(1.0)
        weight = (weight * road_only)[..., None]
        out = out * (F32(1.0) - weight * F32(0.6)) + mirror * weight
    # Haze with distance, then windscreen defocus and lower contrast.
    d = _finite_depth(depth) if depth is not None else pseudo_depth(h, w)
    t = np.exp(-d * F32(3.912 / cfg.visibility_m))[..., None]
    air = np.array([0.22, 0.23, 0.24], F32)
    out = out * t + air * (F32(1.0) - t)
    out = _blur(out, cfg.defocus * unit)
    # Rain streaks, brightening towards a light grey where they cross the image.
    angle = cfg.streak_angle_deg if cfg.streak_angle_deg is not None else float(rng.uniform(-20, 20))
    streaks = _rain_streaks(h, w, cfg.streak_density * h * w / 1e6, angle, rng)[..., None]
    out = out + (np.array([0.55, 0.57, 0.6], F32) - out) * (streaks * F32(cfg.streak_strength))
    return to_srgb8(out)


# --------------------------------------------------------------------------- fog
def fog(image, depth=None, labels=None, lights=None, seed=0, config: FogConfig | None = None) -> np.ndarray:
    cfg = config or FogConfig()
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    visibility = cfg.visibility_m if cfg.visibility_m is not None else float(rng.uniform(50.0, 150.0))
    if depth is not None:
        d = _finite_depth(depth)
    else:
        d = pseudo_depth(h, w, cfg.horizon_row, cfg.camera_height_m, cfg.focal_px, far_m=10 * visibility)
    beta = F32(3.912 / visibility)
    if cfg.patchiness > 0:
        u = np.arange(w, dtype=F32)[None, :] * F32(40.0 / w)
        v = np.arange(h, dtype=F32)[:, None] * F32(40.0 / w)
        patches = noise.sample(noise.noise_texture(seed + 9, 3.0), u + F32(rng.uniform(0, 256)), v)
        beta = beta * (F32(1.0) + F32(cfg.patchiness) * np.clip(patches, -2.0, 2.0) * F32(0.5))
    t = np.exp(-beta * d)[..., None]
    lin = to_linear(image)
    air = np.array(cfg.airlight, F32)
    out = lin * t + air * (F32(1.0) - t)
    return to_srgb8(out)


_TRANSLATORS = {"night": night, "rain": rain, "fog": fog}


def translate(image: np.ndarray, condition: str, depth: np.ndarray | None = None,
              labels: np.ndarray | None = None, seed: int = 0, *, lights: np.ndarray | None = None,
              albedo: np.ndarray | None = None, config=None) -> np.ndarray:
    """Clear-day uint8 RGB image (H, W, 3) -> the same scene under ``condition`` (uint8, same shape).

    depth: float32 (H, W) metres, NaN/inf on sky; labels: uint8 (H, W) ``Label``; lights: float32
    (H, W) or (H, W, 3) linear radiance of light sources (night only); albedo: float32 (H, W, 3) linear
    unlit surface colour (night only; the renderer knows it); config: the condition's ``NightConfig`` /
    ``RainConfig`` / ``FogConfig``. "day" returns a copy of the image.
    """
    if condition not in CONDITIONS:
        raise ConditionError(f"unknown condition '{condition}' (choose from {', '.join(CONDITIONS)})")
    image, depth, labels, lights = _check(image, depth, labels, lights)
    if condition == "day":
        return image.copy()
    expected = {"night": NightConfig, "rain": RainConfig, "fog": FogConfig}[condition]
    if config is not None and not isinstance(config, expected):
        raise ConditionError(f"condition '{condition}' takes a {expected.__name__}, got {type(config).__name__}")
    extra = {}
    if albedo is not None and condition == "night":
        albedo = np.asarray(albedo, dtype=F32)
        if albedo.shape != image.shape:
            raise ConditionError(f"albedo has shape {albedo.shape} but the image is {image.shape}")
        extra["albedo"] = albedo
    return _TRANSLATORS[condition](image, depth=depth, labels=labels, lights=lights, seed=seed, config=config,
                                   **extra)
