"""DepthPipeline: one frame in (image, camera, pose), metric depth out, with per-stage timings.

The live node and offline replay both call :meth:`DepthPipeline.process`, so a number measured
offline is the number the vehicle gets. A network that throws on a frame never stops the output: the
frame falls back to the metric scene prior and the error is reported beside it. A frame whose image
would make a network input beyond the card's bounds is refused (FrameError, reason
"network_input_rejected"). An optional road segmenter (run every N-th frame) gives the scene prior its
road mask when the caller has none. Results that are wrong without an error say so in ``problem``:
"empty_output" (no valid pixel published) or "no_agreement" (the prediction disagrees with the prior).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .align import AlignConfig, Alignment, ScaleFilter, align_to_prior, apply_model
from .depth_range import check_depth_range
from .ground_pose import GridRays, PoseFilter, PoseOffsets, PoseRefineConfig, measure_offsets, offset_pose
from .fusion import FUSION_MODES, fuse, network_confidence, network_sigma, prior_confidence
from .geometry.camera import PinholeCamera
from .models.base import DepthBackend, NetworkInputRejected, Prediction
from .prior.cache import ScenePriorCache
from .prior.scene import SOURCE_ROAD, ScenePrior


PROBLEMS = ("empty_output", "no_agreement")


class FrameError(ValueError):
    """This frame cannot be processed (size mismatch, bad pose...): one sentence, the stream goes on.
    ``reason`` is the drop counter it belongs to."""

    def __init__(self, message: str, reason: str = "bad_frame"):
        super().__init__(message)
        self.reason = reason


@dataclass
class PipelineConfig:
    """The core's settings; the node parameters (depth_prior_ros.parameters) carry the same defaults."""

    min_depth: float = 0.5
    max_depth: float = 80.0
    prior_mode: str = "scene"       # road | ground | scene
    inpaint: bool = True            # fill the prior's holes from the nearest estimate (prior_only; with a network, fusion)
    align: AlignConfig = field(default_factory=AlignConfig)
    temporal_filter: bool = True
    filter_alpha: float = 0.3
    filter_gate: float = 0.25
    filter_reset_after: int = 5
    filter_window: int = 3
    fusion: str = "confidence"      # off | confidence (fusion.py): the network's depth fused with the prior
    pose_refinement: bool = True    # per-frame pitch / roll (/ height) to the road from the network (ground_pose.py)
    pose: PoseRefineConfig = field(default_factory=PoseRefineConfig)

    def __post_init__(self) -> None:
        check_depth_range(self.min_depth, self.max_depth)
        if self.fusion not in FUSION_MODES:
            raise ValueError(f"fusion '{self.fusion}' is not one of {', '.join(FUSION_MODES)}")
        self.align.min_depth, self.align.max_depth = self.min_depth, self.max_depth


@dataclass
class DepthResult:
    """depth: float32 (H, W) metres, NaN unknown. source: "network" or "prior"
    (with ``fusion`` "confidence" a network depth is fused with the prior: ``fused`` True).
    confidence: float32 (H, W) in [0, 1], P(depth within 10%) as fusion.py models it (None: not made).

    With source "prior" the depth array may be shared with later frames: treat it as read-only.
    """

    depth: np.ndarray
    prior: ScenePrior
    alignment: Alignment | None
    prediction: Prediction | None
    timings_ms: dict[str, float]
    source: str
    backend_error: str | None = None
    road_mask: np.ndarray | None = None  # bool (H, W): the mask the prior used (given or segmented)
    problem: str | None = None           # one of PROBLEMS, or None
    confidence: np.ndarray | None = None
    fused: bool = False
    pose_offsets: PoseOffsets | None = None  # the refined pose's offsets from the given one (None: not refined)


class DepthPipeline:
    """``backend`` None means no network: the published depth is the scene prior itself. ``segmenter``
    (models.segmentation) makes the road mask every ``segmentation_every``-th frame when none is given."""

    def __init__(self, backend: DepthBackend | None = None, config: PipelineConfig | None = None,
                 segmenter=None, segmentation_every: int = 1):
        from .models.segmentation import SegmentationSchedule

        self.backend = backend
        self.config = config or PipelineConfig()
        self.segmentation = None if segmenter is None else SegmentationSchedule(segmenter, segmentation_every)
        self.reset()
        self.backend_failures = 0

    @property
    def has_network(self) -> bool:
        return self.backend is not None

    def reset(self) -> None:
        """Forget all state from earlier frames (new sequence, camera re-mounted)."""
        cfg = self.config
        self.filter = ScaleFilter(cfg.filter_alpha, cfg.filter_gate, cfg.filter_reset_after, cfg.filter_window)
        self.priors = ScenePriorCache(cfg.prior_mode, cfg.min_depth, cfg.max_depth)
        self.pose_filter = PoseFilter(cfg.pose)
        self.pose_rays = GridRays()
        if self.segmentation is not None:
            self.segmentation.reset()

    def process(self, image: np.ndarray, camera: PinholeCamera, T_ground_from_camera: np.ndarray,
                road_mask: np.ndarray | None = None) -> DepthResult:
        """image: uint8 RGB (H, W, 3) matching camera size -> DepthResult."""
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != (camera.height, camera.width):
            raise FrameError(f"image is {image.shape[1] if image.ndim > 1 else '?'}x{image.shape[0]} "
                             f"but camera_info says {camera.width}x{camera.height}")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if road_mask is None and self.segmentation is not None:
            road_mask = self.segmentation.road_mask(image)
            timings["segmentation"] = (time.perf_counter() - t0) * 1e3
        refine = self.config.pose_refinement and self.has_network
        try:
            # With pose refinement the prior starts at the last frame's refined pose (_refine_pose reuses it).
            T_start = offset_pose(T_ground_from_camera, self.pose_filter.offsets()) if refine else T_ground_from_camera
            prior = self.priors.prior(camera, T_start, road_mask, inpaint=self.config.inpaint and not self.has_network)
        except ValueError as exc:  # bad pose or mask: this frame only
            raise FrameError(str(exc)) from exc
        t1 = time.perf_counter()
        timings["prior"] = (t1 - t0) * 1e3

        prediction, error = None, None
        if self.has_network:
            try:
                prediction = self.backend.predict(image)
                if prediction is not None and prediction.values.shape != image.shape[:2]:
                    raise ValueError(f"backend returned {prediction.values.shape} for a {image.shape[:2]} image")
            except NetworkInputRejected as exc:  # this image, not the network: drop the frame
                raise FrameError(str(exc), reason="network_input_rejected") from exc
            except Exception as exc:  # noqa: BLE001 - any network failure degrades to the prior
                prediction, error = None, f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
                self.backend_failures += 1
        t2 = time.perf_counter()
        timings["network"] = (t2 - t1) * 1e3

        alignment, offsets = None, None
        depth, source = prior.depth, "prior"
        if prediction is not None:
            if refine:
                prior, offsets = self._refine_pose(prediction, camera, T_ground_from_camera, road_mask)
                T_start = offset_pose(T_ground_from_camera, offsets)
            alignment = self._align(prediction, prior, road_mask)
            if alignment.depth is not None:
                depth, source = alignment.depth, "network"
            elif error is None:
                error = f"alignment failed: {alignment.message}"
        t3 = time.perf_counter()
        timings["align"] = (t3 - t2) * 1e3
        fused = False
        if source == "prior":
            depth = self.priors.depth_in_range(prior)
            confidence = prior_confidence(depth, prior.source)
        else:
            sigma = network_sigma(alignment.residual, alignment.inlier_fraction)
            # A fit the prior does not vouch for is published as it is (and flagged): nothing to fuse by.
            if self.config.fusion == "confidence" and alignment.ok:
                # The fusion reads the prior with its holes inpainted (the aligner does not): where the network
                # agrees with an inpainted depth, that depth is the upright surface the network also sees.
                if self.config.inpaint:
                    prior = self.priors.prior(camera, T_start, road_mask, inpaint=True)
                # Without a road mask the share of the prior that agreed says how much of what it calls ground
                # is ground, and narrows the agreement (fusion.agreement_for_share); with one it is the road.
                share = alignment.inlier_fraction if road_mask is None else 1.0
                depth, confidence = fuse(depth, self.priors.depth_in_range(prior), prior.source, sigma,
                                         prior_share=share)
                fused = True
            else:
                confidence = network_confidence(depth, sigma)
        t4 = time.perf_counter()
        timings["fusion"] = (t4 - t3) * 1e3
        timings["total"] = (t4 - t0) * 1e3
        return DepthResult(depth, prior, alignment, prediction, timings, source, error, road_mask,
                           output_problem(depth, alignment, self.config.align.min_samples), confidence, fused, offsets)

    def _refine_pose(self, prediction: Prediction, camera: PinholeCamera, T_mount: np.ndarray,
                     road_mask: np.ndarray | None) -> tuple[ScenePrior, PoseOffsets]:
        """Measure this frame's pose offsets (ground_pose.py) against the prior of the last frame's refined
        pose (kept by the prior cache), filter them, and return the prior of the refined pose."""
        cfg = self.config
        T_reference = offset_pose(T_mount, self.pose_filter.offsets())
        prior = self.priors.prior(camera, T_reference, road_mask, inpaint=False)
        trust = trusted_confidence(prior, road_mask)
        fit = align_to_prior(prediction.values, prediction.kind, prior.depth, trust, prediction.valid, cfg.align,
                             compute_depth=False)
        if prediction.kind == "affine_disparity":  # the stream's filtered (a, b): the shift cannot absorb the pitch
            params = self.filter.params()
        else:
            params = (1.0, 0.0) if prediction.kind == "metric_depth" else fit.frame_params
        measured = None
        if fit.ok and params is not None:
            measured = measure_offsets(prediction.kind, params, prediction.values, prior.depth, trust, camera,
                                       T_reference, T_mount, self.pose_rays, cfg.pose)
        offsets = self.pose_filter.update(measured)
        prior = self.priors.prior(camera, offset_pose(T_mount, offsets), road_mask, inpaint=False)
        return prior, offsets

    def _align(self, prediction: Prediction, prior: ScenePrior, road_mask: np.ndarray | None) -> Alignment:
        """Fit this frame; for streams, publish with the temporally filtered params instead."""
        cfg = self.config
        use_filter = cfg.temporal_filter and prediction.kind != "metric_depth"
        fit = align_to_prior(prediction.values, prediction.kind, prior.depth, trusted_confidence(prior, road_mask),
                             prediction.valid, cfg.align, compute_depth=not use_filter)
        if not use_filter:
            return fit
        params = self.filter.update(fit.frame_params if fit.ok else None, weight=fit.inlier_fraction)
        if params is not None:
            fit.depth = apply_model(prediction.kind, prediction.values, params, cfg.min_depth, cfg.max_depth)
            fit.params = (float(params[0]), float(params[1]))
        return fit



def trusted_confidence(prior: ScenePrior, road_mask: np.ndarray | None) -> np.ndarray:
    """(H, W) alignment weights: with a road mask only the road pixels count (the vertical surfaces
    above them are a guess that lets an affine fit trade scale for shift: PyDNet's fitted scale on the first
    12 KITTI raw frames spans 0.1-1.6 with them, 2.3-2.8 without), else every layer by its confidence."""
    if road_mask is None:
        return prior.confidence
    return np.where(prior.source == SOURCE_ROAD, prior.confidence, np.float32(0.0))


def output_problem(depth: np.ndarray, alignment: Alignment | None, min_samples: int) -> str | None:
    """"empty_output" when ``depth`` (H, W) has no finite pixel; "no_agreement" when the prediction
    was compared with enough prior pixels and too few agree (the fit is not ok); else None."""
    if not np.isfinite(depth[::8, ::8]).any() and not np.isfinite(depth).any():
        return "empty_output"
    if alignment is not None and not alignment.ok and alignment.n_samples >= min_samples:
        return "no_agreement"
    return None
