"""How much the metric scale a stream publishes changes from frame to frame.

Two measures, per backend over consecutive frames:
- ``scale_change`` (offline, where the pipeline's alignment is known): the median over this frame's
  pixels of |D(params_t, p_t) / D(params_t-1, p_t) - 1|, i.e. how much the published depth of this
  frame differs from what the previous frame's alignment would have published for it (for a pure scale
  this is |s_t / s_t-1 - 1|). ``fit_change`` is the same for each frame's own (unfiltered) fit.
- the LiDAR ratio (offline and live): |m_t / m_t-1 - 1| for the per-frame median scaling factor
  m = median(LiDAR) / median(published) of the "median" scaling, which is what a user sees drift.
"""
from __future__ import annotations

import math

import numpy as np

from ..align import apply_model

SAMPLE_STRIDE = 8  # every 8th pixel in rows and columns is plenty for a median


def applied_change(kind: str, previous, params, prediction: np.ndarray) -> float | None:
    """Median |depth(params) / depth(previous) - 1| over the prediction's (H, W) sampled finite pixels."""
    if previous is None or params is None or not all(map(math.isfinite, (*previous, *params))):
        return None
    p = np.asarray(prediction)[::SAMPLE_STRIDE, ::SAMPLE_STRIDE]
    new = apply_model(kind, p, params, 1e-9, np.inf)
    old = apply_model(kind, p, previous, 1e-9, np.inf)
    ok = np.isfinite(new) & np.isfinite(old)
    return float(np.median(np.abs(new[ok] / old[ok] - 1.0))) if ok.any() else None


def ratio_changes(scales: list[float | None]) -> list[float]:
    """|m_t / m_t-1 - 1| for consecutive finite positive values of a series."""
    out = []
    for a, b in zip(scales, scales[1:]):
        if a and b and math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0:
            out.append(abs(b / a - 1.0))
    return out


def summarize(changes: list[float | None]) -> dict | None:
    """{"median": %, "p95": %, "frames": n} of relative changes, or None without any."""
    values = np.array([c for c in changes if c is not None and math.isfinite(c)], dtype=float)
    if not values.size:
        return None
    return {"median": 100.0 * float(np.median(values)), "p95": 100.0 * float(np.percentile(values, 95)),
            "frames": int(values.size)}


def stability(records, region: str = "all") -> dict:
    """{backend: {"published": ..., "per_frame_fit": ..., "lidar_median_ratio": ...}} from frame records
    (in frame order per bag)."""
    out = {}
    for backend in dict.fromkeys(r.backend for r in records):
        mine = [r for r in records if r.backend == backend and not r.dropped]
        medians, bags = [], []
        for r in mine:
            score = r.scores.get((region, "median"))
            medians.append(score.scale if score is not None and score.n else None)
            bags.append(r.bag)
        lidar = []
        for bag in dict.fromkeys(bags):  # no change across the gap between two bags
            lidar += ratio_changes([m for m, b in zip(medians, bags) if b == bag])
        entry = {"published": summarize([r.scale_change for r in mine]),
                 "per_frame_fit": summarize([r.fit_change for r in mine]),
                 "lidar_median_ratio": summarize(lidar)}
        out[backend] = {k: v for k, v in entry.items() if v is not None}
    return out


def stability_markdown(table: dict) -> list[str]:
    """The report's section: frame-to-frame change of the applied scale, median and p95, per backend."""
    rows = []
    for backend, entry in table.items():
        for name, title in (("published", "published alignment"), ("per_frame_fit", "per-frame fit (unfiltered)"),
                            ("lidar_median_ratio", "LiDAR median-scaling factor")):
            if name in entry:
                e = entry[name]
                rows.append(f"| {backend} | {title} | {e['median']:.2f} | {e['p95']:.2f} | {e['frames']} |")
    if not rows:
        return []
    return ["## Scale stability: frame-to-frame change of the applied scale (%)", "",
            "| backend | measure | median | p95 | pairs |", "|---|---|---|---|---|", *rows, ""]
