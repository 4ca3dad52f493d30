"""Recordings as streams of frames, read one frame at a time (memory does not grow with the length).

A stream yields ``RawFrame``s in time order: the undistorted RGB image at its native size, its pinhole
K, and what the source knows besides (LiDAR depth, the camera pose above the road, odometry, a stereo
partner). Sources:

- ``kitti_drive_stream``: a whole KITTI raw drive folder (``<date>_drive_XXXX_sync``; no split file),
  read through the node package's KITTI raw reader (``depth_prior_ros.replay.datasets``); OXTS
  odometry when the drive has ``oxts/``; the right colour camera (image_03) as a stereo partner.
- ``bag_stream``: any bag ``depth-prior replay`` reads, through its frame reader
  (``depth_prior_ros.replay.frames.iter_frames``): topics from the bag's hints (or the unique topic of
  each type), camera_info with distortion (undistorted here), LiDAR ground truth, the camera pose from
  tf, and odometry from a world-fixed tf frame (``odom``/``map``) when the bag has one.
- ``synthetic_stream``: synth sequences with exact depth and poses (optionally a stereo partner).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


class StreamError(ValueError):
    """A recording that cannot be read as a training stream; one sentence says which and why."""


@dataclass
class RawFrame:
    """One frame of a recording. image: uint8 RGB (H, W, 3), undistorted; K (3, 3) at (H, W).

    gt: callable -> float32 (H, W) z-depth in metres, NaN unknown (computed only when asked for).
    T_ground_from_camera (4, 4): camera pose above the road (for the prior); odometry: T_world_from_camera.
    stereo: the partner image (same size and K) with T_stereo_from_camera (4, 4).
    segment: frames of different segments are never temporal neighbours.
    """

    name: str
    stamp_ns: int
    image: np.ndarray
    K: np.ndarray
    segment: str = ""
    gt: Callable[[], np.ndarray] | None = None
    T_ground_from_camera: np.ndarray | None = None
    odometry: np.ndarray | None = None
    stereo: np.ndarray | None = None
    T_stereo_from_camera: np.ndarray | None = None


# --------------------------------------------------------------------------- distortion
def undistort(image: np.ndarray, K: np.ndarray, D: np.ndarray, nearest: bool = False) -> np.ndarray:
    """Remove plumb_bob / rational_polynomial distortion, keeping K (the output is a pinhole image with K).

    nearest: nearest-neighbour sampling (sparse depth: LiDAR points must not be blended)."""
    import cv2

    h, w = image.shape[:2]
    map1, map2 = cv2.initUndistortRectifyMap(K, D, None, K, (w, h), cv2.CV_32FC1)
    border = np.nan if image.dtype.kind == "f" else 0
    return cv2.remap(image, map1, map2, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=border)


# --------------------------------------------------------------------------- KITTI raw drive
def kitti_oxts_poses(drive: Path, count: int) -> list[np.ndarray] | None:
    """Camera positions from OXTS (``oxts/data/*.txt``) as translation-only poses (4, 4), integrating the
    forward/left/up velocities (fields vf, vl, vu) over the 10 Hz frame period; None without OXTS."""
    folder = drive / "oxts" / "data"
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if len(files) < count:
        return None
    poses, position = [], np.zeros(3)
    for path in files[:count]:
        values = np.array(path.read_text().split(), dtype=np.float64)
        T = np.eye(4)
        T[:3, 3] = position
        poses.append(T)
        position = position + values[8:11] * 0.1
    return poses


def kitti_drive_stream(drive: str | Path, stereo: bool = False, with_lidar: bool = True,
                       max_frames: int | None = None) -> Iterator[RawFrame]:
    """Every frame of a KITTI raw drive folder, in order (image_02 with Velodyne ground truth).

    The ground pose comes from a LiDAR ground-plane fit on the drive's first scan, which is what
    ``depth-prior bag from-kitti`` writes into the bag's tf: both paths see the same prior.
    """
    from depth_prior_ros.geometry.camera import PinholeCamera
    from depth_prior_ros.replay import datasets
    from depth_prior_ros.replay.ground_truth import lidar_depth

    drive = Path(drive)
    if not drive.is_dir():
        raise StreamError(f"KITTI drive folder {drive} does not exist")
    try:
        if datasets.kitti_layout(drive) != "raw":
            raise StreamError(f"{drive} is a KITTI folder but not a raw drive (image_02/ + velodyne_points/)")
        rig, frames, total = datasets._kitti_raw(drive, max_frames, 0)  # the node package's KITTI raw reader
    except datasets.DatasetError as exc:
        raise StreamError(str(exc)) from exc
    camera = PinholeCamera(K=rig.K, width=rig.width, height=rig.height)
    T_stereo = right = None
    if stereo:
        c2c = datasets._read_calib_txt(drive.parent / "calib_cam_to_cam.txt")
        _, T_right_rect = datasets.kitti_camera_from_P(c2c["P_rect_03"].reshape(3, 4))
        _, T_left_rect = datasets.kitti_camera_from_P(c2c["P_rect_02"].reshape(3, 4))
        T_stereo = T_right_rect @ np.linalg.inv(T_left_rect)
        right = sorted((drive / "image_03" / "data").glob("*.png"))
        if len(right) < total:
            raise StreamError(f"stereo: {drive / 'image_03' / 'data'} has {len(right)} images for {total} left images")
    odometry = kitti_oxts_poses(drive, total)
    T_ground = None
    for i, frame in enumerate(frames):
        points = frame.lidar[:, :3]
        if T_ground is None:
            T_ground = datasets.ground_pose_from_lidar(points, rig.T_camera_from_lidar)
        gt = (lambda p=points: lidar_depth(p, rig.T_camera_from_lidar, camera)) if with_lidar else None
        yield RawFrame(name=f"{drive.name}/{i:010d}", stamp_ns=frame.stamp_ns, image=frame.image, K=rig.K,
                       segment=drive.name, gt=gt, T_ground_from_camera=T_ground,
                       odometry=odometry[i] if odometry else None,
                       stereo=datasets._read_rgb(right[i]) if stereo else None, T_stereo_from_camera=T_stereo)


# --------------------------------------------------------------------------- bags
def bag_stream(bag: str | Path, image_topic: str | None = None, info_topic: str | None = None,
               lidar_topic: str | None = None, fixed_frame: str | None = None, pose: str = "tf",
               camera_height: float = 1.5, max_frames: int | None = None) -> Iterator[RawFrame]:
    """Every image of a bag with its camera_info (undistorted when D is non-zero), LiDAR ground truth when
    the bag has a point cloud, the camera pose above the road (tf, a static height, or a LiDAR fit) and
    odometry from ``fixed_frame`` (default: the bag's hint, else ``odom`` or ``map`` if tf has it)."""
    from depth_prior_ros.replay import bag_io, frames as replay_frames

    topics = replay_frames.ReplayTopics(image=image_topic, camera_info=info_topic, lidar=lidar_topic)
    options = replay_frames.FrameOptions(topics=topics, pose=pose, camera_height=camera_height,
                                         gt_source="lidar" if lidar_topic != "" else "none",
                                         fixed_frame="none", max_frames=max_frames)
    name = Path(bag).name
    try:
        with bag_io.BagReader(bag) as reader:
            tree = replay_frames.read_tf_tree(reader)
            fixed = fixed_frame or replay_frames.bag_hints(reader).get("fixed_frame")
            if fixed is None:
                fixed = next((f for f in ("odom", "map") if tree.has_frame(f)), None)
        for frame in replay_frames.iter_frames(bag, options):
            camera = frame.camera
            image, gt = frame.image, frame.gt
            if camera.is_distorted:
                image = undistort(image, camera.K, camera.D)
                gt = undistort(gt, camera.K, camera.D, nearest=True) if gt is not None else None
            odometry = None
            if fixed is not None and tree.has_frame(fixed):
                odometry = tree.lookup(fixed, frame.frame_id, frame.stamp_ns)
            yield RawFrame(name=f"{name}/{frame.stamp_ns}", stamp_ns=frame.stamp_ns, image=image, K=camera.K,
                           segment=name, gt=(lambda g=gt: g) if gt is not None else None,
                           T_ground_from_camera=frame.T_ground_from_camera, odometry=odometry)
    except bag_io.BagError as exc:
        raise StreamError(str(exc)) from exc


# --------------------------------------------------------------------------- synthetic
def synthetic_stream(seed: int, count: int, speed: float = 10.0, fps: float = 10.0, stereo_baseline: float = 0.0,
                     standstill: tuple[int, int] | None = None, preset: str = "tiny") -> Iterator[RawFrame]:
    """A synth driving sequence with exact depth and poses; ``stereo_baseline`` (m) adds a camera that
    far to the right (rendered from the same scene at the same time), ``standstill=(a, b)`` repeats
    frame a for frames a..b-1 (a car waiting at a light: same image, same pose)."""
    from depth_prior_ros.synth.frames import make_sequence, render_frame
    from depth_prior_ros.synth.scene import generate_scene

    frames = make_sequence(count, "day", preset=preset, seed=int(seed), speed_mps=speed, fps=fps, with_lidar=False)
    scene = generate_scene(int(seed), None, ego_speed=speed, duration=(count - 1) / fps) if stereo_baseline else None
    offset = np.eye(4)
    offset[0, 3] = stereo_baseline          # the right camera sits at +x of the left one
    T_stereo = np.linalg.inv(offset)        # T_right_from_left
    for i in range(count):
        f = frames[standstill[0] if standstill and standstill[0] <= i < standstill[1] else i]
        right = None
        if stereo_baseline:
            right = render_frame(scene, f.camera, f.T_ground_from_camera @ offset, f.T_world_from_ground,
                                 time_s=f.stamp, lidar=None).image
        depth = np.asarray(f.depth, np.float32)
        yield RawFrame(name=f"synth_{seed}/{i:06d}", stamp_ns=int(round(i * 1e9 / fps)), image=f.image,
                       K=f.camera.K, segment=f"synth_{seed}", gt=lambda d=depth: d,
                       T_ground_from_camera=f.T_ground_from_camera,
                       odometry=f.T_world_from_ground @ f.T_ground_from_camera,
                       stereo=right, T_stereo_from_camera=T_stereo if stereo_baseline else None)
