"""Depth metrics: definitions against hand computations, protocol options, aggregation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depth_prior_ros.replay.metrics import (DistanceErrors, EvalProtocol, FrameScore, MetricsError, crop_mask,
                                            depth_errors, evaluation_mask, mean_metrics, score_frame)


def test_metric_definitions_match_a_hand_computation():
    pred = np.array([2.0, 4.0, 9.0])
    gt = np.array([1.0, 5.0, 10.0])
    m = depth_errors(pred, gt)
    assert m["abs_rel"] == pytest.approx((1 / 1 + 1 / 5 + 1 / 10) / 3)
    assert m["sq_rel"] == pytest.approx((1 / 1 + 1 / 5 + 1 / 10) / 3)  # (p-g)^2 = 1 for each here
    assert m["rmse"] == pytest.approx(1.0)
    d = np.log(pred) - np.log(gt)
    assert m["rmse_log"] == pytest.approx(np.sqrt(np.mean(d ** 2)))
    assert m["silog"] == pytest.approx(100 * np.sqrt(np.mean(d ** 2) - np.mean(d) ** 2))
    ratio = np.maximum(pred / gt, gt / pred)  # 2, 1.25, 1.111
    assert m["delta1"] == pytest.approx(1 / 3)   # 1.25 is not < 1.25
    assert m["delta2"] == pytest.approx(2 / 3)   # 2 > 1.5625
    assert m["delta3"] == pytest.approx(2 / 3)   # 2 > 1.953
    assert ratio[0] == 2.0


def test_perfect_and_empty_predictions():
    gt = np.linspace(1, 50, 100)
    m = depth_errors(gt, gt)
    assert m["abs_rel"] == 0 and m["rmse"] == 0 and m["silog"] == 0 and m["delta1"] == 1
    assert all(math.isnan(v) for v in depth_errors(np.zeros(0), np.zeros(0)).values())
    with pytest.raises(MetricsError, match="positive"):
        depth_errors(np.array([0.0]), np.array([1.0]))


@settings(max_examples=30, deadline=None)
@given(st.floats(0.2, 5.0))
def test_silog_is_blind_to_a_global_scale_and_median_scaling_removes_it(scale):
    rng = np.random.default_rng(0)
    gt = rng.uniform(2, 60, (20, 30))
    noisy = gt * np.exp(rng.normal(0, 0.05, gt.shape))
    base = score_frame(noisy, gt, EvalProtocol(max_depth=100, clip_prediction=False))
    scaled = score_frame(noisy * scale, gt, EvalProtocol(max_depth=100, clip_prediction=False))
    assert scaled.metrics["silog"] == pytest.approx(base.metrics["silog"], rel=1e-6)
    med = score_frame(noisy * scale, gt, EvalProtocol(max_depth=100, scaling="median", clip_prediction=False))
    med_base = score_frame(noisy, gt, EvalProtocol(max_depth=100, scaling="median", clip_prediction=False))
    assert med.metrics["abs_rel"] == pytest.approx(med_base.metrics["abs_rel"], rel=1e-6)
    assert med.scale * scale == pytest.approx(med_base.scale, rel=1e-6)


def test_lstsq_scaling_recovers_scale_and_shift():
    gt = np.linspace(2, 40, 200).reshape(10, 20)
    score = score_frame(0.5 * gt - 1.0, gt, EvalProtocol(scaling="lstsq"))
    assert score.scale == pytest.approx(2.0) and score.shift == pytest.approx(2.0)
    assert score.metrics["abs_rel"] < 1e-9


def test_protocol_cap_minimum_crop_region_and_coverage():
    gt = np.full((375, 1242), 10.0)
    gt[:, :100] = 90.0       # beyond the 80 m cap
    gt[:, 100:110] = 0.05    # below the nuScenes minimum
    gt[0, :] = np.nan
    pred = np.full_like(gt, 11.0)
    pred[:, 600:700] = np.nan  # the node published nothing there
    proto = EvalProtocol.nuscenes()
    mask = evaluation_mask(gt, proto)
    assert not mask[:, :110].any() and not mask[0].any()
    score = score_frame(pred, gt, proto)
    assert score.n_gt == int(mask.sum())
    assert score.coverage == pytest.approx(1 - 100 * 374 / score.n_gt)
    assert score.metrics["abs_rel"] == pytest.approx(0.1)
    kitti = EvalProtocol.kitti()
    assert kitti.crop == "garg" and kitti.max_depth == 80
    garg = crop_mask(375, 1242, "garg")
    rows = np.flatnonzero(garg.any(axis=1))
    cols = np.flatnonzero(garg.any(axis=0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (153, 371, 44, 1197)  # monodepth2's numbers
    assert EvalProtocol.robotcar().max_depth == 50
    road = np.zeros_like(gt, dtype=bool)
    road[200:, 300:400] = True
    assert score_frame(pred, gt, proto, road).n == 175 * 100
    with pytest.raises(MetricsError):
        EvalProtocol(scaling="magic")
    with pytest.raises(MetricsError, match="differ"):
        score_frame(pred[:10], gt, proto)


def test_prediction_is_clipped_to_the_depth_range_like_monodepth2():
    gt = np.full((4, 4), 50.0)
    far = score_frame(np.full((4, 4), 500.0), gt, EvalProtocol(max_depth=80))
    assert far.metrics["abs_rel"] == pytest.approx(30 / 50)


def test_prior_scaling_scores_the_per_frame_aligned_depth():
    gt = np.full((4, 4), 20.0)
    out = score_frame(np.full((4, 4), 30.0), gt, EvalProtocol(scaling="prior"), prior_aligned=np.full((4, 4), 21.0))
    assert out.metrics["abs_rel"] == pytest.approx(0.05)


def test_frames_are_averaged_with_equal_weight():
    a = FrameScore({**depth_errors(np.array([2.0]), np.array([1.0]))}, 1, 1)
    b = FrameScore({**depth_errors(np.full(99, 1.0), np.full(99, 1.0))}, 99, 100)
    empty = FrameScore({k: float("nan") for k in a.metrics}, 0, 5)
    m = mean_metrics([a, b, empty])
    assert m["abs_rel"] == pytest.approx(0.5) and m["frames"] == 2 and m["pixels"] == 100
    assert m["coverage"] == pytest.approx((1 + 0.99 + 0) / 3)


def test_distance_bins_accumulate_abs_rel_per_range():
    bins = DistanceErrors(edges=(0, 10, 20))
    bins.add(np.array([5.5, 15.2, 30.0]), np.array([5.0, 19.0, 25.0]))
    table = bins.table()
    assert table[0]["abs_rel"] == pytest.approx(0.1) and table[1]["abs_rel"] == pytest.approx(0.2)
    assert [row["pixels"] for row in table] == [1, 1]
