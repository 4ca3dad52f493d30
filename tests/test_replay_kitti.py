"""The KITTI sample as a bag: tf pose from the LiDAR ground fit, and replay == the offline pipeline."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers_geometry import kitti_sample
from helpers_replay import count_messages, read_metrics

from depth_prior_ros.geometry import summarize_pose
from depth_prior_ros.models import create_backend
from depth_prior_ros.pipeline import DepthPipeline
from depth_prior_ros.replay.datasets import convert_kitti, parse_kitti_timestamp
from depth_prior_ros.replay.frames import FrameOptions, iter_frames
from depth_prior_ros.replay.ground_truth import lidar_depth
from depth_prior_ros.replay.metrics import METRIC_NAMES, EvalProtocol, score_frame
from depth_prior_ros.replay.replay import ReplayConfig, run_replay
from depth_prior_ros.parameters import parse_depth_params


@pytest.fixture(scope="module")
def kitti_bag(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("kitti") / "kitti_000008"
    summary = convert_kitti(shared_data / "kitti_000008", out, progress=False)
    assert summary["frames"] == 1 and summary["layout"] == "sample"
    return out


def test_converter_writes_image_lidar_camera_info_and_the_ground_pose_in_tf(kitti_bag, shared_data):
    counts = count_messages(kitti_bag)
    assert counts["/kitti/camera_color_left/image_raw"] == 1 and counts["/kitti/velodyne/points"] == 1
    assert counts["/kitti/camera_color_left/camera_info"] == 1 and counts["/tf_static"] == 1
    frame = next(iter_frames(kitti_bag, FrameOptions()))
    cam, T_cam_lidar, points, _, T_ground_cam = kitti_sample(shared_data / "kitti_000008")
    pose = summarize_pose(frame.T_ground_from_camera)
    assert pose.height == pytest.approx(1.73, abs=0.03) and np.degrees(pose.pitch) == pytest.approx(0.7, abs=0.3)
    # The same pose as the offline LiDAR ground fit (up to float round trips through the quaternion).
    np.testing.assert_allclose(frame.T_ground_from_camera, T_ground_cam, atol=1e-6)
    np.testing.assert_allclose(frame.camera.K, cam.K)
    np.testing.assert_allclose(frame.gt, lidar_depth(points, T_cam_lidar, cam), equal_nan=True, rtol=1e-6)
    image = cv2.imread(str(shared_data / "kitti_000008" / "image.png"))[:, :, ::-1]
    np.testing.assert_array_equal(frame.image, image)


def test_replayed_bag_gives_the_metrics_of_the_offline_pipeline_on_the_same_frame(kitti_bag, shared_data, tmp_path):
    protocol = EvalProtocol.kitti()
    report = run_replay([kitti_bag], tmp_path / "r", ReplayConfig(protocol=protocol, progress=False,
                                                                   scalings=("metric", "median")))
    got = read_metrics(tmp_path / "r")["summary"]["prior_only"]["day"]["all"]

    cam, T_cam_lidar, points, _, T_ground_cam = kitti_sample(shared_data / "kitti_000008")
    image = np.ascontiguousarray(cv2.imread(str(shared_data / "kitti_000008" / "image.png"))[:, :, ::-1])
    settings = parse_depth_params({})  # the node's defaults, as replay uses
    depth = DepthPipeline(create_backend("prior_only"), settings.pipeline).process(image, cam, T_ground_cam).depth
    gt = lidar_depth(points, T_cam_lidar, cam)
    for scaling in ("metric", "median"):
        expected = score_frame(depth, gt, protocol.with_scaling(scaling))
        for name in METRIC_NAMES:
            assert got[scaling][name] == pytest.approx(expected.metrics[name], rel=1e-6, abs=1e-9), (scaling, name)
        assert got[scaling]["pixels"] == expected.n
    assert report.records[0].gt_source == "lidar"


def test_pose_from_a_per_frame_lidar_fit_matches_the_tf_pose(kitti_bag):
    tf_frame = next(iter_frames(kitti_bag, FrameOptions()))
    fit_frame = next(iter_frames(kitti_bag, FrameOptions(pose="lidar")))
    np.testing.assert_allclose(fit_frame.T_ground_from_camera, tf_frame.T_ground_from_camera, atol=1e-6)


def test_kitti_raw_layout_converts_with_timestamps(tmp_path, shared_data):
    """A two-frame raw drive built from the sample: calib files, image_02, velodyne_points, timestamps."""
    import json

    calib = json.loads((shared_data / "kitti_000008" / "calib.json").read_text())
    P = np.asarray(calib["projection_P2_3x4"])
    T = np.asarray(calib["lidar_to_camera_4x4"])
    date = tmp_path / "2011_09_26"
    drive = date / "2011_09_26_drive_0001_sync"
    fmt = lambda a: " ".join(f"{v:.12e}" for v in np.ravel(a))  # noqa: E731
    date.mkdir()
    (date / "calib_cam_to_cam.txt").write_text(f"calib_time: x\nR_rect_00: {fmt(np.eye(3))}\nP_rect_02: {fmt(P)}\n")
    (date / "calib_velo_to_cam.txt").write_text(f"calib_time: x\nR: {fmt(T[:3, :3])}\nT: {fmt(T[:3, 3])}\n")
    points = np.load(shared_data / "kitti_000008" / "lidar_points.npy").astype(np.float32)
    for sub in ("image_02/data", "velodyne_points/data"):
        (drive / sub).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(drive / "image_02" / "data" / f"{i:010d}.png"),
                    cv2.imread(str(shared_data / "kitti_000008" / "image.png")))
        points.tofile(drive / "velodyne_points" / "data" / f"{i:010d}.bin")
    stamps = "2011-09-26 13:02:25.964389445\n2011-09-26 13:02:26.064389445\n"
    (drive / "image_02" / "timestamps.txt").write_text(stamps)
    (drive / "velodyne_points" / "timestamps.txt").write_text(stamps)
    summary = convert_kitti(drive, tmp_path / "bag", progress=False)
    assert summary["layout"] == "raw" and summary["frames"] == 2
    frames = list(iter_frames(tmp_path / "bag", FrameOptions()))
    assert [f.stamp_ns for f in frames] == [parse_kitti_timestamp(s) for s in stamps.split("\n")[:2]]
    assert frames[1].stamp_ns - frames[0].stamp_ns == 100_000_000
    assert summarize_pose(frames[0].T_ground_from_camera).height == pytest.approx(1.73, abs=0.03)


def test_kitti_object_layout_gives_the_same_pose_as_the_sample(tmp_path, shared_data, kitti_bag):
    import json

    calib = json.loads((shared_data / "kitti_000008" / "calib.json").read_text())
    P = np.asarray(calib["projection_P2_3x4"])
    T = np.asarray(calib["lidar_to_camera_4x4"])  # = R0_rect @ Tr_velo_to_cam; split it as R0 = I
    fmt = lambda a: " ".join(f"{v:.12e}" for v in np.ravel(a))  # noqa: E731
    for sub in ("image_2", "velodyne", "calib"):
        (tmp_path / "training" / sub).mkdir(parents=True)
    root = tmp_path / "training"
    cv2.imwrite(str(root / "image_2" / "000008.png"), cv2.imread(str(shared_data / "kitti_000008" / "image.png")))
    points = np.load(shared_data / "kitti_000008" / "lidar_points.npy").astype(np.float32)
    points.tofile(root / "velodyne" / "000008.bin")
    (root / "calib" / "000008.txt").write_text(
        f"P0: {fmt(np.zeros(12))}\nP2: {fmt(P)}\nR0_rect: {fmt(np.eye(3))}\nTr_velo_to_cam: {fmt(T[:3])}\n")
    summary = convert_kitti(root, tmp_path / "bag", progress=False)
    assert summary["layout"] == "object"
    frame = next(iter_frames(tmp_path / "bag", FrameOptions()))
    reference = next(iter_frames(kitti_bag, FrameOptions()))
    np.testing.assert_allclose(frame.T_ground_from_camera, reference.T_ground_from_camera, atol=1e-6)
    np.testing.assert_allclose(frame.gt, reference.gt, rtol=1e-5, equal_nan=True)
