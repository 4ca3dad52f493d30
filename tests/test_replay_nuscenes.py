"""nuScenes layout -> bags (one per scene) on a tiny fixture written here from the devkit's table schema."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers_replay import count_messages

from depth_prior_ros.geometry import invert_transform, pose_from_static, summarize_pose
from depth_prior_ros.geometry.extrinsics import matrix_to_quaternion, rotation_xyz
from depth_prior_ros.replay.datasets import DatasetError, convert_nuscenes, scene_condition
from depth_prior_ros.replay.frames import FrameOptions, iter_frames
from depth_prior_ros.replay.replay import ReplayConfig, run_replay

CAM_HEIGHT, CAM_PITCH = 1.51, np.radians(1.0)
SPEED = 10.0  # m/s along map x
WALL_X = 14.0  # m ahead of the vehicle at each LiDAR stamp
K = np.array([[506.4, 0, 326.4], [0, 506.4, 196.4], [0, 0, 1]])  # CAM_FRONT at 640x360


def _wxyz(T):
    x, y, z, w = matrix_to_quaternion(T[:3, :3])
    return [w, x, y, z]


def write_nuscenes_fixture(root):
    """Two scenes (night+rain, rain), CAM_FRONT 640x360 and LIDAR_TOP seeing only the flat road."""
    tables = {name: [] for name in ("sensor", "calibrated_sensor", "ego_pose", "sample", "sample_data", "scene", "log")}
    tables["sensor"] = [{"token": "s_cam", "channel": "CAM_FRONT", "modality": "camera"},
                        {"token": "s_lid", "channel": "LIDAR_TOP", "modality": "lidar"}]
    T_base_cam = pose_from_static(CAM_HEIGHT, CAM_PITCH)
    T_base_cam[0, 3] = 1.70
    T_base_lid = np.eye(4)
    T_base_lid[:3, :3] = rotation_xyz(0, 0, -np.pi / 2)  # nuScenes' LiDAR is turned by 90 degrees
    T_base_lid[:3, 3] = (0.94, 0.0, 1.84)
    tables["calibrated_sensor"] = [
        {"token": "c_cam", "sensor_token": "s_cam", "translation": T_base_cam[:3, 3].tolist(),
         "rotation": _wxyz(T_base_cam), "camera_intrinsic": K.tolist()},
        {"token": "c_lid", "sensor_token": "s_lid", "translation": T_base_lid[:3, 3].tolist(),
         "rotation": _wxyz(T_base_lid), "camera_intrinsic": []}]
    rng = np.random.default_rng(0)
    (root / "samples" / "CAM_FRONT").mkdir(parents=True)
    (root / "samples" / "LIDAR_TOP").mkdir(parents=True)
    scenes = (("scene-0001", "Night, rain, parking lot", 2), ("scene-0002", "Rain, busy street", 1))
    t0 = 1_542_799_600_000_000  # microseconds
    k = 0
    for s_name, description, n in scenes:
        s_tok = f"sc_{s_name}"
        tables["scene"].append({"token": s_tok, "name": s_name, "description": description, "log_token": "l"})
        for i in range(n):
            t_lid = t0 + k * 500_000
            t_cam = t_lid + 20_000  # camera 20 ms after the LiDAR: the car moved 0.2 m
            sample = f"sa{k}"
            tables["sample"].append({"token": sample, "timestamp": t_lid, "scene_token": s_tok, "prev": "", "next": ""})
            for kind, t in (("cam", t_cam), ("lid", t_lid)):
                tables["ego_pose"].append({"token": f"e{kind}{k}", "timestamp": t,
                                           "translation": [SPEED * (t - t0) / 1e6, 0.0, 0.0],
                                           "rotation": [1.0, 0.0, 0.0, 0.0]})
            cam_file = f"samples/CAM_FRONT/n000__CAM_FRONT__{t_cam}.jpg"
            lid_file = f"samples/LIDAR_TOP/n000__LIDAR_TOP__{t_lid}.pcd.bin"
            cv2.imwrite(str(root / cam_file), rng.integers(0, 255, (360, 640, 3), dtype=np.uint8))
            # Road points 5-15 m ahead and a wall across the road 14 m ahead of the vehicle at the LiDAR
            # stamp (the camera, 0.2 m further on, sees it nearer), in the LiDAR frame.
            road = np.stack([rng.uniform(5, 15, 3000), rng.uniform(-4, 4, 3000), np.zeros(3000)], axis=1)
            wall = np.stack([np.full(2000, WALL_X), rng.uniform(-4, 4, 2000), rng.uniform(0.2, 3.0, 2000)], axis=1)
            base = np.concatenate([road, wall])
            lid = (base - T_base_lid[:3, 3]) @ T_base_lid[:3, :3]
            pcd = np.concatenate([lid, rng.uniform(0, 1, (len(lid), 1)), np.zeros((len(lid), 1))], axis=1)
            pcd.astype(np.float32).tofile(root / lid_file)
            for kind, t, file, cal, w, h in (("cam", t_cam, cam_file, "c_cam", 640, 360),
                                             ("lid", t_lid, lid_file, "c_lid", 0, 0)):
                tables["sample_data"].append({"token": f"sd{kind}{k}", "sample_token": sample,
                                              "ego_pose_token": f"e{kind}{k}", "calibrated_sensor_token": cal,
                                              "filename": file, "fileformat": file.rsplit(".", 1)[-1],
                                              "width": w, "height": h, "timestamp": t, "is_key_frame": True,
                                              "prev": "", "next": ""})
            k += 1
    (root / "v1.0-mini").mkdir()
    for name, rows in tables.items():
        (root / "v1.0-mini" / f"{name}.json").write_text(json.dumps(rows))
    return T_base_cam


def test_scene_descriptions_give_the_condition():
    assert scene_condition("Night, rain, parking lot") == "night"
    assert scene_condition("Rain, busy street") == "rain"
    assert scene_condition("Wait at intersection, peds") == "day"


def test_nuscenes_folder_becomes_one_bag_per_scene_with_poses_and_motion_compensated_lidar(tmp_path):
    root = tmp_path / "nuscenes"
    write_nuscenes_fixture(root)
    results = convert_nuscenes(root, tmp_path / "bags", progress=False)
    assert [(r["scene"], r["condition"], r["frames"]) for r in results] == [
        ("scene-0001", "night", 2), ("scene-0002", "rain", 1)]
    bag = tmp_path / "bags" / "scene-0001"
    counts = count_messages(bag)
    assert counts["/cam_front/image_raw/compressed"] == 2 and counts["/lidar_top/points"] == 2
    assert counts["/tf"] == 4  # ego pose at the camera and at the LiDAR stamp of each frame

    frames = list(iter_frames(bag, FrameOptions()))
    assert [f.condition for f in frames] == ["night", "night"]
    pose = summarize_pose(frames[0].T_ground_from_camera)
    assert pose.height == pytest.approx(CAM_HEIGHT, abs=0.01)
    assert pose.pitch == pytest.approx(CAM_PITCH, abs=np.radians(0.1))
    assert frames[0].image.shape == (360, 640, 3) and frames[0].gt_source == "lidar"

    # The camera image is 20 ms after the scan: the car drove 0.2 m, so the wall is 0.2 m nearer to
    # the camera than to where the scan was taken. Motion compensation through "map" (the bag's hint)
    # must show exactly that; without it the wall comes out 0.2 m too far.
    T_base_cam = pose_from_static(CAM_HEIGHT, CAM_PITCH)
    T_base_cam[0, 3] = 1.70
    wall_base_at_camera_time = np.array([[WALL_X - SPEED * 0.02, y, z] for y in (-1.0, 0.0, 1.0) for z in (1.0, 2.0)])
    p_cam = (invert_transform(T_base_cam) @ np.c_[wall_base_at_camera_time, np.ones(6)].T).T[:, :3]
    expected_wall_depth = float(np.median(p_cam[:, 2]))

    def wall_depth(frame):
        rows = slice(0, int(frame.camera.cy) - 5)  # above the horizon only the wall has LiDAR points
        return float(np.nanmedian(frame.gt[rows]))

    assert wall_depth(frames[0]) == pytest.approx(expected_wall_depth, abs=0.03)
    uncompensated = next(iter_frames(bag, FrameOptions(fixed_frame="none")))
    assert wall_depth(uncompensated) == pytest.approx(expected_wall_depth + SPEED * 0.02, abs=0.03)

    report = run_replay([bag], tmp_path / "out", ReplayConfig(progress=False, write_bag=False))
    assert report.run_info["bags"] == [str(bag)]
    night = report.summary()["prior_only"]["night"]["all"]["metric"]
    assert night["frames"] == 2 and night["pixels"] > 1000


def test_missing_tables_and_images_are_one_sentence(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        convert_nuscenes(tmp_path / "none", tmp_path / "out", progress=False)
    root = tmp_path / "ns"
    write_nuscenes_fixture(root)
    (root / "v1.0-mini" / "ego_pose.json").unlink()
    with pytest.raises(DatasetError, match="ego_pose.json does not exist"):
        convert_nuscenes(root, tmp_path / "out", progress=False)
    with pytest.raises(DatasetError, match="scene named nope"):
        write_nuscenes_fixture(tmp_path / "ns2")
        convert_nuscenes(tmp_path / "ns2", tmp_path / "out2", scenes=["nope"], progress=False)
