"""Fuzzing the functional core (hypothesis): poses into ground_depth / scene_prior / the pipeline,
predictions into align_to_prior and the pipeline.

Properties, for every input: either a result, or one of the core's own exceptions (PoseError,
CameraModelError, AlignmentError, FrameError: all ValueError) whose message is one clear sentence;
never another exception type; no output depth is negative or infinite, and published depth stays in
[min_depth, max_depth]. Examples are bounded (max_examples) so the suite stays fast on 2 cores.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers_errors import assert_one_sentence

from depth_prior_ros.align import ALIGN_KINDS, AlignConfig, AlignmentError, ScaleFilter, align_to_prior
from depth_prior_ros.geometry import PinholeCamera, pose_from_static
from depth_prior_ros.geometry.extrinsics import rotation_xyz
from depth_prior_ros.models.base import BackendBase, Prediction
from depth_prior_ros.pipeline import DepthPipeline, FrameError, PipelineConfig
from depth_prior_ros.prior import ground_depth, scene_prior
from depth_prior_ros.prior.scene import PRIOR_MODES

W, H = 48, 32
K = np.array([[40.0, 0.0, 23.5], [0.0, 40.0, 15.5], [0.0, 0.0, 1.0]])
CAMERA = PinholeCamera(K, W, H)
DISTORTED = PinholeCamera(K, W, H, np.array([-0.2, 0.05, 0.001, -0.001, 0.0]))
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_depth_sane(depth: np.ndarray, shape, lo: float = 0.0, hi: float = math.inf) -> None:
    """NaN (unknown) or finite, positive and within [lo, hi]: never negative, never infinite."""
    assert depth.shape == shape and depth.dtype == np.float32
    known = depth[~np.isnan(depth)]
    assert np.all(np.isfinite(known)), "infinite depth"
    assert np.all(known > 0), "zero or negative depth"
    assert np.all(known >= lo - 1e-4) and np.all(known <= hi + 1e-3), (known.min(), known.max(), lo, hi)


# ------------------------------------------------------------------------------------------ poses
angles = st.one_of(st.sampled_from([-90.0, 90.0, -180.0, 180.0, 0.0, 89.999, -89.999, 45.0]),
                   st.floats(-180.0, 180.0, allow_nan=False))
heights = st.one_of(st.sampled_from([0.0, -0.0, -1.5, 1e-9, 1e-50, 5e-324, 1.5, 1e6]),
                    st.floats(-5.0, 50.0, allow_nan=False))


@st.composite
def poses(draw):
    """4x4 T_ground_from_camera: static parameters (incl. pitch +-90, looking up, height <= 0), a few
    non-finite or non-rigid matrices."""
    kind = draw(st.sampled_from(["static", "static", "static", "nan", "scaled", "reflection"]))
    T = pose_from_static(draw(heights), math.radians(draw(angles)), math.radians(draw(angles)),
                         math.radians(draw(angles)))
    if kind == "nan":
        T = T.copy()
        T[draw(st.integers(0, 2)), draw(st.integers(0, 3))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    elif kind == "scaled":
        T = T.copy()
        T[:3, :3] *= draw(st.sampled_from([0.0, 0.5, 2.0]))
    elif kind == "reflection":
        T = T.copy()
        T[:3, 0] *= -1
    return T


def check_ground(fn, *args, **kwargs):
    from depth_prior_ros.geometry import PoseError

    try:
        return fn(*args, **kwargs)
    except PoseError as exc:
        assert_one_sentence(exc)
        return None


@FUZZ
@given(T=poses(), max_depth=st.sampled_from([None, 80.0, 5.0, 1e-3]), distorted=st.booleans())
def test_ground_depth_never_negative_or_infinite(T, max_depth, distorted):
    cam = DISTORTED if distorted else CAMERA
    depth = check_ground(ground_depth, cam.K, W, H, T, max_depth=max_depth, D=cam.D if distorted else None)
    if depth is not None:
        assert_depth_sane(depth, (H, W), hi=max_depth if max_depth is not None else math.inf)
        if 1e-3 < T[2, 3] < 1e3 and max_depth is None:
            # A camera above the road sees ground exactly on the rays pointing down (up to float32
            # overflow of rays grazing the horizon).
            dz = (cam.pixel_rays() @ T[:3, :3].T)[..., 2]
            assert np.mean(np.isfinite(depth) == (dz < 0)) > 0.99


@FUZZ
@given(T=poses(), mode=st.sampled_from(PRIOR_MODES), inpaint=st.booleans(),
       mask_kind=st.sampled_from(["none", "random", "empty", "full", "lower_half"]), seed=st.integers(0, 2 ** 16))
def test_scene_prior_never_negative_or_infinite(T, mode, inpaint, mask_kind, seed):
    rng = np.random.default_rng(seed)
    mask = {"none": None, "random": rng.random((H, W)) > 0.5, "empty": np.zeros((H, W), bool),
            "full": np.ones((H, W), bool), "lower_half": np.arange(H)[:, None].repeat(W, 1) > H // 2}[mask_kind]
    prior = check_ground(scene_prior, CAMERA, T, mask, mode=mode, max_depth=80.0, inpaint=inpaint)
    if prior is not None:
        assert_depth_sane(prior.depth, (H, W), hi=80.0)
        assert prior.confidence.shape == (H, W) and np.all((prior.confidence >= 0) & (prior.confidence <= 1))
        assert np.all(np.isnan(prior.depth) == (prior.source == 0))


@FUZZ
@given(T=poses(), inpaint=st.booleans(), mode=st.sampled_from(PRIOR_MODES))
def test_pipeline_prior_only_rejects_bad_poses_with_one_sentence(T, inpaint, mode):
    pipe = DepthPipeline(None, PipelineConfig(min_depth=0.5, max_depth=60.0, prior_mode=mode, inpaint=inpaint))
    try:
        result = pipe.process(np.zeros((H, W, 3), np.uint8), CAMERA, T)
    except FrameError as exc:
        assert_one_sentence(exc)
        return
    assert_depth_sane(result.depth, (H, W), lo=0.5, hi=60.0)
    assert result.source == "prior"


# ------------------------------------------------------------------------------------ predictions
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e-38, 1e-45, 1e38, 3.4e38, -3.4e38, 1.0]


@st.composite
def predictions(draw, shape=(H, W)):
    """float32 (H, W): constant, all-NaN, random with special values sprinkled in, negative, tiny, huge."""
    kind = draw(st.sampled_from(["constant", "random", "sprinkled", "negative", "tiny", "huge", "ramp"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    if kind == "constant":
        return np.full(shape, draw(st.sampled_from(SPECIALS)), np.float32)
    base = rng.random(shape).astype(np.float32) + 0.01
    if kind == "negative":
        base = -base
    elif kind == "tiny":
        base *= np.float32(1e-30)
    elif kind == "huge":
        base *= np.float32(1e30)
    elif kind == "ramp":
        base = np.linspace(0.0, 1.0, shape[0] * shape[1], dtype=np.float32).reshape(shape)
    if kind in ("sprinkled", "random") or draw(st.booleans()):
        n = draw(st.integers(0, base.size))
        idx = rng.choice(base.size, n, replace=False)
        base.ravel()[idx] = rng.choice(np.array(SPECIALS, np.float32), n)
    return base


PRIOR = scene_prior(CAMERA, pose_from_static(1.5, math.radians(10.0)), None, mode="ground", max_depth=80.0)


@FUZZ
@given(pred=predictions(), kind=st.sampled_from(ALIGN_KINDS), use_conf=st.booleans(),
       min_samples=st.sampled_from([1, 2, 50]))
def test_align_to_prior_output_is_never_negative_or_infinite(pred, kind, use_conf, min_samples):
    config = AlignConfig(min_depth=0.5, max_depth=80.0, min_samples=min_samples, max_samples=500)
    fit = align_to_prior(pred, kind, PRIOR.depth, PRIOR.confidence if use_conf else None, config=config)
    assert fit.kind == kind
    assert fit.message == "" or "\n" not in fit.message
    if fit.depth is not None:
        assert_depth_sane(fit.depth, (H, W), lo=0.5, hi=80.0)
    if fit.ok:
        assert all(math.isfinite(v) for v in fit.params)


@FUZZ
@given(pred=predictions(), kind=st.sampled_from(list(ALIGN_KINDS) + ["metric", "", "disparity"]),
       shape=st.sampled_from([(H, W), (H, W + 1), (W, H), (H * W,), (1, H, W)]))
def test_align_to_prior_rejects_bad_calls_with_one_sentence(pred, kind, shape):
    values = np.resize(pred, shape)
    try:
        align_to_prior(values, kind, PRIOR.depth)
    except AlignmentError as exc:
        assert_one_sentence(exc)
        assert kind not in ALIGN_KINDS or shape != (H, W)
    else:
        assert kind in ALIGN_KINDS and shape == (H, W)


def test_degenerate_predictions_do_not_warn():
    """A constant or all-NaN prediction (a dead network) is a failed fit, not a flood of RuntimeWarnings
    in the node's log (regression: align.hypotheses computed the shift outside its errstate block)."""
    for value in (0.5, 0.0, np.nan):
        pred = np.full((H, W), value, np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            fit = align_to_prior(pred, "affine_disparity", PRIOR.depth, PRIOR.confidence)
        assert not fit.ok and fit.message


@FUZZ
@given(params=st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True, width=32),
                                 st.floats(allow_nan=True, allow_infinity=True, width=32)) | st.none(),
                       min_size=1, max_size=20),
       weight=st.floats(-1.0, 2.0))
def test_scale_filter_only_ever_holds_finite_positive_scales(params, weight):
    f = ScaleFilter()
    for p in params:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # log(huge) is fine; what comes out matters
            out = f.update(p, weight=weight)
        if out is not None:
            assert math.isfinite(out[0]) and out[0] > 0 and math.isfinite(out[1])


class GarbageNetwork(BackendBase):
    """Test double for a network gone wrong: returns the given array as its prediction, whatever the image."""

    name = "garbage"

    def __init__(self, values, kind):
        self.values, self.output_kind = values, kind

    def predict(self, image):
        if isinstance(self.values, Exception):
            raise self.values
        return Prediction(self.values, self.output_kind)


@FUZZ
@given(pred=predictions(), kind=st.sampled_from(ALIGN_KINDS), frames=st.integers(1, 3), filt=st.booleans())
def test_pipeline_with_garbage_predictions_publishes_sane_depth(pred, kind, frames, filt):
    pipe = DepthPipeline(GarbageNetwork(pred, kind),
                         PipelineConfig(min_depth=0.5, max_depth=60.0, temporal_filter=filt))
    T = pose_from_static(1.5, math.radians(8.0))
    for _ in range(frames):
        result = pipe.process(np.zeros((H, W, 3), np.uint8), CAMERA, T)
        assert_depth_sane(result.depth, (H, W), lo=0.5, hi=60.0)
        assert result.source in ("network", "prior")
        if result.backend_error:
            assert "\n" not in result.backend_error


@pytest.mark.parametrize("values", [np.zeros((H, W + 3), np.float32), np.zeros((H,), np.float32),
                                    RuntimeError("CUDA error: an illegal memory access\nsecond line")])
def test_pipeline_falls_back_to_the_prior_when_the_network_misbehaves(values):
    pipe = DepthPipeline(GarbageNetwork(values, "affine_disparity"), PipelineConfig(max_depth=60.0))
    result = pipe.process(np.zeros((H, W, 3), np.uint8), CAMERA, pose_from_static(1.5, math.radians(8.0)))
    assert result.source == "prior" and result.backend_error
    assert "\n" not in result.backend_error  # regression: a multi-line CUDA error became a multi-line log
    assert_depth_sane(result.depth, (H, W), lo=0.5, hi=60.0)


# Sub-micro values (e.g. fy = 1e-114 px) are left to the explicit test below, which documents what they do.
finite_or_not = st.one_of(st.floats(-1e4, 1e4).filter(lambda v: v == 0 or abs(v) >= 1e-6),
                          st.sampled_from([0.0, -1.0, 1e-12, 1e12, np.nan, np.inf, -np.inf]))


@FUZZ
@given(fx=finite_or_not, fy=finite_or_not, cx=finite_or_not, cy=finite_or_not, skew=st.sampled_from([0.0, 0.0, 3.0]),
       width=st.integers(-2, 40), height=st.integers(-2, 40),
       d=st.lists(st.floats(-1.0, 1.0), max_size=9) | st.just([np.nan] * 5),
       pitch=st.floats(-30.0, 30.0), inpaint=st.booleans(), mode=st.sampled_from(PRIOR_MODES))
def test_any_intrinsics_give_a_sane_prior_or_one_sentence(fx, fy, cx, cy, skew, width, height, d, pitch, inpaint,
                                                          mode):
    from depth_prior_ros.geometry import CameraModelError

    try:
        cam = PinholeCamera.from_camera_info_fields([fx, skew, cx, 0.0, fy, cy, 0.0, 0.0, 1.0], d, width, height)
    except CameraModelError as exc:
        assert_one_sentence(exc)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # extreme focal lengths overflow; outputs are checked
        prior = scene_prior(cam, pose_from_static(1.5, math.radians(pitch)), None, mode=mode, max_depth=80.0,
                            inpaint=inpaint)
        result = DepthPipeline(None, PipelineConfig(inpaint=inpaint)).process(
            np.zeros((cam.height, cam.width, 3), np.uint8), cam, pose_from_static(1.5, math.radians(pitch)))
    assert_depth_sane(prior.depth, (cam.height, cam.width), hi=80.0)
    assert_depth_sane(result.depth, (cam.height, cam.width), lo=0.5, hi=80.0)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 9, 13, 20])
def test_distortion_of_a_length_opencv_cannot_use_is_rejected_up_front(n):
    """Regression (found by the intrinsics fuzz): a camera_info with e.g. 3 coefficients was accepted and
    every frame then died inside cv2.undistortPoints with cv2.error (a frame 'error' in the node)."""
    from depth_prior_ros.geometry import CameraModelError

    with pytest.raises(CameraModelError) as info:
        PinholeCamera(K, W, H, np.full(n, 0.01))
    assert_one_sentence(info.value)
    PinholeCamera(K, W, H, np.zeros(n))  # all-zero D of any length is "no distortion": fine


@pytest.mark.parametrize("n", [4, 5, 8, 12, 14])
def test_distortion_lengths_opencv_accepts_still_work(n):
    cam = PinholeCamera(K, W, H, np.full(n, 0.001))
    assert np.all(np.isfinite(cam.pixel_rays()))


def test_inpainting_never_fills_zero_depth():
    """Found by the pose fuzz: next to sub-normal depths 1/depth overflowed to inf and the inpainted inverse
    depth came back as depth 0 (fixed: inpainted values must be > 0). Such depths no longer come out of
    ground_depth (tiny heights are refused), so the layer is fed a ground map mixing them directly."""
    ground = np.full((H, W), np.nan, np.float32)
    ground[H // 2:] = np.where(np.random.default_rng(1).random((H - H // 2, W)) > 0.5, 1e-38, 1e-40)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        prior = scene_prior(CAMERA, pose_from_static(1.5, 0.0), rng.random((H, W)) > 0.5, mode="road",
                            max_depth=80.0, inpaint=True, ground=ground)
    assert_depth_sane(prior.depth, (H, W), hi=80.0)


@pytest.mark.parametrize("height", [1e-50, 1e-300, 5e-324])
def test_a_camera_a_hair_above_the_road_never_gets_zero_depth(height):
    """Regression: after ground_depth went float32, -h/dz underflowed to 0 for sub-normal heights and the
    prior said 0 m everywhere. Such a pose is now refused like height <= 0."""
    from depth_prior_ros.geometry import PoseError

    T = pose_from_static(height, math.radians(30.0))
    with pytest.raises(PoseError) as info:
        ground_depth(K, W, H, T, max_depth=80.0)
    assert_one_sentence(info.value)


@pytest.mark.parametrize("fy, cy", [(6.753646254955044e-114, 0.0), (1.0, -1e46)])
def test_absurd_intrinsics_never_give_zero_depth(fy, cy):
    from depth_prior_ros.geometry import CameraModelError

    try:
        cam = PinholeCamera(np.array([[1.0, 0.0, 0.0], [0.0, fy, cy], [0.0, 0.0, 1.0]]), 1, 2)
    except CameraModelError as exc:  # refusing such a camera is a fine outcome too
        assert_one_sentence(exc)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        depth = ground_depth(cam.K, cam.width, cam.height, pose_from_static(1.5, 0.0), max_depth=80.0)
    assert_depth_sane(depth, (2, 1), hi=80.0)
