"""Procedural noise for textures: tileable fractal noise images sampled at arbitrary coordinates.

Per-pixel hash noise in numpy costs tens of operations per octave; instead one periodic noise image per
(seed, roughness) is made once by spectral synthesis and then sampled with OpenCV's bilinear remap
(wrapping borders), which is a single fast pass for any number of points.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

TEXTURE_SIZE = 256
_REMAP_WIDTH = 2048  # flat point lists are folded into rows of this width for cv2.remap


@lru_cache(maxsize=32)
def noise_texture(seed: int, beta: float = 2.0, size: int = TEXTURE_SIZE) -> np.ndarray:
    """Periodic fractal noise (size, size) float32 with zero mean and unit standard deviation.

    ``beta`` is the power-spectrum slope: 1 is rough, 3 is smooth and cloud-like.
    """
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    shaped = np.fft.ifft2(np.fft.fft2(white) * radius ** (-beta / 2.0)).real
    shaped -= shaped.mean()
    shaped /= shaped.std() + 1e-12
    out = shaped.astype(np.float32)
    out.flags.writeable = False
    return out


def sample(texture: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup of ``texture`` (S, S) at texel coordinates u (columns), v (rows).

    u, v: float arrays of broadcastable shapes (any number of dimensions) -> float32 array of their shape.
    """
    import cv2

    u, v = np.broadcast_arrays(u, v)
    shape = u.shape
    n = int(np.prod(shape))
    if n == 0:
        return np.zeros(shape, dtype=np.float32)
    size = np.float32(texture.shape[0])
    # Wrap here: cv2.remap is ~10x slower when coordinates leave the texture (and breaks past 32767).
    uu = np.asarray(u, dtype=np.float32).reshape(-1)
    vv = np.asarray(v, dtype=np.float32).reshape(-1)
    uu = uu - np.floor(uu * (1 / size)) * size
    vv = vv - np.floor(vv * (1 / size)) * size
    rows = -(-n // _REMAP_WIDTH)
    pad = rows * _REMAP_WIDTH - n
    if pad:
        uu = np.concatenate([uu, np.zeros(pad, np.float32)])
        vv = np.concatenate([vv, np.zeros(pad, np.float32)])
    out = cv2.remap(np.ascontiguousarray(texture), uu.reshape(rows, _REMAP_WIDTH), vv.reshape(rows, _REMAP_WIDTH),
                    interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return out.reshape(-1)[:n].reshape(shape)


def cell_hash(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer cell (i, j) (same shapes), float32.

    Used for per-window or per-tile choices (lit or not, shade) that must not flicker between frames.
    """
    h = (np.asarray(i, dtype=np.int64) * 73856093) ^ (np.asarray(j, dtype=np.int64) * 19349663) \
        ^ (int(seed) * 83492791)
    h = h & 0xFFFFFFFF
    h = (h ^ (h >> 13)) * 1274126177 & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).astype(np.float32) / np.float32(1 << 24)
