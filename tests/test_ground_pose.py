"""Per-frame ground pose (issue #12 item 2): pitch / roll offsets from the network's road pixels."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.geometry import pose_from_static
from depth_prior_ros.ground_pose import (MountCheck, PoseFilter, PoseOffsets, PoseRefineConfig, offset_pose,
                                         pitch_roll, pose_angles)
from depth_prior_ros.models.base import BackendBase, Prediction
from depth_prior_ros.pipeline import DepthPipeline, PipelineConfig

FPS = 10.0


def test_pose_angles_invert_pose_from_static_and_offsets_keep_yaw():
    T = pose_from_static(1.4, np.radians(2.0), np.radians(-1.0), np.radians(5.0))
    h, pitch, roll, yaw = pose_angles(T)
    assert (h, np.degrees(pitch), np.degrees(roll), np.degrees(yaw)) == pytest.approx((1.4, 2.0, -1.0, 5.0))
    moved = offset_pose(T, PoseOffsets(np.radians(0.5), np.radians(0.25), 0.1))
    np.testing.assert_allclose(moved, pose_from_static(1.5, np.radians(2.5), np.radians(-0.75), np.radians(5.0)),
                               atol=1e-12)
    assert offset_pose(T, PoseOffsets()) is T
    assert pitch_roll(T[2, :3]) == pytest.approx((pitch, roll))


def test_filter_gates_single_jumps_decays_when_unobservable_and_mount_check_needs_5_s():
    f = PoseFilter(PoseRefineConfig(alpha=0.5, gate_deg=1.0, reset_after=2, decay=0.5))
    f.update(PoseOffsets(np.radians(0.4)))
    assert np.degrees(f.update(PoseOffsets(np.radians(0.6))).pitch) == pytest.approx(0.5)
    assert np.degrees(f.update(PoseOffsets(np.radians(3.0))).pitch) == pytest.approx(0.5)  # one jump: gated
    assert np.degrees(f.update(PoseOffsets(np.radians(3.0))).pitch) == pytest.approx(3.0)  # repeated: real
    assert np.degrees(f.update(None).pitch) == pytest.approx(1.5)  # unobservable: back towards the mount
    check = MountCheck(limit_deg=1.0, hold_s=5.0)
    big, small = PoseOffsets(np.radians(1.2)), PoseOffsets(np.radians(0.2))
    assert not check.update(0.0, big) and not check.update(4.9, big) and check.update(5.0, big)
    assert not check.update(5.1, small) and not check.update(10.2, big)


def pitching_sequence(n: int = 20, seed: int = 4):
    """A tiny street with the body pitching +-1 deg at 1.3 Hz, rolling +-0.5 deg at 0.8 Hz, and a 3% grade
    change halfway (the road ahead tilts by atan(0.03) = 1.7 deg: to the camera, a pitch step)."""
    from depth_prior_ros.synth.frames import preset, render_frame
    from depth_prior_ros.synth.scene import generate_scene

    spec = preset("tiny")
    scene = generate_scene(seed, None, ego_speed=10.0, duration=(n - 1) / FPS)
    mount = pose_from_static(spec.mount_height, np.radians(spec.pitch_deg))
    frames = []
    for i in range(n):
        t = i / FPS
        T_world_from_ground = np.eye(4)
        T_world_from_ground[:2, 3] = (scene.ego_x0 + 10.0 * t, scene.ego_y)
        pitch = (np.radians(spec.pitch_deg) + np.radians(1.0) * np.sin(2 * np.pi * 1.3 * t)
                 + (np.arctan(0.03) if i >= n // 2 else 0.0))
        roll = np.radians(0.5) * np.sin(2 * np.pi * 0.8 * t + 1.0)
        frames.append(render_frame(scene, spec.camera(), pose_from_static(spec.mount_height, pitch, roll),
                                   T_world_from_ground, time_s=t, index=i, seed=seed))
    return frames, mount


class TruthPrediction(BackendBase):
    """The frame's exact depth as a network of ``kind`` would give it (unknown scale / affine map) with
    3% multiplicative noise: what the pose estimate sees from the road pixels."""

    name = "truth_prediction"

    def __init__(self, kind: str):
        self.output_kind, self.frame, self.rng = kind, None, np.random.default_rng(0)

    def predict(self, image):
        depth = self.frame.depth
        noise = 1.0 + 0.03 * self.rng.standard_normal(depth.shape)
        values = depth / 7.3 if self.output_kind == "scale_depth" else (1.0 / depth - 0.01) / 0.4
        return Prediction((values * noise).astype(np.float32), self.output_kind)


def run_sequence(frames, kind: str, mount: np.ndarray | None, refine: bool = True, affine: bool = False):
    """Per-frame means of road and all-pixel AbsRel (missing depth counts as 1e-3 m), and the pitch and
    roll errors (deg) of the refined pose; ``mount`` None gives the node the true per-frame pose."""
    backend = TruthPrediction(kind)
    pipe = DepthPipeline(backend, PipelineConfig(pose_refinement=refine, pose=PoseRefineConfig(affine=affine)))
    road, every, pitch_err, roll_err = [], [], [], []
    for frame in frames:
        backend.frame = frame
        result = pipe.process(frame.image, frame.camera, frame.T_ground_from_camera if mount is None else mount)
        for out, select in ((road, frame.labels == 1), (every, np.ones(frame.labels.shape, bool))):
            ok = select & np.isfinite(frame.depth) & (frame.depth < 80.0)
            d = np.clip(np.nan_to_num(result.depth[ok], nan=1e-3), 1e-3, 80.0)
            out.append(np.mean(np.abs(d - frame.depth[ok]) / frame.depth[ok]))
        if mount is not None and refine:
            _, pitch, roll, _ = pose_angles(offset_pose(mount, result.pose_offsets))
            _, true_pitch, true_roll, _ = pose_angles(frame.T_ground_from_camera)
            pitch_err.append(np.degrees(pitch - true_pitch))
            roll_err.append(np.degrees(roll - true_roll))
    rms = (lambda e: float(np.sqrt(np.mean(np.square(e)))) if e else float("nan"))
    return float(np.mean(road)), float(np.mean(every)), rms(pitch_err), rms(roll_err)


def test_static_mount_pose_plus_refinement_matches_the_true_pose_for_scale_depth():
    """Issue acceptance: static mount pose only -> road AbsRel <= 0.02, all-pixel within 1.2x of the run
    with the true per-frame pose, pitch RMS <= 0.15 deg (scale_depth). Measured: road 0.006, all 0.033
    vs 0.030, pitch RMS 0.08 deg, roll RMS 0.05 deg (without the refinement: road 0.124)."""
    frames, mount = pitching_sequence()
    road, every, pitch_rms, roll_rms = run_sequence(frames, "scale_depth", mount)
    _, every_true, _, _ = run_sequence(frames, "scale_depth", None, refine=False)
    road_static, _, _, _ = run_sequence(frames, "scale_depth", mount, refine=False)
    assert road <= 0.02 and road_static > 0.05, (road, road_static)  # the sequence really needs the refinement
    assert every <= 1.2 * every_true, (every, every_true)
    assert pitch_rms <= 0.15 and roll_rms <= 0.15, (pitch_rms, roll_rms)


def test_affine_disparity_keeps_the_mount_pose_unless_asked_and_then_tracks_through_the_filtered_fit():
    """On road pixels of one frame the shift and the pitch of an affine disparity trade off: by default the
    offsets stay 0; with ``affine`` the plane is fitted through the stream's filtered (a, b). Measured:
    road AbsRel 0.130 (mount pose) -> 0.013, all 0.037 (true pose 0.026), pitch RMS 0.15 deg."""
    frames, mount = pitching_sequence()
    backend = TruthPrediction("affine_disparity")
    pipe = DepthPipeline(backend)
    for frame in frames[:3]:
        backend.frame = frame
        offsets = pipe.process(frame.image, frame.camera, mount).pose_offsets
        assert offsets.pitch == 0.0 and offsets.roll == 0.0 and offsets.observed == ()
    road, _, pitch_rms, _ = run_sequence(frames, "affine_disparity", mount, affine=True)
    assert road <= 0.02 and pitch_rms <= 0.2, (road, pitch_rms)
