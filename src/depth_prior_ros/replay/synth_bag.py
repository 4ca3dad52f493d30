"""Synthetic driving bags (rosbag2 MCAP) with exact ground truth, one per condition (day, night, rain...).

Topics (sensor_msgs unless noted):
  /camera/image_raw      Image rgb8, the frame after the adverse condition
  /camera/camera_info    CameraInfo
  /camera/depth_gt       Image 32FC1, exact z-depth in metres, NaN on sky
  /camera/road_mask      Image mono8, 255 = road (what a road segmenter would publish; optional)
  /camera/labels         Image mono8, coarse labels (0 sky, 1 road, 2 other ground, 3 vertical)
  /lidar/points          PointCloud2 x, y, z, intensity (the simulated spinning LiDAR; by default only
                         returns the camera also sees, see SynthBagSpec.lidar_visible_only)
  /tf                    odom -> base_footprint (ego motion), base_footprint -> camera_optical
                         (mount plus suspension wobble, exact per frame)
  /tf_static             camera_optical -> lidar (the rig)
Bag metadata carries the replay hints (``depth_prior.*``) and the condition.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import bag_io
from .bag_io import BagWriter

CAMERA_FRAME = "camera_optical"
LIDAR_FRAME = "lidar"
GROUND_FRAME = "base_footprint"
ODOM_FRAME = "odom"
BASE_STAMP_NS = 1_700_000_000 * 1_000_000_000
TOPICS = {"image": "/camera/image_raw", "camera_info": "/camera/camera_info", "gt": "/camera/depth_gt",
          "road_mask": "/camera/road_mask", "labels": "/camera/labels", "lidar": "/lidar/points"}
DEFAULT_CONDITIONS = ("day", "night", "rain")


@dataclass
class SynthBagSpec:
    frames: int = 10
    preset: str = "small"           # synth camera preset (small = 640x360 nuScenes-like view)
    width: int | None = None        # resize the preset's camera to this size
    height: int | None = None
    seed: int = 0
    fps: float = 10.0
    speed_mps: float = 10.0
    road_mask: bool = True
    lidar: bool = True
    # Keep only LiDAR returns the camera also sees: the LiDAR sits 0.27 m behind and 0.08 m above the
    # camera, so around object edges it hits surfaces the camera cannot see; projected into the image
    # those points would land on the occluder (KITTI's cleaned ground truth removes them the same way).
    lidar_visible_only: bool = True


def _camera(spec: SynthBagSpec):
    from ..synth.frames import preset

    cam = preset(spec.preset).camera()
    if spec.width or spec.height:
        w = spec.width or round(cam.width * spec.height / cam.height)
        h = spec.height or round(cam.height * spec.width / cam.width)
        cam = cam.resized(int(w), int(h))
    return cam


def write_synth_bag(out: str | Path, condition: str, spec: SynthBagSpec | None = None, start_ns: int | None = None,
                    progress: bool = True, overwrite: bool = False) -> dict:
    """Render ``spec.frames`` frames of one street in ``condition`` into a bag at ``out``."""
    from tqdm import tqdm

    from ..synth.frames import iter_sequence

    spec = spec or SynthBagSpec()
    out = Path(out)
    camera = _camera(spec)
    t0 = BASE_STAMP_NS if start_ns is None else int(start_ns)
    hints = {"depth_prior.image_topic": TOPICS["image"], "depth_prior.camera_info_topic": TOPICS["camera_info"],
             "depth_prior.gt_topic": TOPICS["gt"], "depth_prior.labels_topic": TOPICS["labels"],
             "depth_prior.ground_frame": GROUND_FRAME, "depth_prior.condition": condition,
             "depth_prior.dataset": "synthetic", "depth_prior.protocol": "default",
             "depth_prior.seed": str(spec.seed)}
    if spec.road_mask:
        hints["depth_prior.road_mask_topic"] = TOPICS["road_mask"]
    if spec.lidar:
        hints["depth_prior.lidar_topic"] = TOPICS["lidar"]
    lidar_config = None
    if spec.lidar and spec.lidar_visible_only:
        from ..synth.lidar import LidarConfig

        lidar_config = LidarConfig(drop_occluded=True)
    frames = iter_sequence(spec.frames, condition, spec.preset, spec.seed, spec.speed_mps, spec.fps, camera=camera,
                           with_lidar=spec.lidar, lidar=lidar_config)
    summary = {"bag": str(out), "condition": condition, "frames": 0, "width": camera.width, "height": camera.height}
    writer = BagWriter(out, custom_data=hints, overwrite=overwrite)
    writer.open()
    try:
        for frame in tqdm(frames, total=spec.frames, desc=f"synth {condition}", unit="frame", disable=not progress,
                          leave=False):
            write_synth_frame(writer, frame, t0 + int(round(frame.stamp * 1e9)), spec, first=summary["frames"] == 0)
            summary["frames"] += 1
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return summary


def write_synth_frame(writer: BagWriter, frame, t: int, spec: SynthBagSpec, first: bool) -> None:
    """All topics of one SyntheticFrame at stamp ``t`` (ns)."""
    cam = frame.camera
    if first:
        rig = bag_io.make_transform_stamped(frame.T_camera_from_lidar, CAMERA_FRAME, LIDAR_FRAME, t)
        writer.write("/tf_static", bag_io.make_tf_message([rig]), bag_io.TF_MESSAGE, t)
    tf = [bag_io.make_transform_stamped(frame.T_world_from_ground, ODOM_FRAME, GROUND_FRAME, t),
          bag_io.make_transform_stamped(frame.T_ground_from_camera, GROUND_FRAME, CAMERA_FRAME, t)]
    writer.write("/tf", bag_io.make_tf_message(tf), bag_io.TF_MESSAGE, t)
    writer.write(TOPICS["camera_info"], bag_io.make_camera_info(cam.K, cam.width, cam.height, t, CAMERA_FRAME, cam.D),
                 bag_io.CAMERA_INFO, t)
    writer.write(TOPICS["gt"], bag_io.make_image(frame.depth.astype(np.float32), t, CAMERA_FRAME, "32FC1"),
                 bag_io.IMAGE, t)
    from ..synth.labels import Label

    labels = frame.labels.astype(np.uint8)
    writer.write(TOPICS["labels"], bag_io.make_image(labels, t, CAMERA_FRAME, "mono8"), bag_io.IMAGE, t)
    if spec.road_mask:
        mask = np.where(labels == int(Label.ROAD), 255, 0).astype(np.uint8)
        writer.write(TOPICS["road_mask"], bag_io.make_image(mask, t, CAMERA_FRAME, "mono8"), bag_io.IMAGE, t)
    if spec.lidar:
        points = np.concatenate([frame.lidar.astype(np.float32),
                                 frame.lidar_intensity.astype(np.float32)[:, None]], axis=1)
        writer.write(TOPICS["lidar"], bag_io.make_pointcloud2(points, t, LIDAR_FRAME), bag_io.POINT_CLOUD2, t)
    # The image last: a recorder sees a camera's image after its camera_info, like a driver publishes.
    writer.write(TOPICS["image"], bag_io.make_image(frame.image, t, CAMERA_FRAME, "rgb8"), bag_io.IMAGE, t)


def write_synth_bags(out_dir: str | Path, conditions=DEFAULT_CONDITIONS, spec: SynthBagSpec | None = None,
                     progress: bool = True, overwrite: bool = False) -> list[dict]:
    """One bag per condition in ``out_dir/<condition>``; each starts 1000 s after the previous one so
    stamps never repeat across bags. All conditions drive the same street (same seed), so differences
    between their metrics come from the condition alone."""
    spec = spec or SynthBagSpec()
    out = []
    for i, condition in enumerate(conditions):
        out.append(write_synth_bag(Path(out_dir) / condition, condition, spec, BASE_STAMP_NS + i * 1000 * 10**9,
                                   progress, overwrite))
    return out
