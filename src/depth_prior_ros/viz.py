"""Depth visualisation without matplotlib (the node must stay light): a 256-entry turbo-like LUT.

The LUT comes from the published 6th-order polynomial fit of Google's Turbo colormap, evaluated once.
Near is warm (red), far is cold (blue), unknown is black, the convention of most depth viewers.
"""
from __future__ import annotations

import numpy as np

_TURBO_R = (0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943)
_TURBO_G = (0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604)
_TURBO_B = (0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973)


def _turbo_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    powers = np.stack([x ** k for k in range(6)], axis=1)
    rgb = np.stack([powers @ np.array(c) for c in (_TURBO_R, _TURBO_G, _TURBO_B)], axis=1)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


TURBO_LUT = _turbo_lut()  # (256, 3) uint8, index 0 = blue (far end after inversion below)


def colorize_depth(depth: np.ndarray, min_depth: float = 1.0, max_depth: float = 80.0,
                   inverse: bool = True) -> np.ndarray:
    """Depth (H, W) metres -> RGB uint8 (H, W, 3); NaN/inf/non-positive are black.

    inverse: colour by inverse depth (more colour resolution near the car, where it matters).
    """
    d = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    # Inverse colouring needs a sane near end: 1/0.001 m would squash every real depth into one colour.
    lo = max(min_depth, 1.0 if inverse else 0.0)
    hi = max(max_depth, lo + 1e-3)
    with np.errstate(divide="ignore", invalid="ignore"):
        if inverse:
            t = (1.0 / np.clip(d, lo, hi) - 1.0 / hi) / (1.0 / lo - 1.0 / hi)
        else:
            t = 1.0 - (np.clip(d, lo, hi) - lo) / (hi - lo)
    idx = np.where(valid, np.clip(t * 255.0 + 0.5, 0, 255), 0).astype(np.uint8)
    rgb = TURBO_LUT[idx]
    rgb[~valid] = 0
    return rgb
