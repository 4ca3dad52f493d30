"""Confidence fusion (issue #12 item 1): exact synthetic cases of fusion.py and the pipeline's contract."""
from __future__ import annotations

import math

import numpy as np
import pytest

from depth_prior_ros.fusion import (FusionConfig, agreement_for_share, agreement_weight, confidence_from_sigma, fuse,
                                    local_scale, network_sigma)
from depth_prior_ros.prior.scene import SOURCE_GROUND, SOURCE_INPAINTED, SOURCE_NONE, SOURCE_ROAD, SOURCE_VERTICAL

NO_SCALE = FusionConfig(scale_stride=0)


def test_agreement_weight_is_one_inside_falls_to_zero_at_tau_and_widens_with_depth():
    cfg = FusionConfig(agreement=0.15, agreement_range_m=20.0)
    prior = np.array([10.0, 10.0, 10.0, 10.0, 60.0, np.nan], dtype=np.float32)
    tau10 = 0.15 * (1 + 10 / 20)  # 0.225 at 10 m
    net = np.array([10.0, 10.0 * (1 + 0.7 * tau10), 10.0 * (1 + math.sqrt(0.75) * tau10), 10.0 * (1 + tau10),
                    60.0 * 0.5, 10.0], dtype=np.float32)
    g = agreement_weight(net, prior, cfg)
    np.testing.assert_allclose(g[:5], [1.0, 1.0, 0.5, 0.0, 2 * (1 - (0.5 / 0.6) ** 2)], atol=2e-3)  # 60 m: tau 0.6
    assert g[5] == 0.0


def test_fuse_is_the_precision_weighted_mean_where_they_agree_and_the_network_elsewhere():
    net = np.array([[10.0, 10.0, 5.0, np.nan, 7.0]], dtype=np.float32)
    prior = np.array([[10.2, 10.2, 10.0, 8.0, np.nan]], dtype=np.float32)
    source = np.array([[SOURCE_ROAD, SOURCE_GROUND, SOURCE_ROAD, SOURCE_GROUND, SOURCE_NONE]], dtype=np.uint8)
    sigma_n = 0.05
    depth, conf = fuse(net, prior, source, sigma_n, NO_SCALE)
    w_n = 1 / sigma_n ** 2
    for i, sigma_p in ((0, 0.005), (1, 0.01)):  # r = 0.02: full agreement weight
        w_p = 1 / sigma_p ** 2
        assert depth[0, i] == pytest.approx((w_n * 10.0 + w_p * 10.2) / (w_n + w_p), rel=1e-6)
        assert conf[0, i] == pytest.approx(math.erf(0.1 * math.sqrt(w_n + w_p) / math.sqrt(2)), abs=1e-3)
    assert depth[0, 2] == 5.0  # a car in front of the road: the network alone
    assert conf[0, 2] == pytest.approx(math.erf(0.1 / (math.sqrt(2) * sigma_n)), abs=1e-3)
    assert depth[0, 3] == 8.0 and conf[0, 3] == pytest.approx(0.6)  # no network: the prior, unverified
    assert depth[0, 4] == 7.0  # no prior: the network
    assert np.all((conf >= 0) & (conf <= 1))


def test_the_agreement_window_narrows_when_little_of_the_prior_agreed_with_the_fit():
    cfg = FusionConfig()  # tau0 0.15, full from a share of 0.6, 0.2 x at 0.2 and below
    assert agreement_for_share(cfg, 0.73) is cfg and agreement_for_share(cfg, 0.6) is cfg
    half = agreement_for_share(cfg, 0.4)
    assert half.agreement == pytest.approx(0.15 * 0.5) and half.scale_tolerance == pytest.approx(0.03 * 0.5)
    assert half.agreement_range_m == cfg.agreement_range_m and half.beyond_ground == cfg.beyond_ground
    for share in (0.2, 0.05, float("nan")):
        narrowest = agreement_for_share(cfg, share)
        assert narrowest.agreement == pytest.approx(0.15 * 0.2) and narrowest.scale_tolerance == pytest.approx(0.006)
    # The lower part of a car 20% nearer than the 10 m of road behind it: inside the full window (tau 0.225,
    # r = 0.89 tau, weight 0.42) it is pulled most of the way to the road; on a frame where only 38% of the
    # prior agreed (tau0 x 0.45) it keeps the network, while a road pixel 2% off still takes the prior.
    net = np.array([[8.0, 10.2]], dtype=np.float32)
    prior = np.full((1, 2), 10.0, dtype=np.float32)
    source = np.full((1, 2), SOURCE_GROUND, dtype=np.uint8)
    full, _ = fuse(net, prior, source, 0.05, NO_SCALE, prior_share=0.73)
    narrow, _ = fuse(net, prior, source, 0.05, NO_SCALE, prior_share=0.38)
    assert full[0, 0] > 9.5 and narrow[0, 0] == pytest.approx(8.0)
    w_n, w_p = 1 / 0.05 ** 2, 1 / 0.01 ** 2
    for depth in (full, narrow):
        assert depth[0, 1] == pytest.approx((w_n * 10.2 + w_p * 10.0) / (w_n + w_p), rel=1e-5)


def test_beyond_the_ground_still_agrees_a_car_nearer_does_not():
    # 10 m of road: tau 0.225. A network 3.6 tau farther than the ground (nothing visible lies beyond the road)
    # agrees within beyond_ground = 4 (r / 4 = 0.9); 2 tau nearer (a car) does not; a vertical layer keeps the test.
    net = np.array([[10.0 * (1 + 3.6 * 0.225), 10.0 * (1 - 2 * 0.225), 10.0 * (1 + 3.6 * 0.225)]], dtype=np.float32)
    prior = np.full((1, 3), 10.0, dtype=np.float32)
    source = np.array([[SOURCE_GROUND, SOURCE_GROUND, SOURCE_VERTICAL]], dtype=np.uint8)
    g = agreement_weight(net, prior, FusionConfig(), source != SOURCE_VERTICAL)
    np.testing.assert_allclose(g[0, 0], 2 * (1 - 0.9 ** 2), atol=1e-5)
    assert g[0, 1] == 0.0 and g[0, 2] == 0.0
    depth, _ = fuse(net, prior, source, 0.05, NO_SCALE)
    w_n, w_p = 1 / 0.05 ** 2, g[0, 0] / 0.01 ** 2  # the road, mostly, not the network's far guess
    assert depth[0, 0] == pytest.approx((w_n * net[0, 0] + w_p * 10.0) / (w_n + w_p), rel=1e-5)
    assert depth[0, 1] == net[0, 1] and depth[0, 2] == net[0, 2]
    np.testing.assert_allclose(agreement_weight(net, prior, FusionConfig(beyond_ground=1.0), source != SOURCE_VERTICAL),
                               agreement_weight(net, prior, FusionConfig()), atol=0)


def test_an_inpainted_prior_counts_where_the_network_agrees_and_never_sets_the_local_scale():
    # A wall the inpainting filled with its contact depth (20 m) above a road where the network is right.
    H, W = 64, 64
    prior = np.full((H, W), 20.0, dtype=np.float32)
    source = np.full((H, W), SOURCE_INPAINTED, dtype=np.uint8)
    prior[40:] = np.linspace(20.0, 5.0, H - 40, dtype=np.float32)[:, None]
    source[40:] = SOURCE_ROAD
    net = prior.copy()
    net[:40, :32] = 21.0   # agrees with the wall (5%): pulled to the inpainted depth
    net[:40, 32:] = 40.0   # something behind (a gap in the wall): keeps the network
    depth, conf = fuse(net, prior, source, 0.1, NO_SCALE)
    w_n, w_p = 1 / 0.1 ** 2, 1 / 0.05 ** 2
    np.testing.assert_allclose(depth[:40, :32], (w_n * 21 + w_p * 20) / (w_n + w_p), rtol=1e-5)
    np.testing.assert_array_equal(depth[:40, 32:], 40.0)
    assert conf[0, 0] > conf[0, 40]
    # The local scale is measured on the prior's own layers: a network 10% short on the inpainted wall alone
    # leaves it at 1 (the road agrees), while the same shortfall on the road is corrected.
    short_wall = net.copy()
    short_wall[:40] = 18.0
    np.testing.assert_allclose(local_scale(short_wall, prior, FusionConfig(), source), 1.0, atol=1e-3)


def test_nothing_known_is_nan_with_zero_confidence():
    nan = np.full((2, 3), np.nan, dtype=np.float32)
    depth, conf = fuse(nan, nan, np.zeros((2, 3), np.uint8), 0.1)
    assert np.all(np.isnan(depth)) and np.all(conf == 0)


def test_local_scale_follows_a_drifting_compression_up_to_what_stands_on_the_road():
    """A network that compresses with depth (1x at 5 m, exp(-0.3) at 40 m): the road's correction is
    followed from the nearest row up and reaches the wall standing at the far end; a right network is
    left alone, and a car whose ratio jumps away from the road's is not followed."""
    H, W = 256, 96
    truth = np.full((H, W), 40.0, dtype=np.float32)
    truth[96:] = np.linspace(40.0, 5.0, H - 96, dtype=np.float32)[:, None]  # the road, far (row 96) to near
    prior = np.full((H, W), np.nan, dtype=np.float32)
    prior[96:] = truth[96:]  # the prior knows the road; the wall above it (rows < 96) it does not
    net = truth * np.exp(-0.3 * (truth - 5.0) / 35.0)
    scale = local_scale(net, prior, FusionConfig())
    np.testing.assert_allclose(scale[:80], np.exp(0.3), rtol=0.02)  # the wall gets the far road's correction
    np.testing.assert_allclose(scale[-8:], 1.0, atol=0.04)  # near road: about 1 (smoothed)
    np.testing.assert_allclose(local_scale(truth, prior, FusionConfig()), 1.0, rtol=1e-6)
    car = truth.copy()
    car[150:170, 20:40] = 0.6 * truth[150:170, 20:40]  # in front of the road: a jump, not a drift
    with_car = local_scale(car, prior, FusionConfig())
    np.testing.assert_allclose(with_car[150:170, 20:40], 1.0, atol=1e-3)
    assert local_scale(net, np.full_like(prior, np.nan), FusionConfig()) is None


def test_network_sigma_and_confidence():
    assert network_sigma(0.03, 0.6) == pytest.approx(1.4826 * 0.03)
    assert network_sigma(0.001, 0.6) == pytest.approx(0.03)  # floor
    assert network_sigma(0.03, 0.1) == pytest.approx(1.4826 * 0.03 / 0.2)
    assert network_sigma(float("nan"), 0.0) == 0.3
    np.testing.assert_allclose(confidence_from_sigma(np.array([0.1, np.inf])), [math.erf(1 / math.sqrt(2)), 0.0],
                               atol=1e-6)


def test_pipeline_fuses_by_default_publishes_confidence_and_prior_only_is_unchanged():
    from depth_prior_ros.models.base import BackendBase, Prediction
    from depth_prior_ros.pipeline import DepthPipeline, PipelineConfig
    from depth_prior_ros.synth.frames import make_frame

    frame = make_frame("tiny", "day", seed=3, with_lidar=False)

    class Truthful(BackendBase):  # the true disparity, affinely distorted: a relative network
        name, output_kind = "truthful", "affine_disparity"

        def predict(self, image):
            return Prediction((1.0 / frame.depth - 0.01) / 0.4, "affine_disparity")

    assert PipelineConfig().fusion == "confidence"
    prior_only = DepthPipeline(None).process(frame.image, frame.camera, frame.T_ground_from_camera)
    reference = DepthPipeline(None, PipelineConfig(fusion="off")).process(frame.image, frame.camera,
                                                                          frame.T_ground_from_camera)
    np.testing.assert_array_equal(prior_only.depth, reference.depth)
    assert not prior_only.fused and prior_only.confidence.shape == frame.depth.shape
    for fusion in ("confidence", "off"):
        result = DepthPipeline(Truthful(), PipelineConfig(fusion=fusion)).process(
            frame.image, frame.camera, frame.T_ground_from_camera)
        assert result.fused == (fusion == "confidence") and result.source == "network"
        c = result.confidence
        assert c.dtype == np.float32 and c.shape == frame.depth.shape and np.all((c >= 0) & (c <= 1))
        ok = np.isfinite(frame.depth) & np.isfinite(result.depth)
        error = np.abs(result.depth[ok] / frame.depth[ok] - 1)
        road = (frame.labels == 1)[ok]
        # A right network stays right: exact on the road, within a few percent elsewhere (the local
        # scale correction follows the road's ratio up walls; see fusion.local_scale).
        assert np.mean(error[road]) < 0.002 and np.median(error) < 0.02, (fusion, error.mean())
    with pytest.raises(ValueError, match="fusion 'both'"):
        PipelineConfig(fusion="both")


def test_pipeline_narrows_the_agreement_by_the_fits_share_only_without_a_road_mask():
    from depth_prior_ros.fusion import network_sigma
    from depth_prior_ros.models.base import BackendBase, Prediction
    from depth_prior_ros.pipeline import DepthPipeline, PipelineConfig
    from depth_prior_ros.synth.frames import make_frame

    frame = make_frame("tiny", "day", seed=3, with_lidar=False)
    H = frame.depth.shape[0]
    wrong = np.zeros(frame.depth.shape, bool)
    wrong[int(0.5 * H):] = (np.arange(frame.depth.shape[1]) // 16) % 2 == 0  # stripes below the middle, 40% nearer

    class HalfRight(BackendBase):
        name, output_kind = "half_right", "scale_depth"

        def predict(self, image):
            return Prediction(np.where(wrong, 0.6, 1.0) * frame.depth / 7.0, "scale_depth")

    def fused_by_hand(pipe, result, aligned, share):  # what the pipeline hands fuse(), with the given share
        sigma = network_sigma(result.alignment.residual, result.alignment.inlier_fraction)
        return fuse(aligned, pipe.priors.depth_in_range(result.prior), result.prior.source, sigma,
                    prior_share=share)[0]

    for mask in (None, frame.labels == 1):
        args = (frame.image, frame.camera, frame.T_ground_from_camera, mask)
        pipe = DepthPipeline(HalfRight(), PipelineConfig(temporal_filter=False))
        result = pipe.process(*args)
        aligned = DepthPipeline(HalfRight(), PipelineConfig(temporal_filter=False, fusion="off")).process(*args).depth
        share = result.alignment.inlier_fraction
        expected = share if mask is None else 1.0
        np.testing.assert_array_equal(result.depth, fused_by_hand(pipe, result, aligned, expected))
        if mask is None:
            assert share < 0.6  # half the ground disagrees: this frame's window is narrowed
            assert not np.array_equal(result.depth, fused_by_hand(pipe, result, aligned, 1.0), equal_nan=True)
