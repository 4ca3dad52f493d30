"""Public dataset layouts -> rosbag2 MCAP bags that ``depth-prior replay`` reads with no topic arguments.

Every bag carries: the camera image, its camera_info, the LiDAR scan as PointCloud2, /tf_static (and
/tf where the vehicle moves), and hints in the bag metadata (custom_data ``depth_prior.*``: topic
names, ground frame, condition, evaluation protocol).

The camera pose above the road is written into tf by the converter: a ground plane is fitted to the
LiDAR points (RANSAC, geometry.fit_ground_plane) and ``base_footprint`` is placed on it, directly
below the camera with x along the camera's heading (geometry.pose_from_ground_plane). So replay looks
up ``base_footprint <- camera`` like a node on a vehicle would, and gets exactly the pose the offline
pipeline computes from the same LiDAR.

Layouts:
- KITTI sample folder (``../shared/data/kitti_000008``): image.png, lidar_points.npy (N x 4), calib.json
  (``projection_P2_3x4``, ``lidar_to_camera_4x4`` = R0_rect @ Tr_velo_to_cam, ``image_size_wh``).
- KITTI object (``training/``): image_2/*.png, velodyne/*.bin, calib/*.txt (P2, R0_rect, Tr_velo_to_cam).
- KITTI raw (a drive folder beside ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt``):
  image_02/data/*.png + timestamps.txt, velodyne_points/data/*.bin + timestamps.txt (without timestamps:
  10 Hz). The date folder of a raw download (the calibration files and one or more drive folders) names
  the drive it converts: ``drive`` if given, else the first by name. Drive folders are recognised by
  their content, never by their name (``<date>_drive_XXXX_sync`` is a convention, not a rule).
- nuScenes (devkit layout): samples/CAM_FRONT/*.jpg, samples/LIDAR_TOP/*.pcd.bin and the JSON tables
  (sample_data, calibrated_sensor, ego_pose, sensor, sample, scene) in a version folder such as
  v1.0-mini/. One bag per scene; the condition (day/night/rain) comes from the scene description.

KITTI's P2 includes the colour camera's offset from the rectified reference camera 0:
K = P2[:, :3], t = K^-1 P2[:, 3], T_cam2_from_lidar = [I | t] @ (R0_rect @ Tr_velo_to_cam).
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..geometry.extrinsics import (PoseError, fit_ground_plane, invert_transform, pose_from_ground_plane,
                                   pose_from_transform, summarize_pose)
from . import bag_io
from .bag_io import BagError, BagWriter

GROUND_FRAME = "base_footprint"
KITTI_EPOCH_NS = 1_317_000_000 * 1_000_000_000  # 2011-09-26, the KITTI recording days


class DatasetError(ValueError):
    """A dataset folder that cannot be converted; one sentence says what is missing or wrong."""


@dataclass
class SensorFrame:
    """One camera image with the LiDAR scan taken with it."""

    stamp_ns: int
    image: np.ndarray | None          # uint8 RGB, or None when ``jpeg`` holds the encoded bytes
    lidar: np.ndarray                 # (N, >= 3) float32 in the LiDAR frame
    lidar_stamp_ns: int | None = None
    jpeg: bytes | None = None
    T_map_from_base_camera: np.ndarray | None = None  # ego pose at the camera stamp (nuScenes)
    T_map_from_base_lidar: np.ndarray | None = None   # ego pose at the LiDAR stamp


# --------------------------------------------------------------------------- geometry helpers
def kitti_camera_from_P(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P (3, 4) of a rectified KITTI camera -> K (3, 3), T_cam_from_rect0 (4, 4) (a pure translation)."""
    P = np.asarray(P, dtype=np.float64).reshape(3, 4)
    K = P[:, :3].copy()
    T = np.eye(4)
    T[:3, 3] = np.linalg.solve(K, P[:, 3])
    return K, T


def ground_pose_from_lidar(points: np.ndarray, T_camera_from_lidar: np.ndarray) -> np.ndarray:
    """T_ground_from_camera (4, 4) from a LiDAR ground fit (threshold 0.1 m)."""
    try:
        plane = fit_ground_plane(np.asarray(points)[:, :3], threshold=0.1)
        return pose_from_ground_plane(plane, T_camera_from_lidar)
    except PoseError as exc:
        raise DatasetError(f"the LiDAR ground fit failed: {exc}") from exc


def _read_calib_txt(path: Path) -> dict[str, np.ndarray]:
    """KITTI calibration text ("KEY: v1 v2 ...") -> {key: float array}; non-numeric lines are skipped."""
    if not path.exists():
        raise DatasetError(f"calibration file {path} does not exist")
    out = {}
    for line in path.read_text().splitlines():
        if ":" not in line:
            continue
        key, _, values = line.partition(":")
        try:
            out[key.strip()] = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError:
            continue
    return out


def _rigid(R9: np.ndarray, t3: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = np.asarray(R9, dtype=np.float64).reshape(3, 3)
    T[:3, 3] = np.asarray(t3, dtype=np.float64).reshape(3)
    return T


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"image {path} cannot be read")
    return img[:, :, ::-1].copy()


def _read_velodyne_bin(path: Path, columns: int = 4) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % columns:
        raise DatasetError(f"LiDAR file {path} has {raw.size} floats, not a multiple of {columns}")
    return raw.reshape(-1, columns)


# --------------------------------------------------------------------------- bag writing
@dataclass
class CameraLidarRig:
    K: np.ndarray
    width: int
    height: int
    T_camera_from_lidar: np.ndarray
    camera_frame: str = "camera_optical"
    lidar_frame: str = "lidar"
    P: np.ndarray | None = None
    D: np.ndarray | None = None


def write_camera_lidar_bag(out: Path, rig: CameraLidarRig, frames: Iterator[SensorFrame], *,
                           T_ground_from_camera: np.ndarray | None, base_frame: str | None = None,
                           T_base_from_camera: np.ndarray | None = None, condition: str = "day",
                           dataset: str = "", protocol: str = "default", camera_ns: str = "/camera",
                           lidar_topic: str = "/lidar/points", progress: bool = True,
                           total: int | None = None, per_frame_ground: bool = False) -> dict:
    """Write one bag. The tf tree:
      without a base frame:  base_footprint -> lidar -> camera
      with base_frame (nuScenes): map -> base_frame (/tf, ego pose) ; base_frame -> camera, lidar ;
                                  base_frame -> base_footprint (LiDAR ground fit)
    ``T_ground_from_camera=None`` fits the ground on the first frame (or every frame with
    ``per_frame_ground``, written to /tf). Returns a summary dict.
    """
    from tqdm import tqdm

    image_topic_raw = f"{camera_ns}/image_raw"
    info_topic = f"{camera_ns}/camera_info"
    T_lidar_from_camera = invert_transform(rig.T_camera_from_lidar)
    summary = {"frames": 0, "bag": str(out)}
    first = True
    image_topic = image_topic_raw
    hints = {"depth_prior.camera_info_topic": info_topic, "depth_prior.lidar_topic": lidar_topic,
             "depth_prior.ground_frame": GROUND_FRAME, "depth_prior.condition": condition,
             "depth_prior.dataset": dataset, "depth_prior.protocol": protocol}
    writer = None
    try:
        for frame in tqdm(frames, desc=f"bag {out.name}", unit="frame", total=total, disable=not progress,
                          leave=False):
            t = frame.stamp_ns
            t_lidar = frame.lidar_stamp_ns if frame.lidar_stamp_ns is not None else t
            if first:
                if frame.jpeg is not None:
                    image_topic = f"{camera_ns}/image_raw/compressed"
                hints["depth_prior.image_topic"] = image_topic
                if base_frame is not None:
                    hints["depth_prior.fixed_frame"] = "map"
                writer = BagWriter(out, custom_data=hints)
                writer.open()
            T_gc = T_ground_from_camera
            if T_gc is None or per_frame_ground:
                T_gc = ground_pose_from_lidar(frame.lidar, rig.T_camera_from_lidar)
            if first:
                summary["pose"] = str(summarize_pose(T_gc))
                summary["T_ground_from_camera"] = T_gc.tolist()
            if base_frame is None:
                T_ground_from_lidar = T_gc @ rig.T_camera_from_lidar
                ground_edge = bag_io.make_transform_stamped(T_ground_from_lidar, GROUND_FRAME, rig.lidar_frame, t)
                if first:
                    statics = [bag_io.make_transform_stamped(T_lidar_from_camera, rig.lidar_frame, rig.camera_frame, t)]
                    if not per_frame_ground:
                        statics.append(ground_edge)
                    writer.write("/tf_static", bag_io.make_tf_message(statics), bag_io.TF_MESSAGE, t)
                if per_frame_ground:
                    writer.write("/tf", bag_io.make_tf_message([ground_edge]), bag_io.TF_MESSAGE, t)
            else:
                T_base_from_ground = T_base_from_camera @ invert_transform(T_gc)
                if first:
                    T_base_from_lidar = T_base_from_camera @ rig.T_camera_from_lidar
                    statics = [bag_io.make_transform_stamped(T_base_from_camera, base_frame, rig.camera_frame, t),
                               bag_io.make_transform_stamped(T_base_from_lidar, base_frame, rig.lidar_frame, t),
                               bag_io.make_transform_stamped(T_base_from_ground, base_frame, GROUND_FRAME, t)]
                    writer.write("/tf_static", bag_io.make_tf_message(statics), bag_io.TF_MESSAGE, t)
                poses = []
                if frame.T_map_from_base_camera is not None:
                    poses.append(bag_io.make_transform_stamped(frame.T_map_from_base_camera, "map", base_frame, t))
                if frame.T_map_from_base_lidar is not None and t_lidar != t:
                    poses.append(bag_io.make_transform_stamped(frame.T_map_from_base_lidar, "map", base_frame, t_lidar))
                for pose in sorted(poses, key=lambda p: bag_io.stamp_to_ns(p.header.stamp)):
                    writer.write("/tf", bag_io.make_tf_message([pose]), bag_io.TF_MESSAGE,
                                 bag_io.stamp_to_ns(pose.header.stamp))
            first = False
            if frame.jpeg is not None:
                img_msg = bag_io.make_compressed_image(frame.jpeg, "jpeg", t, rig.camera_frame)
                writer.write(image_topic, img_msg, bag_io.COMPRESSED_IMAGE, t)
            else:
                writer.write(image_topic, bag_io.make_image(frame.image, t, rig.camera_frame, "rgb8"), bag_io.IMAGE, t)
            writer.write(info_topic, bag_io.make_camera_info(rig.K, rig.width, rig.height, t, rig.camera_frame,
                                                             rig.D, "plumb_bob", rig.P), bag_io.CAMERA_INFO, t)
            writer.write(lidar_topic, bag_io.make_pointcloud2(frame.lidar, t_lidar, rig.lidar_frame),
                         bag_io.POINT_CLOUD2, t_lidar)
            summary["frames"] += 1
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise DatasetError("no frames to convert")
    writer.close()
    return summary


# --------------------------------------------------------------------------- KITTI
def _is_raw_drive(folder: Path) -> bool:
    return (folder / "image_02").is_dir() and (folder / "velodyne_points").is_dir()


def raw_drives(date_folder: Path) -> list[Path]:
    """The drive folders (image_02/ + velodyne_points/) of a KITTI raw date folder, by name."""
    return sorted(p for p in date_folder.iterdir() if p.is_dir() and _is_raw_drive(p))


def kitti_layout(folder: Path) -> str:
    """'sample' | 'object' | 'raw' | 'raw_date' for a folder, or DatasetError naming what a layout needs."""
    if (folder / "calib.json").exists() and (folder / "image.png").exists():
        return "sample"
    if (folder / "image_2").is_dir() and (folder / "calib").is_dir():
        return "object"
    if _is_raw_drive(folder):
        return "raw"
    if (folder / "calib_cam_to_cam.txt").is_file() and raw_drives(folder):
        return "raw_date"
    raise DatasetError(f"{folder} is not a KITTI folder: expected image.png + lidar_points.npy + calib.json "
                       "(sample), image_2/ + velodyne/ + calib/ (object), image_02/ + velodyne_points/ (raw drive), "
                       "or calib_cam_to_cam.txt beside drive folders (raw date folder)")


def choose_drive(date_folder: Path, drive: str | None) -> tuple[Path, str]:
    """(drive folder, a sentence saying which one of how many) for a raw date folder."""
    drives = raw_drives(date_folder)
    names = [d.name for d in drives]
    if drive is not None and drive not in names:
        raise DatasetError(f"{date_folder} has no drive folder '{drive}' (drives: {', '.join(names)})")
    chosen = date_folder / drive if drive is not None else drives[0]
    if len(drives) == 1:
        return chosen, f"the only drive in {date_folder}"
    how = "as asked" if drive is not None else "the first by name; --drive picks another"
    return chosen, f"1 of {len(drives)} drives in {date_folder} ({', '.join(names)}), {how}"


def convert_kitti(folder: str | Path, out: str | Path, max_frames: int | None = None, start: int = 0,
                  per_frame_ground: bool = False, progress: bool = True, drive: str | None = None) -> dict:
    """Any KITTI layout -> one bag at ``out`` (``drive``: which drive of a raw date folder)."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise DatasetError(f"KITTI folder {folder} does not exist")
    layout = kitti_layout(folder)
    chosen = None
    if layout == "raw_date":
        folder, chosen = choose_drive(folder, drive)
        layout = "raw"
    elif drive is not None:
        raise DatasetError(f"--drive is for the date folder of a KITTI raw download; {folder} is a {layout} folder")
    if layout == "sample":
        rig, frames, total = _kitti_sample(folder)
    elif layout == "object":
        rig, frames, total = _kitti_object(folder, max_frames, start)
    else:
        rig, frames, total = _kitti_raw(folder, max_frames, start)
    summary = write_camera_lidar_bag(out, rig, frames, T_ground_from_camera=None, condition="day",
                                     dataset=f"kitti_{layout}", protocol="kitti", camera_ns="/kitti/camera_color_left",
                                     lidar_topic="/kitti/velodyne/points", progress=progress, total=total,
                                     per_frame_ground=per_frame_ground)
    summary["layout"] = layout
    if chosen is not None:
        summary.update(drive=folder.name, drives=chosen)
    return summary


def _kitti_sample(folder: Path):
    try:
        calib = json.loads((folder / "calib.json").read_text())
        P = np.asarray(calib["projection_P2_3x4"], dtype=np.float64)
        T_rect_lidar = np.asarray(calib["lidar_to_camera_4x4"], dtype=np.float64)
    except (KeyError, json.JSONDecodeError, OSError) as exc:
        raise DatasetError(f"{folder / 'calib.json'} is not a KITTI sample calibration ({exc})") from exc
    K, T_cam_rect = kitti_camera_from_P(P)
    image = _read_rgb(folder / "image.png")
    lidar_path = folder / "lidar_points.npy"
    if not lidar_path.exists():
        raise DatasetError(f"{lidar_path} does not exist")
    points = np.load(lidar_path, allow_pickle=False).astype(np.float32)
    h, w = image.shape[:2]
    rig = CameraLidarRig(K, w, h, T_cam_rect @ T_rect_lidar, "camera_color_left", "velodyne", P=P, D=np.zeros(5))
    return rig, iter([SensorFrame(KITTI_EPOCH_NS, image, points)]), 1


def _kitti_object(folder: Path, max_frames: int | None, start: int):
    images = sorted((folder / "image_2").glob("*.png"))[start:]
    if max_frames is not None:
        images = images[:max_frames]
    if not images:
        raise DatasetError(f"{folder / 'image_2'} has no PNG images")
    calib = _read_calib_txt(folder / "calib" / f"{images[0].stem}.txt")
    try:
        P = calib["P2"].reshape(3, 4)
        R0 = np.eye(4)
        R0[:3, :3] = calib["R0_rect"].reshape(3, 3)
        Tr = np.vstack([calib["Tr_velo_to_cam"].reshape(3, 4), [0, 0, 0, 1]])
    except KeyError as exc:
        raise DatasetError(f"KITTI object calibration lacks {exc}") from exc
    K, T_cam_rect = kitti_camera_from_P(P)
    first = _read_rgb(images[0])
    h, w = first.shape[:2]
    rig = CameraLidarRig(K, w, h, T_cam_rect @ R0 @ Tr, "camera_color_left", "velodyne", P=P, D=np.zeros(5))

    def frames():
        for i, path in enumerate(images):
            velo = folder / "velodyne" / f"{path.stem}.bin"
            if not velo.exists():
                raise DatasetError(f"{velo} does not exist")
            # Object frames are unrelated snapshots: space them 1 s apart.
            yield SensorFrame(KITTI_EPOCH_NS + i * 1_000_000_000, _read_rgb(path), _read_velodyne_bin(velo))

    return rig, frames(), len(images)


def parse_kitti_timestamp(text: str) -> int:
    """'2011-09-26 13:02:25.964389445' -> ns since the epoch (UTC)."""
    text = text.strip()
    date_part, _, frac = text.partition(".")
    base = _dt.datetime.strptime(date_part, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    ns = int((frac + "000000000")[:9]) if frac else 0
    return int(base.timestamp()) * 1_000_000_000 + ns


def _kitti_raw(folder: Path, max_frames: int | None, start: int):
    calib_dir = folder.parent
    c2c = _read_calib_txt(calib_dir / "calib_cam_to_cam.txt")
    v2c = _read_calib_txt(calib_dir / "calib_velo_to_cam.txt")
    try:
        P = c2c["P_rect_02"].reshape(3, 4)
        R0 = np.eye(4)
        R0[:3, :3] = c2c["R_rect_00"].reshape(3, 3)
        Tr = _rigid(v2c["R"], v2c["T"])
    except KeyError as exc:
        raise DatasetError(f"KITTI raw calibration in {calib_dir} lacks {exc}") from exc
    K, T_cam_rect = kitti_camera_from_P(P)
    images = sorted((folder / "image_02" / "data").glob("*.png"))
    if not images:
        raise DatasetError(f"{folder / 'image_02' / 'data'} has no PNG images")
    stamps_file = folder / "image_02" / "timestamps.txt"
    velo_stamps_file = folder / "velodyne_points" / "timestamps.txt"
    stamps = [parse_kitti_timestamp(s) for s in stamps_file.read_text().splitlines() if s.strip()] \
        if stamps_file.exists() else [KITTI_EPOCH_NS + i * 100_000_000 for i in range(len(images))]
    velo_stamps = [parse_kitti_timestamp(s) for s in velo_stamps_file.read_text().splitlines() if s.strip()] \
        if velo_stamps_file.exists() else stamps
    indices = list(range(len(images)))[start:]
    if max_frames is not None:
        indices = indices[:max_frames]
    first = _read_rgb(images[indices[0]]) if indices else None
    if first is None:
        raise DatasetError(f"no KITTI raw frames from index {start}")
    h, w = first.shape[:2]
    rig = CameraLidarRig(K, w, h, T_cam_rect @ R0 @ Tr, "camera_color_left", "velodyne", P=P, D=np.zeros(5))

    def frames():
        for i in indices:
            velo = folder / "velodyne_points" / "data" / f"{images[i].stem}.bin"
            if not velo.exists():
                raise DatasetError(f"{velo} does not exist")
            t = stamps[i] if i < len(stamps) else stamps[-1] + (i - len(stamps) + 1) * 100_000_000
            tl = velo_stamps[i] if i < len(velo_stamps) else t
            yield SensorFrame(t, _read_rgb(images[i]), _read_velodyne_bin(velo), tl)

    return rig, frames(), len(indices)


# --------------------------------------------------------------------------- nuScenes
NUSCENES_TABLES = ("sample_data", "calibrated_sensor", "ego_pose", "sensor", "sample", "scene")


def _quat_wxyz_pose(translation, rotation_wxyz) -> np.ndarray:
    w, x, y, z = rotation_wxyz
    return pose_from_transform(translation, (x, y, z, w))


def _load_tables(root: Path, version: str | None) -> tuple[Path, dict]:
    if version:
        table_dir = root / version
    else:
        found = sorted(p.parent for p in root.glob("*/sample_data.json"))
        if len(found) != 1:
            raise DatasetError(f"{root} should hold one table folder with sample_data.json "
                               f"(found {len(found)}); pass --version")
        table_dir = found[0]
    tables = {}
    for name in NUSCENES_TABLES:
        path = table_dir / f"{name}.json"
        if not path.exists():
            raise DatasetError(f"nuScenes table {path} does not exist")
        try:
            tables[name] = {row["token"]: row for row in json.loads(path.read_text())}
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"nuScenes table {path} is not a list of records with tokens ({exc})") from exc
    return table_dir, tables


def scene_condition(description: str) -> str:
    """nuScenes scene descriptions mention 'night' and 'rain' (e.g. 'Night, rain, ...')."""
    text = description.lower()
    if "night" in text:
        return "night"
    if "rain" in text:
        return "rain"
    return "day"


def convert_nuscenes(root: str | Path, out_dir: str | Path, version: str | None = None,
                     scenes: list[str] | None = None, camera: str = "CAM_FRONT", lidar: str = "LIDAR_TOP",
                     max_frames: int | None = None, ground: str = "lidar", progress: bool = True) -> list[dict]:
    """nuScenes folder -> one bag per scene in ``out_dir/<scene name>``; key frames only.

    ground: "lidar" fits base_footprint to the first frame's LiDAR; "ego" puts base_footprint at the
    ego frame (base_link, whose origin nuScenes places close to the road).
    """
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise DatasetError(f"nuScenes folder {root} does not exist")
    if ground not in ("lidar", "ego"):
        raise DatasetError(f"ground '{ground}' is not lidar or ego")
    _, t = _load_tables(root, version)
    channel_of = {tok: row.get("channel", "") for tok, row in t["sensor"].items()}

    def channel(sd: dict) -> str:
        return channel_of.get(t["calibrated_sensor"][sd["calibrated_sensor_token"]]["sensor_token"], "")

    by_sample: dict[str, dict[str, dict]] = {}
    for sd in t["sample_data"].values():
        if not sd.get("is_key_frame", True):
            continue
        by_sample.setdefault(sd["sample_token"], {})[channel(sd)] = sd
    wanted_scenes = set(scenes) if scenes else None
    results = []
    for scene in sorted(t["scene"].values(), key=lambda s: s.get("name", "")):
        name = scene.get("name", scene["token"])
        if wanted_scenes is not None and name not in wanted_scenes:
            continue
        samples = sorted((s for s in t["sample"].values() if s["scene_token"] == scene["token"]),
                         key=lambda s: s["timestamp"])
        pairs = []
        for s in samples:
            channels = by_sample.get(s["token"], {})
            if camera in channels and lidar in channels:
                pairs.append((channels[camera], channels[lidar]))
        if max_frames is not None:
            pairs = pairs[:max_frames]
        if not pairs:
            continue
        cam_sd, lidar_sd = pairs[0]
        cam_cal = t["calibrated_sensor"][cam_sd["calibrated_sensor_token"]]
        lid_cal = t["calibrated_sensor"][lidar_sd["calibrated_sensor_token"]]
        K = np.asarray(cam_cal.get("camera_intrinsic") or [], dtype=np.float64)
        if K.shape != (3, 3):
            raise DatasetError(f"calibrated_sensor {cam_cal['token']} of {camera} has no 3x3 camera_intrinsic")
        T_base_cam_body = _quat_wxyz_pose(cam_cal["translation"], cam_cal["rotation"])  # camera = optical frame
        T_base_lidar = _quat_wxyz_pose(lid_cal["translation"], lid_cal["rotation"])
        T_cam_lidar = invert_transform(T_base_cam_body) @ T_base_lidar
        width, height = int(cam_sd.get("width") or 1600), int(cam_sd.get("height") or 900)
        rig = CameraLidarRig(K, width, height, T_cam_lidar, camera, lidar, D=np.zeros(5))
        first_lidar = _read_nuscenes_lidar(root / lidar_sd["filename"])
        if ground == "ego":
            T_ground_cam = T_base_cam_body
        else:
            T_ground_cam = ground_pose_from_lidar(first_lidar, T_cam_lidar)

        def frames(pairs=pairs):
            for cam, lid in pairs:
                image_path = root / cam["filename"]
                if not image_path.exists():
                    raise DatasetError(f"image {image_path} does not exist")
                ego_c = t["ego_pose"][cam["ego_pose_token"]]
                ego_l = t["ego_pose"][lid["ego_pose_token"]]
                yield SensorFrame(int(cam["timestamp"]) * 1000, None, _read_nuscenes_lidar(root / lid["filename"]),
                                  int(lid["timestamp"]) * 1000, jpeg=image_path.read_bytes(),
                                  T_map_from_base_camera=_quat_wxyz_pose(ego_c["translation"], ego_c["rotation"]),
                                  T_map_from_base_lidar=_quat_wxyz_pose(ego_l["translation"], ego_l["rotation"]))

        condition = scene_condition(scene.get("description", ""))
        summary = write_camera_lidar_bag(out_dir / name, rig, frames(), T_ground_from_camera=T_ground_cam,
                                         base_frame="base_link", T_base_from_camera=T_base_cam_body,
                                         condition=condition, dataset="nuscenes", protocol="nuscenes",
                                         camera_ns=f"/{camera.lower()}", lidar_topic=f"/{lidar.lower()}/points",
                                         progress=progress, total=len(pairs))
        summary.update(scene=name, condition=condition)
        results.append(summary)
    if not results:
        which = f" named {', '.join(sorted(wanted_scenes))}" if wanted_scenes else ""
        raise DatasetError(f"no scene{which} in {root} has both {camera} and {lidar} key frames")
    return results


def _read_nuscenes_lidar(path: Path) -> np.ndarray:
    if not path.exists():
        raise DatasetError(f"LiDAR file {path} does not exist")
    return _read_velodyne_bin(path, 5)[:, :4]


__all__ = ["BagError", "CameraLidarRig", "DatasetError", "SensorFrame", "convert_kitti", "convert_nuscenes",
           "ground_pose_from_lidar", "kitti_camera_from_P", "kitti_layout", "parse_kitti_timestamp",
           "scene_condition", "write_camera_lidar_bag"]
