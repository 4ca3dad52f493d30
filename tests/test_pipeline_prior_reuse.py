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
