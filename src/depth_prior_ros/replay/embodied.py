"""The VLE embodied-depth table: the share of LiDAR points whose published depth is within 5% and 10%.

Per backend, pooled over every frame (the paper's pixel percentages), with the protocol's depth range
and no crop:
- road: LiDAR points inside the road mask the pipeline used (its segmenter's, or the bag's); a point
  with no published depth counts as outside both bands;
- covered: LiDAR points where the published depth has a value. Run the prior without inpainting
  (``inpaint=false``) and this is the layer the prior really covers: with a road mask the scene prior
  (road, then vertical surfaces standing on it), without one the ground plane below the horizon.
The paper's figures (VLE, CVPR 2025, KITTI) are printed beside.
"""
from __future__ import annotations

import numpy as np

from .metrics import EvalProtocol

THRESHOLDS = (0.05, 0.10)
PAPER = {"road": (80.24, 99.33), "ground": (60.30, 74.89), "scene": (38.88, 52.45)}
LAYERS = ("road", "covered")


def within_counts(depth: np.ndarray, gt: np.ndarray, select: np.ndarray) -> tuple[int, list[int]]:
    """(points, [points within each THRESHOLDS band]) over ``select`` (H, W) bool; NaN depth is outside."""
    d, g = depth[select], gt[select]
    with np.errstate(invalid="ignore"):
        error = np.abs(d - g) / g
    return int(select.sum()), [int(np.count_nonzero(error < t)) for t in THRESHOLDS]


class EmbodiedTable:
    """Accumulates, per backend and layer, LiDAR points and those within each band."""

    def __init__(self, protocol: EvalProtocol):
        self.protocol = protocol
        self.counts: dict[str, dict[str, list[int]]] = {}

    def add(self, backend: str, depth: np.ndarray, gt: np.ndarray, road_mask: np.ndarray | None) -> None:
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(gt) & (gt > self.protocol.min_depth) & (gt < self.protocol.max_depth)
        layers = {"covered": valid & np.isfinite(depth)}
        if road_mask is not None:
            layers["road"] = valid & road_mask
        for layer, select in layers.items():
            n, within = within_counts(depth, gt, select)
            total = self.counts.setdefault(backend, {}).setdefault(layer, [0] * (1 + len(THRESHOLDS)))
            for i, value in enumerate([n, *within]):
                total[i] += value

    def table(self) -> dict:
        """{backend: {layer: {"points": n, "within_5": %, "within_10": %}}}."""
        out = {}
        for backend, layers in self.counts.items():
            out[backend] = {}
            for layer in LAYERS:
                if layer in layers and layers[layer][0]:
                    n, *within = layers[layer]
                    out[backend][layer] = {"points": n, **{f"within_{round(t * 100)}": 100.0 * w / n
                                                           for t, w in zip(THRESHOLDS, within)}}
        return out

    def markdown(self) -> list[str]:
        rows = [(backend, layer, v) for backend, layers in self.table().items() for layer, v in layers.items()]
        if not rows:
            return []
        paper = ", ".join(f"{layer} {a:.2f} / {b:.2f}" for layer, (a, b) in PAPER.items())
        lines = ["## Embodied depth (VLE table): LiDAR points within 5% / 10%", "",
                 "Pooled over all frames, no crop. `road`: points in the road mask; `covered`: points where the "
                 "depth has a value (without inpainting: the layer the prior covers). Paper (KITTI): "
                 f"{paper}.", "",
                 "| backend | layer | points | within 5% | within 10% |", "|---|---|---|---|---|"]
        lines += [f"| {b} | {layer} | {v['points']} | {v['within_5']:.1f} | {v['within_10']:.1f} |"
                  for b, layer, v in rows]
        return lines + [""]
