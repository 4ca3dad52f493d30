"""Synthetic street frames: exact depth on the road, consistent labels, determinism, presets."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.geometry import pose_from_static
from depth_prior_ros.synth import (PRESETS, Label, SceneConfig, Semantic, coarse_labels, make_frame, preset)


def ground_frame_rays(frame) -> np.ndarray:
    """Pixel rays (z = 1 in the optical frame) rotated into the ground frame: (H, W, 3) float64."""
    return frame.camera.pixel_rays() @ frame.T_ground_from_camera[:3, :3].T


def analytic_road_depth(frame) -> np.ndarray:
    """Independent ground-plane z-depth -h / d_z per pixel (NaN where the ray does not go down)."""
    dz = ground_frame_rays(frame)[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = -frame.T_ground_from_camera[2, 3] / dz
    return np.where(dz < 0, depth, np.nan)


@pytest.fixture(scope="module")
def frame():
    return make_frame("tiny", "day", seed=5, with_lidar=False)


@pytest.mark.parametrize("pitch_deg, roll_deg, yaw_deg, curb", [
    (0.0, 0.0, 0.0, 0.0), (2.5, -1.0, 0.0, 0.0), (-1.0, 1.5, 3.0, 0.0), (1.0, 0.5, -2.0, 0.15)])
def test_road_depth_equals_ground_plane_depth(pitch_deg, roll_deg, yaw_deg, curb):
    f = make_frame("tiny", "day", seed=11, pitch=np.radians(pitch_deg), roll=np.radians(roll_deg),
                   yaw=np.radians(yaw_deg), scene_config=SceneConfig(curb_height=curb), with_lidar=False)
    road = f.labels == Label.ROAD
    assert road.mean() > 0.1, "the camera should see plenty of road"
    expected = analytic_road_depth(f)
    rel = np.abs(f.depth[road] - expected[road]) / expected[road]
    assert np.all(np.isfinite(expected[road]))
    assert rel.max() < 1e-4


def test_road_depth_matches_the_projects_ground_prior(frame):
    from depth_prior_ros.prior import ground_depth

    prior = ground_depth(frame.camera.K, frame.camera.width, frame.camera.height, frame.T_ground_from_camera)
    road = frame.labels == Label.ROAD
    rel = np.abs(frame.depth[road] - prior[road]) / prior[road]
    assert rel.max() < 1e-4


def test_pose_height_and_angles_are_the_ones_asked_for():
    f = make_frame("tiny", seed=2, camera_height=1.7, pitch=0.02, roll=-0.01, yaw=0.0, with_lidar=False)
    np.testing.assert_allclose(f.T_ground_from_camera, pose_from_static(1.7, 0.02, -0.01, 0.0), atol=1e-12)


def test_labels_and_depth_agree(frame):
    sky = frame.labels == Label.SKY
    assert sky.any() and (frame.labels == Label.VERTICAL).any() and (frame.labels == Label.OTHER_GROUND).any()
    assert np.all(np.isnan(frame.depth[sky]))
    assert np.all(np.isfinite(frame.depth[~sky])) and np.all(frame.depth[~sky] > 0)
    assert frame.depth.dtype == np.float32 and frame.labels.dtype == np.uint8
    np.testing.assert_array_equal(coarse_labels(frame.semantic), frame.labels)
    markings = frame.semantic == Semantic.LANE_MARKING
    assert markings.any() and np.all(frame.labels[markings] == Label.ROAD)


def test_surfaces_sit_where_their_labels_say(frame):
    """Back-projected pixels: flat ground lies at z = 0, everything vertical stands above it."""
    rays = ground_frame_rays(frame)
    points = frame.T_ground_from_camera[:3, 3] + frame.depth[..., None].astype(np.float64) * rays
    ground = (frame.labels == Label.ROAD) | (frame.labels == Label.OTHER_GROUND)
    assert np.abs(points[ground][:, 2]).max() < 1e-3
    vertical = frame.labels == Label.VERTICAL
    assert points[vertical][:, 2].min() > -1e-3


def test_cars_are_nearer_than_the_ground_behind_them():
    f = make_frame("small", seed=4, scene_config=SceneConfig(car_density=8.0), with_lidar=False)
    cars = f.semantic == Semantic.CAR
    assert cars.sum() > 500, "the dense layout should put cars in view"
    ground_behind = analytic_road_depth(f)
    down = cars & np.isfinite(ground_behind)
    assert down.sum() > 0.5 * cars.sum()
    assert np.all(f.depth[down] < ground_behind[down])
    # Every car pixel is a surface standing on the road: at least part of each car reaches z ~ 0.
    rays = ground_frame_rays(f)
    z = f.T_ground_from_camera[2, 3] + f.depth[cars].astype(np.float64) * rays[cars][:, 2]
    assert z.min() > -1e-3 and z.min() < 0.3


def test_car_density_controls_coverage():
    empty = make_frame("tiny", seed=6, scene_config=SceneConfig(car_density=0.0), with_lidar=False)
    busy = make_frame("tiny", seed=6, scene_config=SceneConfig(car_density=10.0), with_lidar=False)
    assert not np.any(empty.semantic == Semantic.CAR)
    assert np.any(busy.semantic == Semantic.CAR)


def test_same_seed_same_frame_and_other_seed_other_frame():
    a = make_frame("tiny", "rain", seed=9)
    b = make_frame("tiny", "rain", seed=9)
    c = make_frame("tiny", "rain", seed=10)
    for name in ("image", "day_image", "labels", "semantic", "lidar", "lidar_intensity"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.depth, b.depth)  # NaN positions included
    assert not np.array_equal(a.day_image, c.day_image)


def test_presets_have_the_published_intrinsics():
    nus, kitti, small = preset("nuscenes").camera(), preset("kitti").camera(), preset("small").camera()
    assert (nus.width, nus.height, nus.fx, nus.cx, nus.cy) == (1600, 900, 1266.0, 816.0, 491.0)
    assert (kitti.width, kitti.height, kitti.fx, kitti.cx, kitti.cy) == (1242, 375, 721.5, 609.6, 172.9)
    assert PRESETS["kitti"].mount_height == 1.65 and PRESETS["nuscenes"].mount_height == 1.5
    assert (small.width, small.height) == (640, 360) and small.fx == pytest.approx(1266.0 * 0.4)
    f = make_frame("tiny", with_lidar=False)
    assert f.image.shape == (180, 320, 3) and f.image.dtype == np.uint8 and f.depth.shape == (180, 320)


def test_bad_arguments_give_one_clear_error():
    with pytest.raises(ValueError, match="unknown camera preset"):
        make_frame("imax")
    with pytest.raises(ValueError, match="unknown condition"):
        make_frame("tiny", "snow")
    with pytest.raises(ValueError, match="lanes_forward"):
        SceneConfig(lanes_forward=0)
