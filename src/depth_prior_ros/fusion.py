"""Confidence fusion of the aligned network depth with the embodied prior, and the confidence image.

The prior is near-exact where its assumption holds (a road pixel: the flat-road ground plane at the
mount pose) and worthless where it does not (a car standing on the road: the prior still says "road
behind it"). The aligned network is the opposite: everywhere roughly right, nowhere exact. First the
network's local scale is corrected from where the two agree (``local_scale``: a global fit leaves
depth-dependent errors, and the objects standing on a stretch of road share that stretch's error). Then
per pixel:

- the network's relative error sigma_n comes from its fit (the median relative error of the consensus,
  scaled to a standard deviation, and inflated when little of the prior agreed);
- the prior's sigma_p comes from its layer (``PRIOR_SIGMA``: road 1%, ground 3%, vertical surfaces 6%);
- the prior only counts where the two agree: its weight is multiplied by a Tukey agreement
  g(r) = clip(2 (1 - (r / tau)^2), 0, 1) of their relative disagreement r = |d_n - d_p| / d_p: 1 up to
  r = 0.71 tau, falling to 0 at tau (a hard gate would leave seams, a Tukey weight gives the prior away
  where the network's error is large but still agreeing).
  A car on the road is nearer than the road behind it by far more than tau, so it keeps the network.
  tau grows with the prior's depth, tau = tau0 (1 + d_p / range): an aligned relative network's
  disparity error is roughly constant, so its relative depth error grows with depth (the demo student
  compresses the far road: it says 0.83x of the true depth at 20-30 m and 0.51x beyond 45 m, where a
  car in front of that road is at 0.57x and 0.33x); tau0 = 0.15 and range 20 m give 0.34 at 25 m, 0.6 at 60 m.
  Without a road mask, tau0 narrows when little of the prior agreed with the fit (``agreement_for_share``):
  the share of the trusted prior within the fit's tolerance says how much of what the prior calls ground is
  ground (with a mask the trusted prior is the road, and the share says how good the network is there). On the
  synthetic demo 0.73 of it agrees and tau0 stays 0.15; on KITTI raw without a road mask 0.34-0.41 does
  (cars, kerbs and walls stand below the horizon), and the full window let the lower parts of cars and
  walls, within 0.7 tau of the road behind them, be pulled to the road: fused AbsRel 0.445 against 0.403
  unfused at the LiDAR pixels of the held-out frames, 0.397 with the narrowed window alone (the local scale's
  tolerance narrows by the same factor).

The fused depth is the precision-weighted mean (w_n d_n + w_p d_p) / (w_n + w_p) with w = 1 / sigma^2
(w_p times g); for r < tau the mean in depth and in log depth differ by < tau^2 / 8 relative, so the
cheaper one is used. The confidence is the Gaussian probability that the fused depth is within 10%
of the truth, erf(0.1 / (sqrt(2) sigma)) with 1 / sigma^2 = w_n + w_p g: about 1 on agreeing road,
0.68 for a network pixel with a 10% sigma, 0 where nothing is known.

Pixels with no network depth take the prior unverified, with the prior layer's confidence (``CONFIDENCE``
in prior/scene.py) as their confidence.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from math import erf, sqrt

import numpy as np

from .prior.scene import CONFIDENCE, SOURCE_GROUND, SOURCE_INPAINTED, SOURCE_ROAD, SOURCE_VERTICAL

FUSION_MODES = ("off", "confidence")
WITHIN = 0.10  # the confidence is P(|relative error| < WITHIN)
# Relative error (standard deviation) of each prior layer where it agrees with the network. Road: the
# ground plane is exact up to the pose (0.5% over the synthetic road at the mount pose) and road
# roughness; ground without a mask may be a kerb; vertical surfaces assume an upright face; inpainted
# holes carry the nearest estimate on (mostly the ground contact up an upright face) and count only where
# the network agrees (on the demo's day frames, sigma 0.05 there moved all-pixel AbsRel 0.205 -> 0.191,
# d1 0.549 -> 0.584 against leaving the holes to the network).
PRIOR_SIGMA = {SOURCE_ROAD: 0.005, SOURCE_GROUND: 0.01, SOURCE_VERTICAL: 0.03, SOURCE_INPAINTED: 0.05}
_PRECISION_LUT = np.zeros(256, dtype=np.float32)  # source code -> 1 / sigma_p^2 (0: not used)
_UNVERIFIED_LUT = np.zeros(256, dtype=np.float32)  # source code -> confidence of an unverified prior pixel
_GROUND_LUT = np.zeros(256, dtype=np.uint8)  # source code -> 1 for the ground plane's layers
_GROUND_LUT[[SOURCE_ROAD, SOURCE_GROUND]] = 1
for _code, _sigma in PRIOR_SIGMA.items():
    _PRECISION_LUT[_code] = 0.0 if not np.isfinite(_sigma) else 1.0 / _sigma ** 2
    _UNVERIFIED_LUT[_code] = CONFIDENCE[_code]


@dataclass
class FusionConfig:
    agreement: float = 0.15      # tau at the camera: relative disagreement beyond which the prior is ignored
    agreement_range_m: float = 20.0  # tau grows as (1 + prior depth / this): see fuse()
    scale_stride: int = 8        # grid of the local scale correction (local_scale); 0 = none
    scale_smoothing: float = 2.0  # its Gaussian smoothing, in grid samples
    scale_tolerance: float = 0.03  # |log ratio - its row's median| below which a sample agrees
    min_network_sigma: float = 0.03  # no network pixel is trusted more than this (relative error)
    beyond_ground: float = 4.0   # on ground pixels, a network farther than the prior agrees up to this x tau
    share_full: float = 0.6      # prior share agreeing with the fit from which tau0 is used as it is ...
    share_narrowest: float = 0.2  # ... and at or below which tau0 is narrowest_factor x itself
    narrowest_factor: float = 0.2


def agreement_for_share(config: FusionConfig, prior_share: float) -> FusionConfig:
    """config with tau0 and the local scale's tolerance narrowed for a frame where only ``prior_share``
    (0..1, ``Alignment.inlier_fraction``) of the trusted prior agreed with the fit: both times a factor
    linear from 1 at ``share_full`` down to ``narrowest_factor`` at ``share_narrowest``. NaN (no fit) narrows
    fully. The local scale narrows too because it is measured where the two agree: with the full tolerance
    the KITTI student's correction followed the cars' lower parts and moved everything above them (held-out
    published AbsRel 0.317, 0.305 narrowed; unfused 0.299)."""
    span = config.share_full - config.share_narrowest
    t = (prior_share - config.share_narrowest) / span if span > 0 else float(prior_share >= config.share_full)
    factor = float(np.clip(t if np.isfinite(t) else 0.0, config.narrowest_factor, 1.0))
    return replace(config, agreement=config.agreement * factor, scale_tolerance=config.scale_tolerance * factor) \
        if factor < 1.0 else config


def network_sigma(residual: float, inlier_fraction: float, config: FusionConfig = FusionConfig()) -> float:
    """Relative error (standard deviation) of the aligned network from its fit.

    residual: the fit's median relative error over the consensus (1.4826 x median |r| = sigma for a
    Gaussian); inlier_fraction: the share of the prior that agreed, below one half the sigma grows as
    1 / fraction (a fit few prior pixels vouch for is less certain everywhere). NaN residual -> 0.3.
    """
    if not np.isfinite(residual):
        return 0.3
    quality = float(np.clip(inlier_fraction / 0.5, 0.05, 1.0))
    return max(1.4826 * float(residual), config.min_network_sigma) / quality


_WINITZKI = 0.147  # erf(x)^2 ~ 1 - exp(-x^2 (4 / pi + a x^2) / (1 + a x^2)), within 1.3e-4 (Winitzki 2008)


def confidence_from_precision(precision: np.ndarray) -> np.ndarray:
    """P(|relative error| < WITHIN) (float32, same shape) of a Gaussian with precision 1 / sigma^2.

    erf(x) with x^2 = WITHIN^2 precision / 2, in closed form (no square root of the precision, no
    gather): a few passes over the frame instead of a float64 erf per pixel.
    """
    x2 = np.multiply(precision, np.float32(WITHIN ** 2 / 2.0), dtype=np.float32)
    ax2 = x2 * np.float32(_WINITZKI)
    t = ax2 + np.float32(4.0 / np.pi)
    ax2 += np.float32(1.0)
    t /= ax2
    t *= x2
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.subtract(np.float32(1.0), t, out=t)
    return np.sqrt(t, out=t)


def confidence_from_sigma(sigma):
    """P(|relative error| < WITHIN) of a Gaussian relative error with standard deviation sigma (any shape)."""
    with np.errstate(divide="ignore"):
        x = WITHIN / (np.sqrt(2.0) * np.asarray(sigma, dtype=np.float64))
    return np.vectorize(erf, otypes=[np.float64])(x).astype(np.float32)  # a few values: math.erf is exact


def agreement_weight(network: np.ndarray, prior: np.ndarray, config: FusionConfig,
                     ground: np.ndarray | None = None) -> np.ndarray:
    """g (same shape, float32) in [0, 1]: clip(2 (1 - (r / tau)^2), 0, 1), 0 where either is NaN.

    ground: optional bool (same shape), the prior pixels that are the ground plane. Nothing visible
    below the horizon lies beyond the ground (the ray meets the road first), so there a network that
    says farther than the prior is wrong about the road rather than seeing something else: its r is
    divided by ``config.beyond_ground`` (a car, nearer than the road behind it, keeps the full test).
    """
    net = np.asarray(network, dtype=np.float32)
    pri = np.asarray(prior, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        # r / tau with tau = tau0 (1 + d_p / range): (d_n - d_p) / (tau0 (d_p + d_p^2 / range)).
        tau = np.multiply(pri, np.float32(config.agreement / config.agreement_range_m))
        tau += np.float32(config.agreement)
        tau *= pri
        u = np.subtract(net, pri)
        u /= tau
        del tau
        if ground is not None and config.beyond_ground != 1.0:
            np.divide(u, np.float32(config.beyond_ground), out=u, where=ground & (u > 0))
        np.square(u, out=u)
        np.subtract(np.float32(1.0), u, out=u)
        u *= np.float32(2.0)
        np.fmax(u, np.float32(0.0), out=u)  # fmax, not maximum: NaN (either unknown) becomes 0
        np.minimum(u, np.float32(1.0), out=u)
    return u


def track_rows(L: np.ndarray, tolerance: float, min_share: float = 0.2) -> np.ndarray:
    """Bool (h, w): the samples of L (h, w) log ratios (NaN unknown) that follow the road's correction.

    From the bottom row (the nearest ground, correction 0 expected) upwards, a row's samples within
    ``tolerance`` of the current correction agree when they are at least ``min_share`` of the row's known
    samples (and 3); their median becomes the correction for the rows above. A correction that drifts
    with depth (a network compressing the far road) is followed; a jump (a car or a wall in front of
    the road, whose ratio differs from the road's around it) is not.
    """
    known = np.zeros(L.shape, dtype=bool)
    current = 0.0
    with np.errstate(invalid="ignore"):
        for v in range(L.shape[0] - 1, -1, -1):
            row = L[v]
            close = np.abs(row - current) < tolerance
            n, n_known = int(np.count_nonzero(close)), int(np.count_nonzero(~np.isnan(row)))
            if n >= 3 and n >= min_share * n_known:
                known[v] = close
                current = float(np.median(row[close]))
    return known


def local_scale(network: np.ndarray, prior: np.ndarray, config: FusionConfig,
                source: np.ndarray | None = None) -> np.ndarray | None:
    """Per-pixel correction factor (H, W) float32 of the network from where it agrees with the prior.

    The global fit leaves a depth-dependent error (a small network compresses far depths: the demo
    student says 0.51x beyond 45 m on the road, and the cars and walls standing on that road share the
    compression). On a grid every ``config.scale_stride`` pixels, L = log(d_p / d_n) where the two agree
    (``agreement_weight`` >= 0.5); an image row of the prior is (without roll) one ground depth, so the
    correction is a function of the row. It changes gradually with
    depth, and the samples within ``config.scale_tolerance`` of it are the ones that agree (a car in
    front of the road has another ratio, a good network has L = 0 on the road and is left alone). Their
    L is carried to every sample from the nearest agreeing one (a distance transform), smoothed and
    interpolated back to full size, so a wall gets the correction of the road it stands on. None when
    nothing agrees. source (H, W) uint8, optional: the prior's SOURCE_* codes; inpainted samples are
    left out (the correction is measured on the prior's own layers, then carried to the holes).
    """
    import cv2

    from .prior.scene import inpaint_samples

    H, W = network.shape
    step = config.scale_stride
    rows, cols = inpaint_samples(H, W, step)
    net_s = np.asarray(network[np.ix_(rows, cols)], dtype=np.float32)
    pri_s = np.asarray(prior[np.ix_(rows, cols)], dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        L = np.log(pri_s / net_s)
        L[~np.isfinite(L) | ~(agreement_weight(net_s, pri_s, config) >= 0.5)] = np.nan
    if source is not None:
        L[source[np.ix_(rows, cols)] == SOURCE_INPAINTED] = np.nan
    known = track_rows(L, config.scale_tolerance)
    if not known.any():
        return None
    k = np.where(known, L, np.float32(0.0)).astype(np.float32)
    _, labels = cv2.distanceTransformWithLabels((~known).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    by_label = np.zeros(int(labels.max()) + 1, dtype=np.float32)
    by_label[labels[known]] = k[known]
    filled = np.exp(cv2.GaussianBlur(by_label[labels], (0, 0), config.scale_smoothing))
    return cv2.resize(filled, (len(cols) * step, len(rows) * step), interpolation=cv2.INTER_LINEAR)[:H, :W]


def fuse(network: np.ndarray, prior: np.ndarray, source: np.ndarray, sigma_n: float,
         config: FusionConfig = FusionConfig(), prior_share: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Fuse aligned network depth with the prior.

    network: float32 (H, W) metres, NaN unknown (already in the published depth range);
    prior: float32 (H, W) metres, NaN unknown (in range); source: uint8 (H, W) SOURCE_* codes of the prior;
    sigma_n: the network's relative sigma (``network_sigma``); prior_share: the share of the trusted prior
    that agreed with the fit (``Alignment.inlier_fraction``; narrows the agreement, ``agreement_for_share``).
    Returns (depth float32 (H, W), NaN where neither knows; confidence float32 (H, W) in [0, 1]).
    """
    import cv2

    config = agreement_for_share(config, prior_share)
    net = np.asarray(network, dtype=np.float32)
    pri = np.asarray(prior, dtype=np.float32)
    w_n = np.float32(1.0 / sigma_n ** 2)
    if config.scale_stride:
        scale = local_scale(net, pri, config, source)
        if scale is not None:
            net = net * scale
    u = agreement_weight(net, pri, config, cv2.LUT(source, _GROUND_LUT).view(bool))  # 0 where either is NaN
    u *= cv2.LUT(source, _PRECISION_LUT)
    no_prior = np.isnan(pri)
    with np.errstate(invalid="ignore", divide="ignore"):
        # fused = d_n + w_p (d_p - d_n) / (w_n + w_p): where w_p is 0 this is d_n (NaN stays NaN).
        total = u + w_n
        depth = np.subtract(pri, net)
        np.copyto(depth, np.float32(0.0), where=no_prior)  # no prior: the network
        depth *= u
        depth /= total
        depth += net
    confidence = confidence_from_precision(total)
    missing = np.isnan(net)
    if missing.any():  # no network depth: the prior, unverified
        np.copyto(depth, pri, where=missing)
        np.copyto(confidence, cv2.LUT(source, _UNVERIFIED_LUT), where=missing)
        np.copyto(confidence, np.float32(0.0), where=missing & no_prior)
    return depth, confidence


def network_confidence(network: np.ndarray, sigma_n: float) -> np.ndarray:
    """Confidence (H, W) float32 of the unfused network depth: one value where it has depth, 0 elsewhere."""
    value = np.float32(erf(WITHIN / (sqrt(2.0) * sigma_n)))
    return np.where(np.isnan(network), np.float32(0.0), value)


def prior_confidence(prior_depth: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Confidence (H, W) float32 of the prior published alone: its layer's confidence, 0 where NaN."""
    import cv2

    conf = cv2.LUT(source, _UNVERIFIED_LUT)
    conf[np.isnan(prior_depth)] = 0.0
    return conf
