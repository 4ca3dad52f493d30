"""Depth as colours for people (RViz, reports, the CLI): turbo over inverse depth, black where unknown."""
from __future__ import annotations

import numpy as np


def turbo_lut() -> np.ndarray:
    """Google's Turbo colormap as a (256, 3) uint8 RGB table (OpenCV's built-in COLORMAP_TURBO).

    cv2 is already a dependency of the prior's inpainting, so the node needs no matplotlib; the
    tests compare this table with matplotlib's.
    """
    import cv2

    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)[:, 0, ::-1].copy()


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """Depth (H, W) metres -> uint8 RGB (H, W, 3) for RViz: turbo over inverse depth, black = unknown.

    Inverse depth spreads the colours over the near range where detail matters: min_depth is red,
    max_depth dark blue; values outside the range are clamped, NaN/inf/<= 0 are black. The index
    is computed in numpy; the table lookup, channel swap and masking run in OpenCV (about twice as
    fast as numpy fancy indexing on a full-HD frame).
    """
    import cv2

    if not 0 < min_depth < max_depth:
        raise ValueError(f"colour range [{min_depth}, {max_depth}] must be positive and increasing")
    inv_far, inv_near = 1.0 / max_depth, 1.0 / min_depth
    scale = 255.0 / (inv_near - inv_far)
    d = np.ascontiguousarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be a 2-D array, got shape {d.shape}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = np.divide(np.float32(scale), d)          # scale / d ...
        x += np.float32(0.5 - inv_far * scale)       # ... - inv_far * scale, +0.5 to round below
        np.clip(x, 0.0, 255.0, out=x)
        known = (d > 0) & (d < np.inf)               # NaN compares False
        index = x.astype(np.uint8)                   # NaN gives an arbitrary index: masked below
    bgr = cv2.applyColorMap(index, cv2.COLORMAP_TURBO)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.bitwise_and(rgb, rgb, mask=known.view(np.uint8))
