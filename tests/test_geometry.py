"""Camera model and extrinsics: exact synthetic cases and the real KITTI / UTBM calibrations."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.geometry import (CameraModelError, PinholeCamera, PoseError, check_ground_pose,
                                      fit_ground_plane, invert_transform, pose_from_ground_plane,
                                      pose_from_static, pose_from_transform, summarize_pose)
from depth_prior_ros.geometry.extrinsics import matrix_to_quaternion

K = np.array([[500.0, 0, 320], [0, 500.0, 180], [0, 0, 1]])


def test_rays_are_z_normalised_and_pass_through_the_principal_point():
    rays = PinholeCamera(K, 640, 360).pixel_rays()
    assert rays.shape == (360, 640, 3)
    np.testing.assert_allclose(rays[..., 2], 1.0)
    np.testing.assert_allclose(rays[180, 320], [0, 0, 1])
    np.testing.assert_allclose(rays[0, 0], [-320 / 500, -180 / 500, 1])


def test_resize_and_crop_keep_rays_consistent():
    cam = PinholeCamera(K, 640, 360)
    half = cam.resized(320, 180)
    # Pixel centre (2u+0.5, 2v+0.5) of the big image is pixel (u, v) of the half image.
    big = cam.pixel_rays()
    small = half.pixel_rays()
    np.testing.assert_allclose(small[10, 20], (big[20, 40] + big[21, 41]) / 2, atol=1e-12)
    crop = cam.cropped(100, 50, 200, 100)
    np.testing.assert_allclose(crop.pixel_rays()[0, 0], big[50, 100])
    with pytest.raises(CameraModelError, match="leaves"):
        cam.cropped(600, 0, 100, 100)


@pytest.mark.parametrize("k, message", [
    (np.zeros((3, 3)), "K contains|non-positive|upper-triangular"),
    (np.array([[0, 0, 320], [0, 500, 180], [0, 0, 1.0]]), "non-positive focal"),
    (np.array([[500, 0, 320], [0, 500, 180], [0, 0, np.nan]]), "NaN"),
])
def test_bad_intrinsics_are_one_clear_sentence(k, message):
    with pytest.raises(CameraModelError, match=message):
        PinholeCamera(k, 640, 360)


def test_camera_info_yaml_with_plumb_bob(shared_data):
    cam = PinholeCamera.from_yaml(shared_data / "utbm_stereo" / "utbm_bb2_left.yaml")
    assert (cam.width, cam.height) == (1024, 768) and cam.is_distorted
    rays = cam.pixel_rays()
    # Undistorted rays must re-project (with distortion) onto their own pixel.
    pts = rays[::97, ::131].reshape(-1, 3)
    uv, _ = cam.project(pts)
    v, u = np.mgrid[0:768:97, 0:1024:131]
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-3)


@pytest.mark.parametrize("pitch, roll, yaw", [(0.0, 0.0, 0.0), (0.05, -0.02, 0.3), (-0.1, 0.04, -1.0)])
def test_static_pose_round_trip(pitch, roll, yaw):
    T = pose_from_static(1.6, pitch, roll, yaw)
    s = summarize_pose(T)
    assert s.height == pytest.approx(1.6) and s.pitch == pytest.approx(pitch) and s.roll == pytest.approx(roll)
    check_ground_pose(T)
    # Optical axis of a level camera points along ground +x, and down for positive pitch.
    axis = T[:3, :3] @ [0, 0, 1]
    assert axis[2] == pytest.approx(-np.sin(pitch))


def test_transform_quaternion_round_trip_and_inverse():
    T = pose_from_static(1.5, 0.1, 0.02, 0.4)
    q = matrix_to_quaternion(T[:3, :3])
    T2 = pose_from_transform(T[:3, 3], q)
    np.testing.assert_allclose(T2, T, atol=1e-9)
    np.testing.assert_allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)


@pytest.mark.parametrize("T, message", [
    (pose_from_static(-0.5), "above the road"),
    (np.full((4, 4), np.nan), "finite"),
    (np.diag([1.0, 1.0, 2.0, 1.0]), "rotation"),
])
def test_unusable_poses_are_rejected(T, message):
    with pytest.raises(PoseError, match=message):
        check_ground_pose(T)


def test_ransac_ground_fit_recovers_a_synthetic_pose():
    rng = np.random.default_rng(1)
    T_true = pose_from_static(1.8, np.radians(3.0), np.radians(-1.0))
    # Road points around the camera in the ground frame, plus a wall and clutter.
    road = np.c_[rng.uniform(3, 40, 3000), rng.uniform(-8, 8, 3000), rng.normal(0, 0.01, 3000)]
    wall = np.c_[rng.uniform(5, 30, 800), np.full(800, 6.0), rng.uniform(0, 4, 800)]
    clutter = rng.uniform([3, -8, 0.2], [40, 8, 2.5], (600, 3))
    pts_ground = np.vstack([road, wall, clutter])
    # Express them in a "LiDAR" frame 0.3 m above and behind the camera, level.
    T_ground_from_lidar = pose_from_static(2.1, 0.0)  # optical-style frame is fine for the test
    T_lidar_from_ground = invert_transform(T_ground_from_lidar)
    pts_lidar_opt = (T_lidar_from_ground[:3, :3] @ pts_ground.T).T + T_lidar_from_ground[:3, 3]
    # Fit in a z-up frame: rotate the optical frame to body axes.
    from depth_prior_ros.geometry.extrinsics import R_BODY_FROM_OPTICAL
    pts_lidar = pts_lidar_opt @ R_BODY_FROM_OPTICAL.T
    T_lidar_body_from_ground = np.eye(4)
    T_lidar_body_from_ground[:3, :3] = R_BODY_FROM_OPTICAL @ T_lidar_from_ground[:3, :3]
    T_lidar_body_from_ground[:3, 3] = R_BODY_FROM_OPTICAL @ T_lidar_from_ground[:3, 3]
    T_camera_from_lidar = invert_transform(T_true) @ invert_transform(T_lidar_body_from_ground)
    plane = fit_ground_plane(pts_lidar, threshold=0.05)
    assert plane.inliers[:3000].mean() > 0.97 and plane.inliers[3000:3800].mean() < 0.05
    T = pose_from_ground_plane(plane, T_camera_from_lidar)
    s = summarize_pose(T)
    assert s.height == pytest.approx(1.8, abs=0.01)
    assert np.degrees(s.pitch) == pytest.approx(3.0, abs=0.1)
    assert np.degrees(s.roll) == pytest.approx(-1.0, abs=0.1)


def test_kitti_lidar_ground_fit_matches_published_facts(shared_data):
    from helpers_geometry import kitti_sample

    _, _, _, plane, T = kitti_sample(shared_data / "kitti_000008")
    s = summarize_pose(T)
    assert 1.65 < s.height < 1.80  # data README: about 1.74 m
    assert abs(np.degrees(s.pitch) - 0.7) < 0.5
    assert plane.inliers.mean() > 0.2
