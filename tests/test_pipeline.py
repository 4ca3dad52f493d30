"""DepthPipeline offline: prior-only output, frame errors, fallback when a network fails."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.geometry import PinholeCamera, pose_from_static
from depth_prior_ros.models import create_backend
from depth_prior_ros.pipeline import DepthPipeline, FrameError, PipelineConfig
from depth_prior_ros.prior import ground_depth

K = np.array([[500.0, 0, 320], [0, 500.0, 180], [0, 0, 1]])
CAM = PinholeCamera(K, 640, 360)


def test_prior_only_publishes_the_metric_ground_prior():
    pipe = DepthPipeline(create_backend("prior_only"), PipelineConfig(max_depth=60.0, inpaint=False))
    T = pose_from_static(1.5, np.radians(2.0))
    result = pipe.process(np.zeros((360, 640, 3), np.uint8), CAM, T)
    expected = ground_depth(K, 640, 360, T, max_depth=60.0)
    ok = np.isfinite(expected) & (expected >= 0.5)
    np.testing.assert_allclose(result.depth[ok], expected[ok], rtol=1e-6)
    assert result.source == "prior" and result.backend_error is None
    assert set(result.timings_ms) == {"prior", "network", "align", "fusion", "total"}
    assert np.all(np.isnan(result.depth[~ok]))


def test_frame_errors_are_one_sentence_and_the_pipeline_goes_on():
    pipe = DepthPipeline(create_backend("prior_only"))
    with pytest.raises(FrameError, match="camera_info says 640x360"):
        pipe.process(np.zeros((100, 100, 3), np.uint8), CAM, pose_from_static(1.5))
    with pytest.raises(FrameError, match="above the road"):
        pipe.process(np.zeros((360, 640, 3), np.uint8), CAM, pose_from_static(-1.0))
    result = pipe.process(np.zeros((360, 640, 3), np.uint8), CAM, pose_from_static(1.5))
    assert np.isfinite(result.depth).any()


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="depth range"):
        PipelineConfig(min_depth=10.0, max_depth=5.0)
