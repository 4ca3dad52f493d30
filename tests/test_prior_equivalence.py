"""The blocked ground_depth equals the float64 closed form it replaced, to float32 rounding (issue 16).

``reference_ground_depth`` is a frozen copy of the implementation before issue 16 (whole-frame float64
disparity, one float32 division), kept only here to compare against. Cameras: synthetic ones (nuScenes
CAM_FRONT, a skewed 640x360, KITTI cam2) and the real calibrations in ../shared/data (KITTI raw
P_rect_02, KITTI object 000008's P2 with its LiDAR ground pose, UTBM Bumblebee2 plumb_bob YAML).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_geometry import kitti_sample

from depth_prior_ros.geometry import PinholeCamera, pose_from_static
from depth_prior_ros.prior import GroundPriorCache, RayGrid, ground_depth

EPS32 = float(np.finfo(np.float32).eps)
RTOL = 4 * EPS32  # measured: at most 1.9 eps on every camera and pose below

NUSCENES = PinholeCamera(np.array([[1266.417, 0.0, 816.267], [0.0, 1266.417, 491.507], [0.0, 0.0, 1.0]]), 1600, 900)
SKEWED = PinholeCamera(np.array([[500.0, 3.0, 320.0], [0.0, 480.0, 180.0], [0.0, 0.0, 1.0]]), 640, 360)
KITTI_CAM2 = PinholeCamera(np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]]), 1242, 375)

POSES = {
    "level": pose_from_static(1.51),
    "kitti": pose_from_static(1.65, np.radians(0.7)),
    "suspension": pose_from_static(1.55, np.radians(-1.5), np.radians(2.5)),
    "pitch roll yaw": pose_from_static(1.7, np.radians(4.0), np.radians(2.0), np.radians(10.0)),
    "rolled 60": pose_from_static(1.5, np.radians(-30.0), np.radians(60.0)),
    "rolled 90": pose_from_static(1.5, np.radians(20.0), np.radians(90.0)),
    "looking down": pose_from_static(2.0, np.radians(89.0)),
}


# ----------------------------------------------------------------------------- frozen reference
def reference_ground_depth(K, width, height, T, max_depth=None, D=None, rays=None):
    """ground_depth before issue 16 (rays: (H, W, 3) undistorted rays), for comparison only."""
    T = np.asarray(T, dtype=np.float64)
    R = T[:3, :3]
    if rays is None and D is not None and np.any(np.asarray(D) != 0):
        rays = PinholeCamera(K, width, height, D).pixel_rays()
    if rays is not None:
        dz = rays @ R[2]
    else:
        K = np.asarray(K, dtype=np.float64)
        fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
        y = (np.arange(height, dtype=np.float64) - cy) / fy
        x_u = (np.arange(width, dtype=np.float64) - cx) / fx
        dz = ((R[2, 1] - R[2, 0] * skew / fx) * y + R[2, 2])[:, None] + (R[2, 0] * x_u)[None, :]
    h = T[2, 3]
    f32 = np.finfo(np.float32)
    upper = max_depth if max_depth is not None else float(f32.max)
    off_ground = ~(dz <= -h / upper) | (dz < -h / float(f32.tiny))
    depth = np.empty(dz.shape, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(-h, dz, out=depth, casting="same_kind")
    depth[off_ground] = np.nan
    return depth


def assert_same_to_float32_rounding(new: np.ndarray, old: np.ndarray) -> None:
    assert new.dtype == np.float32 and new.shape == old.shape
    np.testing.assert_array_equal(np.isnan(new), np.isnan(old), err_msg="NaN pixels differ")
    ok = ~np.isnan(old)
    if ok.any():
        rel = np.abs(new[ok].astype(np.float64) - old[ok]) / old[ok]
        assert rel.max() <= RTOL, f"largest relative difference {rel.max() / EPS32:.2f} eps"


# ----------------------------------------------------------------------------- real calibrations
def kitti_raw_camera(shared_data):
    from depth_prior_ros.replay.datasets import _kitti_raw, ground_pose_from_lidar

    drive = shared_data / "kitti_raw_seq" / "2011_09_26" / "2011_09_26_drive_sample_sync"
    rig, frames, _ = _kitti_raw(drive, 1, 0)
    T = ground_pose_from_lidar(next(frames).lidar, rig.T_camera_from_lidar)
    return PinholeCamera(rig.K, rig.width, rig.height), T


def kitti_object_camera(shared_data):
    calib = json.loads((shared_data / "kitti_000008" / "calib.json").read_text())
    K = np.asarray(calib["projection_P2_3x4"], dtype=np.float64)[:, :3]
    w, h = calib["image_size_wh"]
    return PinholeCamera(K, w, h), kitti_sample(shared_data / "kitti_000008")[4]


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("camera", [NUSCENES, SKEWED, KITTI_CAM2], ids=["nuscenes", "skewed", "kitti_cam2"])
@pytest.mark.parametrize("pose", list(POSES), ids=list(POSES))
@pytest.mark.parametrize("max_depth", [80.0, None, 5.0])
def test_undistorted_ground_depth_equals_the_float64_closed_form(camera, pose, max_depth):
    T = POSES[pose]
    new = ground_depth(camera.K, camera.width, camera.height, T, max_depth)
    assert_same_to_float32_rounding(new, reference_ground_depth(camera.K, camera.width, camera.height, T, max_depth))


@pytest.mark.parametrize("max_depth", [80.0, None])
def test_real_kitti_calibrations_with_their_lidar_ground_poses(shared_data, max_depth):
    for camera, T in (kitti_raw_camera(shared_data), kitti_object_camera(shared_data)):
        new = ground_depth(camera.K, camera.width, camera.height, T, max_depth)
        old = reference_ground_depth(camera.K, camera.width, camera.height, T, max_depth)
        assert np.isfinite(new).mean() > 0.4
        assert_same_to_float32_rounding(new, old)


@pytest.mark.parametrize("pose", list(POSES), ids=list(POSES))
@pytest.mark.parametrize("max_depth", [80.0, None])
def test_plumb_bob_camera_cached_and_uncached_rays(shared_data, pose, max_depth):
    """UTBM Bumblebee2 (plumb_bob): the cache's float32 rays and D (float64 rays) both match."""
    cam = PinholeCamera.from_yaml(shared_data / "utbm_stereo" / "utbm_bb2_left.yaml")
    assert cam.is_distorted
    T = POSES[pose]
    rays32 = cam.pixel_rays().astype(np.float32)
    cached = ground_depth(cam.K, cam.width, cam.height, T, max_depth, rays=RayGrid.from_rays(rays32))
    assert_same_to_float32_rounding(cached, reference_ground_depth(cam.K, cam.width, cam.height, T, max_depth,
                                                                   rays=rays32))
    if pose in ("level", "pitch roll yaw"):  # each D call undistorts every pixel again: two poses suffice
        with_d = ground_depth(cam.K, cam.width, cam.height, T, max_depth, D=cam.D)
        assert_same_to_float32_rounding(with_d, reference_ground_depth(cam.K, cam.width, cam.height, T,
                                                                       max_depth, D=cam.D))


def test_cache_gives_the_reference_for_a_distorted_camera(shared_data):
    cam = PinholeCamera.from_yaml(shared_data / "utbm_stereo" / "utbm_bb2_left.yaml")
    T = POSES["suspension"]
    geometry = GroundPriorCache(max_depth=80.0).get(cam, T)
    old = reference_ground_depth(cam.K, cam.width, cam.height, T, 80.0, rays=cam.pixel_rays().astype(np.float32))
    assert_same_to_float32_rounding(geometry.ground, old)


def test_depth_never_exceeds_the_cap_by_rounding():
    """The float32 reciprocal of the smallest accepted disparity is still <= max_depth, for any cap."""
    for max_depth in (5.0, 7.3, 33.3, 80.0, 123.456, 1e4):
        depth = ground_depth(SKEWED.K, SKEWED.width, SKEWED.height, POSES["pitch roll yaw"], max_depth)
        assert np.nanmax(depth) <= max_depth


def test_cached_rays_of_another_size_are_a_clear_error():
    grid = RayGrid.from_camera(SKEWED.resized(320, 180))
    with pytest.raises(ValueError, match="cached rays are 320x180 but the image is 640x360"):
        ground_depth(SKEWED.K, 640, 360, POSES["level"], 80.0, rays=grid)
