"""Ray casting primitives of the synthetic renderer: exact box hits, and culling that never changes a pixel."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.geometry import invert_transform, pose_from_static
from depth_prior_ros.synth import generate_scene, preset
from depth_prior_ros.synth.raycast import box_hit, cast_image, cast_rays, clipped_image_rect
from depth_prior_ros.synth.render import world_rays


@pytest.mark.parametrize("yaw", [0.0, 0.3, -1.1])
def test_box_hit_lands_on_the_surface_and_misses_really_miss(yaw):
    rng = np.random.default_rng(0)
    centre, half = np.array([8.0, 1.0, 0.8]), np.array([2.3, 0.9, 0.8])
    dirs = rng.normal(size=(4000, 3)).astype(np.float32)
    dirs[:, 0] = np.abs(dirs[:, 0]) * 3  # mostly towards the box
    t = box_hit(dirs[:, 0], dirs[:, 1], dirs[:, 2], centre, half, yaw)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])  # world -> box frame

    def inside_measure(points):
        local = (points - centre) @ R.T
        return np.max(np.abs(local) / half, axis=-1)

    hit = np.isfinite(t)
    assert 200 < hit.sum() < len(t)
    on_surface = inside_measure(dirs[hit].astype(np.float64) * t[hit, None])
    np.testing.assert_allclose(on_surface, 1.0, atol=1e-5)
    # Nothing on a missing ray (sampled densely up to 30 m) or before a hit is inside the box.
    steps = np.linspace(0.0, 1.0, 400)[:, None, None]
    miss_pts = steps * dirs[~hit] / np.linalg.norm(dirs[~hit], axis=1, keepdims=True) * 30.0
    assert inside_measure(miss_pts).min() > 1.0 - 1e-6
    before = steps * 0.999 * dirs[hit] * t[hit, None]
    assert inside_measure(before).min() > 1.0 - 1e-5


def test_clipped_rect_handles_boxes_behind_and_across_the_camera():
    K = preset("tiny").camera().K
    behind = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-5, -3)], float)
    assert clipped_image_rect(behind, K, 320, 180) is None
    across = np.array([[x, y, z] for x in (2, 4) for y in (-1, 1) for z in (-5, 5)], float)
    u0, u1, v0, v1 = clipped_image_rect(across, K, 320, 180)
    assert u1 == 320 and v0 == 0 and v1 == 180  # it reaches the image border on the right


def test_culling_never_changes_the_hits():
    """Per-box pixel rectangles are only an optimisation: casting every box against every pixel gives
    the same depth and ids, also for buildings that reach behind the camera and yawed cars."""
    camera = preset("tiny").camera()
    scene = generate_scene(4, ego_speed=10.0, duration=3.0)
    T = np.eye(4)
    T[:2, 3] = (17.0, scene.ego_y)
    T = T @ pose_from_static(1.5, 0.03, -0.01, 0.05)
    table = scene.box_table(1.7)
    dx, dy, dz = world_rays(camera, T[:3, :3])
    t_fast, ids_fast = cast_image(table, T[:3, 3], dx, dy, dz, invert_transform(T), camera.K)
    t_all, ids_all = cast_image(table, T[:3, 3], dx, dy, dz, None, None)
    np.testing.assert_array_equal(ids_fast, ids_all)
    np.testing.assert_array_equal(t_fast, t_all)
    assert (ids_fast >= 0).mean() > 0.3
    # The flat-list caster (used by the LiDAR) agrees with the image caster.
    dirs = np.stack([dx.ravel(), dy.ravel(), dz.ravel()], axis=1)
    t_list, ids_list = cast_rays(table, T[:3, 3], dirs)
    np.testing.assert_array_equal(ids_list, ids_fast.ravel())
    np.testing.assert_allclose(t_list, t_fast.ravel(), rtol=1e-6)
    # Its box pruning (too far, or behind the rays' half-space) only drops hits beyond the bound.
    t_pruned, ids_pruned = cast_rays(table, T[:3, 3], dirs, max_distance=60.0, forward=T[:3, 2])
    euclid = t_list * np.linalg.norm(dirs, axis=1)
    near = euclid < 60.0
    assert near.mean() > 0.5
    np.testing.assert_array_equal(ids_pruned[near], ids_list[near])
    np.testing.assert_array_equal(t_pruned[near], t_list[near])
