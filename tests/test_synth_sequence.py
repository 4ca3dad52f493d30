"""Synthetic sequences: the ego drives forward, poses are exact, static scenery reprojects between frames."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.synth import Label, Semantic, iter_sequence, make_sequence


@pytest.fixture(scope="module", params=[12, 21])
def frames(request):
    return make_sequence(3, "day", "tiny", seed=request.param, speed_mps=12.0, fps=10.0, with_lidar=False)


def test_ego_moves_forward_at_the_given_speed(frames):
    xs = [f.T_world_from_ground[0, 3] for f in frames]
    np.testing.assert_allclose(np.diff(xs), 1.2, atol=1e-9)
    assert [f.index for f in frames] == [0, 1, 2]
    np.testing.assert_allclose([f.stamp for f in frames], [0.0, 0.1, 0.2])
    # Suspension wobble: each frame has its own exact pose, at the same height.
    heights = {round(f.T_ground_from_camera[2, 3], 9) for f in frames}
    assert len(heights) == 1
    assert not np.allclose(frames[0].T_ground_from_camera, frames[2].T_ground_from_camera)


def world_points(frame) -> np.ndarray:
    rays = frame.camera.pixel_rays() @ frame.T_world_from_camera[:3, :3].T
    return frame.T_world_from_camera[:3, 3] + frame.depth[..., None].astype(np.float64) * rays


def test_static_scenery_reprojects_exactly_between_frames(frames):
    """Road and buildings seen in frame 1, moved into frame 0 with the poses, land where frame 0 saw
    them at the same depth: the sequence is geometrically consistent (what self-supervised training
    and odometry checks rely on)."""
    f0, f1 = frames[0], frames[1]
    static = np.isin(f1.semantic, [Semantic.ROAD, Semantic.LANE_MARKING, Semantic.SIDEWALK, Semantic.BUILDING])
    pts = world_points(f1)[static]
    T_cam0_world = np.linalg.inv(f0.T_world_from_camera)
    cam0 = pts @ T_cam0_world[:3, :3].T + T_cam0_world[:3, 3]
    uv, z = f0.camera.project(cam0)
    h, w = f0.depth.shape
    u0, v0 = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    inside = (z > 0) & (u0 >= 0) & (v0 >= 0) & (u0 < w - 1) & (v0 < h - 1)
    u0, v0, uv, z = u0[inside], v0[inside], uv[inside], z[inside]
    sem = f0.semantic
    quad_sem = np.stack([sem[v0, u0], sem[v0, u0 + 1], sem[v0 + 1, u0], sem[v0 + 1, u0 + 1]])
    d0 = f0.depth
    quad_depth = np.stack([d0[v0, u0], d0[v0, u0 + 1], d0[v0 + 1, u0], d0[v0 + 1, u0 + 1]])
    with np.errstate(invalid="ignore"):
        smooth = quad_depth.max(axis=0) - quad_depth.min(axis=0) < 0.02 * quad_depth.min(axis=0)
    one_surface = np.all(quad_sem == quad_sem[0], axis=0) & (f0.labels[v0, u0] != Label.SKY) & smooth
    inv = 1.0 / f0.depth.astype(np.float64)
    au, av = uv[:, 0] - u0, uv[:, 1] - v0
    interp = (inv[v0, u0] * (1 - au) * (1 - av) + inv[v0, u0 + 1] * au * (1 - av)
              + inv[v0 + 1, u0] * (1 - au) * av + inv[v0 + 1, u0 + 1] * au * av)
    ok = one_surface & np.isfinite(interp)
    assert ok.sum() > 5000
    signed = (1.0 / interp[ok] - z[ok]) / z[ok]  # < 0: frame 0 sees something nearer (occlusion)
    rel = np.abs(signed)
    # Frame 0 may see an occluder in front of a point (a car, a pole, a building corner, as the view
    # moves), and bilinear interpolation is inexact across a building corner; it must never see
    # through a static surface, and almost everything is exact.
    occluder = np.isin(quad_sem[0][ok], [Semantic.CAR, Semantic.POLE])
    assert np.median(rel) < 1e-5
    assert np.mean(rel[~occluder] < 1e-3) > 0.97
    assert np.mean(signed > 1e-2) < 0.005


def test_cars_move_between_frames():
    frames = make_sequence(2, "day", "tiny", seed=3, speed_mps=0.0, fps=2.0, with_lidar=False,
                           pose_jitter_deg=0.0)
    # The ego stands still, so every change in the picture comes from traffic.
    np.testing.assert_allclose(frames[0].T_world_from_camera, frames[1].T_world_from_camera)
    moved = frames[0].semantic != frames[1].semantic
    assert moved.any()
    assert np.all(np.isin(frames[0].semantic[moved], [Semantic.CAR]) |
                  np.isin(frames[1].semantic[moved], [Semantic.CAR]))


def test_iter_sequence_is_lazy_and_carries_the_condition():
    gen = iter_sequence(50, "fog", "tiny", seed=1, with_lidar=False)
    first = next(gen)
    assert first.condition == "fog" and first.index == 0
    gen.close()


def test_bad_sequence_arguments():
    with pytest.raises(ValueError, match="n_frames"):
        make_sequence(0)
    with pytest.raises(ValueError, match="unknown condition"):
        make_sequence(2, "hail")
