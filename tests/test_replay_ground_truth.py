"""Ground truth from depth images and from LiDAR projection (z-buffer), checked on exact synthetic frames."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.geometry import PinholeCamera
from depth_prior_ros.replay.ground_truth import GroundTruthError, agreement, depth_from_image, lidar_depth, zbuffer


def test_depth_images_in_metres_and_millimetres():
    mm = np.array([[0, 1500], [65535, 20]], dtype=np.uint16)
    out = depth_from_image(mm, "16UC1")
    assert np.isnan(out[0, 0]) and out[0, 1] == pytest.approx(1.5) and out[1, 1] == pytest.approx(0.02)
    m = np.array([[np.inf, -1.0], [0.0, 3.5]], dtype=np.float32)
    out = depth_from_image(m, "32FC1")
    assert np.isnan(out[:1]).all() and np.isnan(out[1, 0]) and out[1, 1] == 3.5
    with pytest.raises(GroundTruthError, match="32FC1"):
        depth_from_image(mm, "rgb8")


def test_zbuffer_keeps_the_nearest_point_per_pixel():
    rows = np.array([1, 1, 1, 0])
    cols = np.array([2, 2, 2, 0])
    depth = np.array([9.0, 3.0, 5.0, 7.0])
    out = zbuffer(rows, cols, depth, 2, 3)
    assert out[1, 2] == 3.0 and out[0, 0] == 7.0 and np.isnan(out[0, 1])


def test_points_on_pixel_centres_project_back_exactly():
    K = np.array([[300.0, 0, 160], [0, 300.0, 90], [0, 0, 1]])
    cam = PinholeCamera(K, 320, 180)
    depth = np.random.default_rng(0).uniform(2, 60, (180, 320))
    rays = cam.pixel_rays()
    points_cam = (rays * depth[..., None]).reshape(-1, 3)
    # Put the points in a "LiDAR" frame (x forward, y left, z up) and give that transform back.
    T_cam_lidar = np.array([[0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, 0.3], [0, 0, 0, 1.0]])
    R, t = T_cam_lidar[:3, :3], T_cam_lidar[:3, 3]
    points_lidar = (points_cam - t) @ R
    out = lidar_depth(points_lidar, T_cam_lidar, cam)
    np.testing.assert_allclose(out, depth, rtol=1e-5)
    # Points behind the camera or outside the image are dropped.
    assert np.isnan(lidar_depth(-points_lidar[:10], T_cam_lidar, cam)).all()


def test_synthetic_lidar_ground_truth_agrees_with_the_exact_depth():
    from depth_prior_ros.synth.frames import make_frame

    frame = make_frame("tiny", "day", seed=5)
    visible = frame.lidar[frame.lidar_visible]
    gt = lidar_depth(visible, frame.T_camera_from_lidar, frame.camera)
    abs_rel, n = agreement(gt, frame.depth)
    assert n > 2000
    assert abs_rel <= 0.01  # only nearest-pixel rounding and edge pixels remain
    # Parallax returns (seen by the LiDAR, hidden from the camera) are what a visible-only scan removes:
    # kept in, they land on the occluders, so the agreement can only get worse.
    full, _ = agreement(lidar_depth(frame.lidar, frame.T_camera_from_lidar, frame.camera), frame.depth)
    assert full >= abs_rel
