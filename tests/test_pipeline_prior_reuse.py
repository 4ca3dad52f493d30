"""DepthPipeline reuses the scene prior only while camera, pose and config are unchanged."""
from __future__ import annotations

import math

import numpy as np

from depth_prior_ros.geometry import PinholeCamera, pose_from_static
from depth_prior_ros.pipeline import DepthPipeline, PipelineConfig


CAMERA = PinholeCamera(np.array([[200.0, 0, 159.5], [0, 200.0, 89.5], [0, 0, 1]]), 320, 180)
IMAGE = np.zeros((180, 320, 3), np.uint8)


def test_prior_is_reused_while_nothing_changes_and_matches_the_plain_pipeline():
    config = PipelineConfig(inpaint=True)
    cached, plain = DepthPipeline(None, config), DepthPipeline(None, config)
    pose = pose_from_static(1.5, math.radians(2.0))
    first = cached.process(IMAGE, CAMERA, pose)
    again = cached.process(IMAGE, CAMERA, pose_from_static(1.502, math.radians(2.01)))  # within tolerance
    assert again.prior is first.prior and cached.priors.reuses == 1
    np.testing.assert_array_equal(again.depth, plain.process(IMAGE, CAMERA, pose).depth)

    tilted = pose_from_static(1.5, math.radians(4.0))
    moved = cached.process(IMAGE, CAMERA, tilted)
    assert moved.prior is not first.prior
    np.testing.assert_array_equal(moved.depth, plain.process(IMAGE, CAMERA, tilted).depth)

    other_camera = CAMERA.resized(160, 90)
    small = cached.process(np.zeros((90, 160, 3), np.uint8), other_camera, tilted)
    assert small.depth.shape == (90, 160) and small.prior is not moved.prior
    assert cached.priors.prior(other_camera, tilted, inpaint=False) is not small.prior


def test_road_mask_priors_are_reused_only_for_the_same_mask_object():
    # A segmenter run every N-th frame hands the same mask object to the frames in between.
    cached = DepthPipeline(None, PipelineConfig())
    pose = pose_from_static(1.5, math.radians(2.0))
    mask = np.zeros((180, 320), bool)
    mask[120:, 100:220] = True
    a = cached.priors.prior(CAMERA, pose, mask)
    assert cached.priors.prior(CAMERA, pose, mask) is a and cached.priors.reuses == 1
    b = cached.priors.prior(CAMERA, pose, mask.copy())  # a new mask (a new message): computed again
    assert b is not a and cached.priors.reuses == 1
    np.testing.assert_array_equal(a.depth, b.depth)
    wider = mask.copy()
    wider[120:, 60:260] = True
    assert not np.array_equal(cached.priors.prior(CAMERA, pose, wider).source, a.source)


def test_the_fusion_prior_is_the_aligners_with_its_holes_filled_and_both_are_kept():
    # With a network the aligner reads the prior without inpainting and the fusion the inpainted one at the
    # same pose: the second is made from the first, equal to the one a fresh cache builds inpainted, and both
    # stay kept.
    pose = pose_from_static(1.5, math.radians(2.0))
    mask = np.zeros((180, 320), bool)
    mask[120:, 100:220] = True
    for road in (None, mask):
        priors = DepthPipeline(None, PipelineConfig()).priors
        plain = priors.prior(CAMERA, pose, road, inpaint=False)
        filled = priors.prior(CAMERA, pose, road, inpaint=True)
        built = DepthPipeline(None, PipelineConfig()).priors.prior(CAMERA, pose, road, inpaint=True)
        np.testing.assert_array_equal(filled.depth, built.depth)
        np.testing.assert_array_equal(filled.source, built.source)
        assert not np.array_equal(plain.source, filled.source)  # the aligner's prior keeps its holes
        assert priors.prior(CAMERA, pose, road, inpaint=False) is plain
        assert priors.prior(CAMERA, pose, road, inpaint=True) is filled and priors.reuses == 2
