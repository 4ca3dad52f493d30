"""The published depth range: one check of its bounds and one function that masks what lies outside it."""
from __future__ import annotations

import numpy as np


def check_depth_range(min_depth: float, max_depth: float) -> None:
    """ValueError unless 0 < min_depth < max_depth (both finite or max_depth = inf)."""
    if not 0 < min_depth < max_depth:
        raise ValueError(f"depth range [{min_depth}, {max_depth}] is empty or not positive")


def mask_outside_range(depth: np.ndarray, min_depth: float, max_depth: float,
                       out: np.ndarray | None = None) -> np.ndarray:
    """float32 (H, W) depth with NaN wherever ``depth`` is outside [min_depth, max_depth], NaN or inf.

    Writes into ``out`` (which may be ``depth`` itself, for an in-place pass) or a new array.
    """
    if out is None:
        out = np.array(depth, dtype=np.float32, copy=True)
    elif out is not depth:
        out[...] = depth
    with np.errstate(invalid="ignore"):
        # One combined test also maps NaN/inf/negative to NaN (comparisons with NaN are False).
        out[~((out >= min_depth) & (out <= max_depth))] = np.nan
    return out
