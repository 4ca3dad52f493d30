"""Standard monocular depth metrics and the evaluation protocols around them.

Definitions (Eigen et al. 2014; KITTI depth benchmark for SILog), over the evaluated pixels with
prediction p and ground truth g (metres):
  AbsRel  = mean(|p - g| / g)              SqRel   = mean((p - g)^2 / g)
  RMSE    = sqrt(mean((p - g)^2))          RMSElog = sqrt(mean((log p - log g)^2))
  SILog   = 100 * sqrt(mean(d^2) - mean(d)^2), d = log p - log g
  delta_k = fraction of pixels with max(p / g, g / p) < 1.25^k, k = 1, 2, 3

Protocol (what "the evaluated pixels" are and how p is scaled first):
  - ground truth in (min_depth, max_depth): the cap is 80 m for KITTI and nuScenes, 50 m for RobotCar;
  - optional crop: Garg (KITTI Eigen split, Garg et al. 2016) or Eigen (Eigen et al. 2014), as image
    fractions, so they apply at any resolution;
  - optional region: e.g. road pixels only (from a label image);
  - pixels where the node published no depth (NaN) are not scored but counted: ``coverage`` is the
    fraction of evaluated ground-truth pixels that had a prediction;
  - scaling: "metric" (the published depth as it is), "prior" (the caller passes the per-frame
    prior-aligned depth), "median" (p * median(g) / median(p), the self-supervised convention) or
    "lstsq" (least-squares scale and shift of p against g) or "disparity_lstsq" (least-squares scale and
    shift in disparity, 1/g ~ s / p + t: the oracle of an affine-disparity network, as MiDaS evaluates);
    then p is clipped to [min_depth, max_depth] as in the monodepth2 evaluation.
Frames are averaged with equal weight (per-image means, as the benchmarks do).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "silog", "delta1", "delta2", "delta3")
LOWER_IS_BETTER = {"abs_rel", "sq_rel", "rmse", "rmse_log", "silog"}
SCALING_MODES = ("metric", "prior", "median", "lstsq", "disparity_lstsq")
CROPS = ("none", "garg", "eigen")

# (top, bottom, left, right) as fractions of the image: the values from the papers at 375x1242.
CROP_FRACTIONS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}

# Distance bins (metres, upper edges) for "error vs distance".
DEFAULT_DISTANCE_EDGES = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0)


class MetricsError(ValueError):
    """Inputs that cannot be compared (shapes, unknown options); one sentence says which."""


@dataclass(frozen=True)
class EvalProtocol:
    """How a frame is scored. Presets: ``EvalProtocol.kitti()``, ``.nuscenes()``, ``.robotcar()``."""

    min_depth: float = 1e-3
    max_depth: float = 80.0
    crop: str = "none"
    scaling: str = "metric"
    clip_prediction: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_depth < self.max_depth:
            raise MetricsError(f"depth range ({self.min_depth}, {self.max_depth}) is empty or negative")
        if self.crop not in CROPS:
            raise MetricsError(f"crop '{self.crop}' is not one of {', '.join(CROPS)}")
        if self.scaling not in SCALING_MODES:
            raise MetricsError(f"scaling '{self.scaling}' is not one of {', '.join(SCALING_MODES)}")

    @classmethod
    def kitti(cls, **kw) -> "EvalProtocol":
        return cls(**{"min_depth": 1e-3, "max_depth": 80.0, "crop": "garg", **kw})

    @classmethod
    def nuscenes(cls, **kw) -> "EvalProtocol":
        return cls(**{"min_depth": 0.1, "max_depth": 80.0, **kw})

    @classmethod
    def robotcar(cls, **kw) -> "EvalProtocol":
        return cls(**{"min_depth": 0.1, "max_depth": 50.0, **kw})

    def with_scaling(self, scaling: str) -> "EvalProtocol":
        return EvalProtocol(self.min_depth, self.max_depth, self.crop, scaling, self.clip_prediction)


# --------------------------------------------------------------------------- pure metric math
def depth_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """All METRIC_NAMES for matched positive depths pred (N,), gt (N,) -> dict of floats (NaN if N = 0)."""
    pred = np.asarray(pred, dtype=np.float64).ravel()
    gt = np.asarray(gt, dtype=np.float64).ravel()
    if pred.shape != gt.shape:
        raise MetricsError(f"{pred.size} predictions cannot be compared with {gt.size} ground-truth values")
    if pred.size == 0:
        return {name: float("nan") for name in METRIC_NAMES}
    if np.any(pred <= 0) or np.any(gt <= 0):
        raise MetricsError("depth metrics need strictly positive predictions and ground truth")
    diff = pred - gt
    log_diff = np.log(pred) - np.log(gt)
    ratio = np.maximum(pred / gt, gt / pred)
    silog_var = max(float(np.mean(log_diff ** 2) - np.mean(log_diff) ** 2), 0.0)  # >= 0 up to rounding
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff ** 2))),
        "silog": float(100.0 * np.sqrt(silog_var)),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25 ** 2)),
        "delta3": float(np.mean(ratio < 1.25 ** 3)),
    }


def crop_mask(height: int, width: int, crop: str) -> np.ndarray:
    """bool (H, W): True inside the Garg / Eigen crop (everything for "none")."""
    if crop not in CROPS:
        raise MetricsError(f"crop '{crop}' is not one of {', '.join(CROPS)}")
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
        return mask
    top, bottom, left, right = CROP_FRACTIONS[crop]
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def median_scale(pred: np.ndarray, gt: np.ndarray) -> float:
    """Scale s with median(s p) = median(g) over matched values (N,)."""
    return float(np.median(gt) / np.median(pred))


def lstsq_scale_shift(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(s, t) minimising sum (s p + t - g)^2 over matched values (N,)."""
    A = np.stack([pred, np.ones_like(pred)], axis=1).astype(np.float64)
    (s, t), *_ = np.linalg.lstsq(A, gt.astype(np.float64), rcond=None)
    return float(s), float(t)


# --------------------------------------------------------------------------- one frame
@dataclass
class FrameScore:
    """Metrics of one frame in one region. n: scored pixels; n_gt: evaluated ground-truth pixels."""

    metrics: dict[str, float]
    n: int
    n_gt: int
    scale: float = 1.0
    shift: float = 0.0

    @property
    def coverage(self) -> float:
        return self.n / self.n_gt if self.n_gt else float("nan")


def evaluation_mask(gt: np.ndarray, protocol: EvalProtocol, region: np.ndarray | None = None) -> np.ndarray:
    """bool (H, W): finite ground truth in (min_depth, max_depth), inside the crop and the region."""
    gt = np.asarray(gt)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt) & (gt > protocol.min_depth) & (gt < protocol.max_depth)
    if protocol.crop != "none":
        mask &= crop_mask(gt.shape[0], gt.shape[1], protocol.crop)
    if region is not None:
        if np.shape(region) != gt.shape:
            raise MetricsError(f"region mask {np.shape(region)} does not match ground truth {gt.shape}")
        mask &= np.asarray(region, dtype=bool)
    return mask


def score_frame(pred: np.ndarray, gt: np.ndarray, protocol: EvalProtocol, region: np.ndarray | None = None,
                prior_aligned: np.ndarray | None = None) -> FrameScore:
    """Score one depth map pred (H, W) against gt (H, W) (metres, NaN/0 = unknown).

    prior_aligned: (H, W) depth for scaling "prior" (the raw prediction aligned to the prior on this
    frame alone); when it is None that mode scores ``pred`` unchanged.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise MetricsError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    if protocol.scaling == "prior" and prior_aligned is not None:
        pred = np.asarray(prior_aligned, dtype=np.float64)
    mask = evaluation_mask(gt, protocol, region)
    n_gt = int(np.count_nonzero(mask))
    with np.errstate(invalid="ignore"):
        mask &= np.isfinite(pred) & (pred > 0)
    p, g = pred[mask], gt[mask]
    scale, shift = 1.0, 0.0
    if p.size and protocol.scaling == "median":
        scale = median_scale(p, g)
        p = p * scale
    elif p.size >= 2 and protocol.scaling == "lstsq":
        scale, shift = lstsq_scale_shift(p, g)
        p = p * scale + shift
    elif p.size >= 2 and protocol.scaling == "disparity_lstsq":
        scale, shift = lstsq_scale_shift(1.0 / p, 1.0 / g)
        disparity = scale / p + shift
        p = np.where(disparity > 0, 1.0 / np.maximum(disparity, 1e-12), protocol.max_depth)
    if protocol.clip_prediction:
        p = np.clip(p, protocol.min_depth, protocol.max_depth)
    p = np.maximum(p, 1e-6)  # an lstsq shift may push a few values below zero
    return FrameScore(depth_errors(p, g), int(p.size), n_gt, scale, shift)


# --------------------------------------------------------------------------- aggregation
def mean_metrics(scores: list[FrameScore]) -> dict[str, float]:
    """Per-frame mean of every metric (frames without scored pixels are left out), plus frame count,
    total scored pixels and mean coverage."""
    used = [s for s in scores if s.n > 0]
    out = {name: float(np.mean([s.metrics[name] for s in used])) if used else float("nan")
           for name in METRIC_NAMES}
    out["frames"] = len(used)
    out["pixels"] = int(sum(s.n for s in used))
    cov = [s.coverage for s in scores if s.n_gt > 0]
    out["coverage"] = float(np.mean(cov)) if cov else float("nan")
    return out


@dataclass
class DistanceErrors:
    """Running AbsRel and RMSE per ground-truth distance bin (for the error-vs-distance plot).

    edges: (B + 1,) bin edges in metres. Sums are kept so frames of any number can be added.
    """

    edges: tuple[float, ...] = DEFAULT_DISTANCE_EDGES
    abs_rel_sum: np.ndarray = field(default=None)
    sq_err_sum: np.ndarray = field(default=None)
    count: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        bins = len(self.edges) - 1
        if self.abs_rel_sum is None:
            self.abs_rel_sum = np.zeros(bins)
            self.sq_err_sum = np.zeros(bins)
            self.count = np.zeros(bins, dtype=np.int64)

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Matched positive values pred (N,), gt (N,)."""
        idx = np.digitize(gt, self.edges) - 1
        ok = (idx >= 0) & (idx < len(self.edges) - 1)
        idx, p, g = idx[ok], pred[ok], gt[ok]
        self.abs_rel_sum += np.bincount(idx, np.abs(p - g) / g, minlength=self.count.size)
        self.sq_err_sum += np.bincount(idx, (p - g) ** 2, minlength=self.count.size)
        self.count += np.bincount(idx, minlength=self.count.size)

    def add_frame(self, pred: np.ndarray, gt: np.ndarray, protocol: EvalProtocol,
                  region: np.ndarray | None = None) -> None:
        """Unscaled prediction and ground truth (H, W) under the protocol's mask."""
        mask = evaluation_mask(gt, protocol, region)
        with np.errstate(invalid="ignore"):
            mask &= np.isfinite(pred) & (pred > 0)
        self.add(np.asarray(pred, np.float64)[mask], np.asarray(gt, np.float64)[mask])

    def table(self) -> list[dict]:
        with np.errstate(invalid="ignore", divide="ignore"):
            abs_rel = self.abs_rel_sum / self.count
            rmse = np.sqrt(self.sq_err_sum / self.count)
        return [{"from_m": float(self.edges[i]), "to_m": float(self.edges[i + 1]), "pixels": int(self.count[i]),
                 "abs_rel": float(abs_rel[i]) if self.count[i] else float("nan"),
                 "rmse": float(rmse[i]) if self.count[i] else float("nan")}
                for i in range(self.count.size)]
