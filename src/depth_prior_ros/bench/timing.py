"""Small timing helpers: repeat a call until enough time has passed, keep every sample, summarise.

Medians, not means: a noisy shared machine adds long tails that say nothing about the code.
"""
from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Samples of one measured call, in milliseconds."""

    samples_ms: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def median(self) -> float:
        return float(np.median(self.samples_ms)) if self.samples_ms else float("nan")

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.samples_ms, q)) if self.samples_ms else float("nan")

    def merged(self, other: "Timing") -> "Timing":
        return Timing(self.samples_ms + other.samples_ms)


def measure(fn: Callable[[], object], min_time_s: float = 0.5, min_repeats: int = 5, max_repeats: int = 1000,
            warmup: int = 2) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then until both ``min_time_s`` and ``min_repeats`` are reached.

    The garbage collector is paused while timing so one call does not pay for another's garbage.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(samples) < max_repeats:
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
            if len(samples) >= min_repeats and time.perf_counter() - start >= min_time_s:
                break
    finally:
        if was_enabled:
            gc.enable()
    return Timing(tuple(samples))


def ratio(value_ms: float, baseline_ms: float) -> float:
    return value_ms / baseline_ms if baseline_ms > 0 else float("nan")


def percentiles(values, qs=(50, 99)) -> tuple[float, ...]:
    """Percentiles of a possibly empty sequence (NaN when empty)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return tuple(float("nan") for _ in qs)
    return tuple(float(np.percentile(arr, q)) for q in qs)
