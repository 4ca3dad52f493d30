"""Test helpers for the KITTI sample: camera, LiDAR-to-camera transform, LiDAR ground pose."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from depth_prior_ros.geometry import PinholeCamera, fit_ground_plane, pose_from_ground_plane


def kitti_sample(folder: Path):
    """-> camera (PinholeCamera), T_camera_from_lidar (4, 4), lidar points (N, 3), plane, T_ground_from_camera."""
    calib = json.loads((folder / "calib.json").read_text())
    P = np.asarray(calib["projection_P2_3x4"], dtype=np.float64)
    K = P[:, :3]
    T_cam2_from_cam0 = np.eye(4)
    T_cam2_from_cam0[:3, 3] = np.linalg.solve(K, P[:, 3])  # P2 carries cam2's offset from rectified cam0
    T_camera_from_lidar = T_cam2_from_cam0 @ np.asarray(calib["lidar_to_camera_4x4"], dtype=np.float64)
    w, h = calib["image_size_wh"]
    points = np.load(folder / "lidar_points.npy")[:, :3].astype(np.float64)
    plane = fit_ground_plane(points, threshold=0.1)
    T_ground_from_camera = pose_from_ground_plane(plane, T_camera_from_lidar)
    return PinholeCamera(K, w, h), T_camera_from_lidar, points, plane, T_ground_from_camera
