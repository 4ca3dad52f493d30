"""Metric alignment of a network's relative depth to the embodied prior, and its temporal filter.

The prior is exact on the road but says "ground" wherever a car, a wall or a person stands in front of
the road. Those pixels are a minority and always *nearer* than the prior, so a consensus fit (RANSAC
over minimal samples, then IRLS on the consensus set) selects the ground-consistent pixels without any
segmentation model. Residuals are relative depth errors, so near and far pixels count alike.

Models per prediction kind (p = prediction, y = prior depth):
  affine_disparity: 1 / y = a * p + b     (Depth Anything / MiDaS-style relative disparity)
  scale_depth:      y = s * p             (Jasmine, self-supervised scale-ambiguous depth)
  metric_depth:     passed through; the fit reports how well it agrees with the prior
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import on_device
from .arrays import is_tensor, to_host
from .prior.ground import BLOCK_PIXELS, disparity_limits

ALIGN_KINDS = ("affine_disparity", "scale_depth", "metric_depth")


class AlignmentError(ValueError):
    """The inputs cannot be aligned (wrong shapes or kind); one sentence says which."""


@dataclass
class AlignConfig:
    inlier_threshold: float = 0.1     # relative depth error that counts as agreement with the prior
    max_samples: int = 4000           # pixels used for the fit (a strided grid, then a random subset)
    iterations: int = 64              # RANSAC hypotheses
    irls_iterations: int = 3
    min_confidence: float = 0.05      # prior pixels below this confidence are not used
    min_samples: int = 50             # fewer trusted pixels than this -> no fit
    min_inlier_fraction: float = 0.2  # a consensus smaller than this is not trusted
    min_depth: float = 0.5
    max_depth: float = 80.0
    seed: int = 0


@dataclass
class Alignment:
    """Result of one fit. depth: float32 (H, W) metric, NaN unknown or outside [min_depth, max_depth].

    params: (a, b) for affine_disparity, (s, 0) for scale_depth, (1, 0) for metric_depth: what the
    depth was made with (a stream's temporally filtered params); frame_params: this frame's own fit
    (None when it failed). residual: median relative depth error over the consensus set.
    """

    depth: np.ndarray | None
    kind: str
    params: tuple[float, float]
    inlier_fraction: float
    residual: float
    n_samples: int
    ok: bool
    message: str = ""
    frame_params: tuple[float, float] | None = None

    @property
    def scale(self) -> float:
        return self.params[0]

    @property
    def shift(self) -> float:
        return self.params[1]


# --------------------------------------------------------------------------- sampling
def _usable(p, y, w, valid, config: AlignConfig) -> np.ndarray:
    """Bool mask (same shape) of samples where prediction, prior and weight are all usable."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(p) & np.isfinite(y) & (y > 0) & (w >= config.min_confidence)
    if valid is not None:
        ok &= valid.astype(bool)
    return ok


def sample_fit_pixels(prediction: np.ndarray, prior: np.ndarray, weight: np.ndarray | None,
                      valid: np.ndarray | None, config: AlignConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick up to ``max_samples`` pixels where prediction and prior are both usable.

    A strided grid first (cheap on a full-HD frame: no full-size masks), then a random subset. A sparse
    prediction (NaN outside a few thousand pixels, e.g. kept only at LiDAR returns) leaves the grid with
    few usable pixels: 5,000 scattered over 1600x900 give the grid about 62. When the grid keeps fewer
    than a quarter of ``max_samples``, the usable set of the whole frame is found once and sampled
    instead (one full-size mask: only paid by sparse predictions or priors).
    The inputs may be torch tensors on any device: only the grid (or, when sparse, the frame) comes to
    the host. Returns p (N,), y (N,) prior depth, w (N,) weights, all float64 numpy.
    """
    H, W = prior.shape
    stride = max(1, int(np.sqrt(H * W / (3.0 * config.max_samples))))
    offset = stride // 2
    grid = (slice(offset, None, stride), slice(offset, None, stride))
    p = to_host(prediction[grid]).ravel()
    y = to_host(prior[grid]).ravel()
    w = to_host(weight[grid]).ravel() if weight is not None else np.ones_like(y)
    ok = _usable(p, y, w, None if valid is None else to_host(valid[grid]).ravel(), config)
    idx = np.flatnonzero(ok)
    if stride > 1 and idx.size < config.max_samples // 4:
        # Too sparse for the grid: every usable pixel of the frame is a candidate.
        p, y = to_host(prediction).ravel(), to_host(prior).ravel()
        w = to_host(weight).ravel() if weight is not None else np.ones_like(y)
        idx = np.flatnonzero(_usable(p, y, w, None if valid is None else to_host(valid).ravel(), config))
    if idx.size > config.max_samples:
        rng = np.random.default_rng(config.seed)
        idx = rng.choice(idx, config.max_samples, replace=False)
    return p[idx].astype(np.float64), y[idx].astype(np.float64), w[idx].astype(np.float64)


# --------------------------------------------------------------------------- robust fits
def relative_residual(kind: str, params: np.ndarray, p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|model(p) - y| / y for hypotheses params (M, 2) and samples (N,) -> (M, N).

    For affine_disparity the error is measured in disparity (|a p + b - 1/y| * y), which to first
    order equals the relative depth error and avoids dividing by a model that may cross zero.
    """
    # One matrix product gives every hypothesis' model at every sample: (a p + b) y = [a, b] . [p y, y].
    features = np.stack([p * y, y]) if kind == "affine_disparity" else (p / y)[None]
    res = np.asarray(params, dtype=np.float64)[:, :features.shape[0]] @ features
    res -= 1.0
    return np.abs(res, out=res)


def hypotheses(kind: str, p: np.ndarray, y: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Minimal-sample model hypotheses (count, 2): 2 points for affine_disparity, 1 for scale_depth."""
    n = p.size
    if kind == "affine_disparity":
        i = rng.integers(0, n, count)
        j = rng.integers(0, n, count)
        dp = p[i] - p[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = (1.0 / y[i] - 1.0 / y[j]) / dp
            b = 1.0 / y[i] - a * p[i]
        params = np.stack([a, b], axis=1)
        return params[np.isfinite(a) & (a > 0) & np.isfinite(b)]
    i = rng.integers(0, n, count)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = y[i] / p[i]
    s = s[np.isfinite(s) & (s > 0)]
    return np.stack([s, np.zeros_like(s)], axis=1)


def weighted_fit(kind: str, p: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """Weighted least squares of the model on samples: (2,) params or None if degenerate.

    affine_disparity minimises sum w (y (a p + b) - 1)^2 (relative disparity error);
    scale_depth minimises sum w (s p / y - 1)^2.
    """
    if kind == "affine_disparity":
        A = np.stack([p * y, y], axis=1) * np.sqrt(w)[:, None]
        rhs = np.sqrt(w)
        sol, *_ = np.linalg.lstsq(A, rhs, rcond=None)
        if not np.all(np.isfinite(sol)) or sol[0] <= 0:
            return None
        return sol
    q = p / y
    den = float(np.sum(w * q * q))
    if den <= 0:
        return None
    s = float(np.sum(w * q)) / den
    return np.array([s, 0.0]) if np.isfinite(s) and s > 0 else None


def robust_fit(kind: str, p: np.ndarray, y: np.ndarray, w: np.ndarray, config: AlignConfig):
    """RANSAC (consensus = confidence-weighted inlier mass) then IRLS with Tukey weights on the consensus.

    Returns (params (2,), inlier mask (N,), residuals (N,)) or None.
    """
    rng = np.random.default_rng(config.seed)
    hyp = hypotheses(kind, p, y, config.iterations, rng)
    if hyp.shape[0] == 0:
        return None
    res = relative_residual(kind, hyp, p, y)
    score = (res < config.inlier_threshold).astype(np.float64) @ w
    best = hyp[int(np.argmax(score))]
    params = best
    thr = config.inlier_threshold
    for _ in range(config.irls_iterations):
        r = relative_residual(kind, params[None], p, y)[0]
        inl = r < thr
        if np.count_nonzero(inl) < 2:
            break
        tukey = (1.0 - (r[inl] / thr) ** 2) ** 2
        refined = weighted_fit(kind, p[inl], y[inl], w[inl] * tukey)
        if refined is None:
            break
        params = refined
    r = relative_residual(kind, params[None], p, y)[0]
    return params, r < thr, r


# --------------------------------------------------------------------------- application
def apply_model(kind: str, prediction: np.ndarray, params, min_depth: float, max_depth: float) -> np.ndarray:
    """Metric depth (H, W) float32 from a prediction and fitted params; NaN outside [min, max].

    One pass over the frame, in blocks that stay in the L2 cache: the model (float32, as a * p + b then
    its reciprocal for affine_disparity), then the range test, which is done on the disparity before
    dividing (``disparity_limits`` makes it agree with a test on the depth to the last bit) and skipped
    for blocks wholly inside or outside the range (known from the block's minimum and maximum).
    NaN, inf and negative values come out NaN. A torch tensor prediction is applied on its device
    (``on_device.apply_model``) and the depth stays there.
    """
    if is_tensor(prediction):
        return on_device.apply_model(kind, prediction, params, min_depth, max_depth)
    a, b = np.float32(params[0]), np.float32(params[1])
    pred = np.ascontiguousarray(prediction, dtype=np.float32)
    out = np.empty(pred.shape, dtype=np.float32)
    # The range is compared in float32, as a float32 depth against the (rounded) limits.
    lo_depth, hi_depth = float(np.float32(min_depth)), float(np.float32(max_depth))
    invert = kind == "affine_disparity"
    lo, hi = disparity_limits(lo_depth, hi_depth) if invert else (np.float32(lo_depth), np.float32(hi_depth))
    flat_in, flat_out = pred.reshape(-1), out.reshape(-1)
    mask = np.empty(min(BLOCK_PIXELS, flat_in.size), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, flat_in.size, BLOCK_PIXELS):
            block, src = flat_out[start:start + BLOCK_PIXELS], flat_in[start:start + BLOCK_PIXELS]
            if kind == "metric_depth":
                block[...] = src
            else:
                np.multiply(src, a, out=block)
                if invert:
                    block += b
            low, high = block.min(), block.max()  # NaN if any value is NaN: then the masked path
            if low >= lo and high <= hi:
                m = None
            elif high < lo or low > hi:
                block.fill(np.nan)
                continue
            else:
                m = np.less(block, lo, out=mask[:block.size])
                m |= block > hi
            if invert:
                np.reciprocal(block, out=block)
            if m is not None:
                np.copyto(block, np.float32(np.nan), where=m)
    return out


def align_to_prior(prediction: np.ndarray, kind: str, prior: np.ndarray, prior_confidence: np.ndarray | None = None,
                   valid: np.ndarray | None = None, config: AlignConfig | None = None,
                   compute_depth: bool = True) -> Alignment:
    """Fit the prediction (H, W) to the metric prior (H, W) and return metric depth.

    prediction: float (H, W), NaN = unknown; kind: affine_disparity | scale_depth | metric_depth.
    prior: float (H, W) metres, NaN where unknown; prior_confidence: optional (H, W) weights in [0, 1].
    valid: optional bool (H, W) of pixels the network vouches for.
    Prediction, prior, confidence and valid may be torch tensors on one device (on_device.py): the fit
    reads a grid of samples on the host, and the depth is computed, and stays, on that device.
    compute_depth: False skips applying the fit (a stream applies its filtered params instead).
    """
    config = config or AlignConfig()
    if kind not in ALIGN_KINDS:
        raise AlignmentError(f"prediction kind '{kind}' is not one of {', '.join(ALIGN_KINDS)}")
    if not is_tensor(prediction):
        prediction = np.asarray(prediction)
    if not is_tensor(prior):
        prior = np.asarray(prior)
    shape, prior_shape = tuple(prediction.shape), tuple(prior.shape)
    if prediction.ndim != 2 or shape != prior_shape:
        raise AlignmentError(f"prediction shape {shape} does not match prior shape {prior_shape}")
    confidence_shape = None if prior_confidence is None else tuple(np.shape(prior_confidence))
    if confidence_shape is not None and confidence_shape != prior_shape:
        raise AlignmentError(f"prior confidence shape {confidence_shape} does not match prior shape {prior_shape}")

    p, y, w = sample_fit_pixels(prediction, prior, prior_confidence, valid, config)
    n = int(p.size)
    if kind == "metric_depth":
        params = np.array([1.0, 0.0])
        if n:
            r = relative_residual("scale_depth", params[None], p, y)[0]
            inl = r < config.inlier_threshold
            fraction, residual = float(np.average(inl, weights=w)), float(np.median(r))
        else:
            fraction, residual = 0.0, float("nan")
        # Passed through either way; ok says whether it agrees with the prior (as for the fitted kinds).
        ok = n >= config.min_samples and fraction >= config.min_inlier_fraction
        message = ("" if ok else "too few prior pixels to compare" if n < config.min_samples
                   else f"only {fraction:.0%} of the prior agrees with the prediction")
    elif n < config.min_samples:
        params, fraction, residual, ok = None, 0.0, float("nan"), False
        message = f"only {n} pixels where prediction and prior overlap (need {config.min_samples})"
    else:
        fit = robust_fit(kind, p, y, w, config)
        if fit is None:
            params, fraction, residual, ok = None, 0.0, float("nan"), False
            message = "no consistent model: the prediction does not increase with the prior's disparity"
        else:
            params, inl, r = fit
            fraction = float(np.sum(w[inl]) / max(np.sum(w), 1e-12))
            residual = float(np.median(r[inl])) if np.any(inl) else float("nan")
            ok = fraction >= config.min_inlier_fraction
            message = "" if ok else f"only {fraction:.0%} of the prior agrees with the prediction"

    depth = None
    if compute_depth and params is not None:
        depth = apply_model(kind, prediction, params, config.min_depth, config.max_depth)
    frame_params = None if params is None else (float(params[0]), float(params[1]))
    return Alignment(depth, kind, frame_params or (float("nan"), float("nan")), fraction, residual, n, ok, message,
                     frame_params=frame_params)


# --------------------------------------------------------------------------- temporal filter
class ScaleFilter:
    """Smooths alignment params over a stream in log space, rejecting single-frame jumps.

    State: log(scale) and the shift expressed in prediction units (b / a), which stays put when only
    the scale drifts. A measurement further than ``gate`` (in log scale) from the state is rejected;
    ``reset_after`` rejections in a row mean the scene really changed, and the filter restarts there.
    Accepted measurements go through a running median of the last ``window`` ones (a fit that is off
    by less than the gate, but only for a frame, then moves nothing), then an EMA with gain ``alpha``
    times the fit's weight relative to FULL_WEIGHT. On PyDNet over the 77 KITTI raw frames the per-frame
    fits change by 3.3% (median) / 12% (p95) from frame to frame, the published scale by 0.4% / 2.0%
    (benchmarks/REAL_DATA.md); a true 20% step is followed within 2% in 10 frames (tests/test_scale_filter.py).
    """

    FULL_WEIGHT = 0.5  # a fit half the prior agrees with counts fully (flat-road priors rarely get more)

    def __init__(self, alpha: float = 0.3, gate: float = 0.25, reset_after: int = 5, window: int = 3):
        if not 0 < alpha <= 1:
            raise ValueError(f"filter alpha must be in (0, 1], got {alpha}")
        if window < 1:
            raise ValueError(f"filter window must be at least 1, got {window}")
        self.alpha, self.gate, self.reset_after, self.window = alpha, gate, reset_after, int(window)
        self.reset()

    def reset(self) -> None:
        self.log_scale: float | None = None
        self.rel_shift = 0.0
        self.recent: list[tuple[float, float]] = []  # the last accepted (log a, b / a), oldest first
        self.rejected_in_row = 0
        self.rejections = 0

    @property
    def initialised(self) -> bool:
        return self.log_scale is not None

    def params(self) -> tuple[float, float] | None:
        if self.log_scale is None:
            return None
        a = float(np.exp(self.log_scale))
        return a, a * self.rel_shift

    def _restart(self, log_a: float, rel_b: float) -> tuple[float, float] | None:
        self.log_scale, self.rel_shift, self.rejected_in_row = log_a, rel_b, 0
        self.recent = [(log_a, rel_b)]
        return self.params()

    def update(self, params, weight: float = 1.0) -> tuple[float, float] | None:
        """Feed one frame's (a, b) (or None for a failed fit) and get the filtered (a, b)."""
        if params is None or not np.all(np.isfinite(params)) or params[0] <= 0:
            return self.params()
        log_a, rel_b = float(np.log(params[0])), float(params[1] / params[0])
        if not (np.isfinite(log_a) and np.isfinite(rel_b)):
            return self.params()
        if self.log_scale is None:
            return self._restart(log_a, rel_b)
        if abs(log_a - self.log_scale) > self.gate:
            self.rejected_in_row += 1
            self.rejections += 1
            if self.rejected_in_row < self.reset_after:
                return self.params()
            return self._restart(log_a, rel_b)
        self.rejected_in_row = 0
        self.recent = (self.recent + [(log_a, rel_b)])[-self.window:]
        target_a, target_b = np.median(np.asarray(self.recent), axis=0)
        k = self.alpha * float(np.clip(np.nan_to_num(weight / self.FULL_WEIGHT), 0.0, 1.0))
        self.log_scale += k * (float(target_a) - self.log_scale)
        self.rel_shift += k * (float(target_b) - self.rel_shift)
        return self.params()
