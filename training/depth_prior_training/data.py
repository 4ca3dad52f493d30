"""Training sequences: a target frame t with neighbours t-1 and t+1, intrinsics, optional depth.

Every source yields the same sample (a dict of tensors, batch-collatable), at the training size (H, W):

  image      (3, H, W) float32 in [0, 1]  frame t (clean / day-clear)
  prev, next (3, H, W)                    frames t-1, t+1 (for the photometric loss)
  K          (3, 3)                       intrinsics at (H, W)
  depth      (1, H, W)                    ground truth z-depth in metres, 0 = unknown (LiDAR, synthetic)
  translated (3, H, W)                    frame t in an adverse condition (GDT output), or the image
  has_translated  ()  bool                whether ``translated`` is a real translation
  T_prev, T_next (4, 4)                   known T_source_from_target (synthetic sequences), else NaN

Sources: in-memory synthetic sequences (``synth``), the project's bags (``replay.bag_io``), and the
public layouts KITTI raw + Eigen split file lists, nuScenes (v1.0 tables) and Oxford RobotCar.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset folder or file list that cannot be read; one sentence says which and why."""


# --------------------------------------------------------------------------- frames and resizing
@dataclass
class Frame:
    """One training sample before tensor conversion. Images uint8 RGB (h, w, 3); K (3, 3) at (h, w)."""

    image: np.ndarray
    prev: np.ndarray
    next: np.ndarray
    K: np.ndarray
    depth: np.ndarray | None = None
    translated: dict[str, np.ndarray] = field(default_factory=dict)   # condition -> uint8 image
    T_prev: np.ndarray | None = None
    T_next: np.ndarray | None = None
    name: str = ""


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (H, W, 3) (area when shrinking)."""
    import cv2

    H, W = size
    if image.shape[:2] == (H, W):
        return image
    interp = cv2.INTER_AREA if H < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (W, H), interpolation=interp)


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sparse or dense depth (h, w), NaN/0 unknown -> (H, W) nearest (keeps LiDAR points un-smeared)."""
    import cv2

    H, W = size
    d = np.nan_to_num(np.asarray(depth, np.float32), nan=0.0, posinf=0.0)
    if d.shape == (H, W):
        return d
    return cv2.resize(d, (W, H), interpolation=cv2.INTER_NEAREST)


def scale_intrinsics(K: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """K (3, 3) for an image of size src (h, w) -> K for the image resized to dst (h, w)."""
    sy, sx = dst[0] / src[0], dst[1] / src[1]
    out = np.array(K, dtype=np.float64, copy=True)
    out[0] *= sx
    out[1] *= sy
    out[2] = [0, 0, 1]
    return out


def frame_to_sample(frame: Frame, size: tuple[int, int], condition: str | None = None) -> dict:
    """Frame -> dict of torch tensors at ``size`` (see the module docstring)."""
    import torch

    def img(a):
        return torch.from_numpy(resize_image(a, size)).permute(2, 0, 1).float().div(255.0)

    nan44 = torch.full((4, 4), float("nan"))
    src = frame.image.shape[:2]
    translated = frame.translated.get(condition) if condition else None
    depth = resize_depth(frame.depth, size) if frame.depth is not None else np.zeros(size, np.float32)
    return {
        "image": img(frame.image), "prev": img(frame.prev), "next": img(frame.next),
        "K": torch.from_numpy(scale_intrinsics(frame.K, src, size)).float(),
        "depth": torch.from_numpy(depth)[None],
        "translated": img(translated) if translated is not None else img(frame.image),
        "has_translated": torch.tensor(translated is not None),
        "T_prev": torch.from_numpy(frame.T_prev).float() if frame.T_prev is not None else nan44,
        "T_next": torch.from_numpy(frame.T_next).float() if frame.T_next is not None else nan44.clone(),
    }


class SequenceDataset:
    """Map-style dataset of Frames (a list or a loader per index) at a fixed training size.

    conditions: translated conditions to pick from; ``translate_probability`` p: with probability p the
    sample's ``translated`` is a randomly chosen available condition (else the clean image).
    Randomness comes from ``rng`` passed to ``sample`` so a run is reproducible step by step.
    """

    def __init__(self, frames: Sequence[Frame] | Callable[[int], Frame], size: tuple[int, int],
                 length: int | None = None, conditions: Sequence[str] = (), translate_probability: float = 0.0):
        self._frames = frames
        self.size = (int(size[0]), int(size[1]))
        self._length = len(frames) if length is None else int(length)  # type: ignore[arg-type]
        self.conditions = tuple(conditions)
        self.translate_probability = float(translate_probability)
        if self._length == 0:
            raise DataError("the dataset has no frames")

    def __len__(self) -> int:
        return self._length

    def frame(self, index: int) -> Frame:
        return self._frames(index) if callable(self._frames) else self._frames[index]

    def sample(self, index: int, rng: np.random.Generator | None = None, condition: str | None = None) -> dict:
        frame = self.frame(index)
        if condition is None and rng is not None and self.conditions and rng.random() < self.translate_probability:
            available = [c for c in self.conditions if c in frame.translated]
            condition = available[int(rng.integers(len(available)))] if available else None
        sample = frame_to_sample(frame, self.size, condition)
        sample["index"] = index
        return sample

    def __getitem__(self, index: int) -> dict:
        return self.sample(index)


def collate(samples: list[dict]) -> dict:
    import torch

    return {k: torch.stack([torch.as_tensor(s[k]) for s in samples]) for k in samples[0]}


def batch_at_step(dataset: SequenceDataset, step: int, batch_size: int, seed: int, rank: int = 0,
                  world: int = 1) -> dict:
    """The batch of global ``step`` for process ``rank`` of ``world``: a pure function of (seed, step),
    so resuming at step k sees exactly the batches the uninterrupted run would have seen."""
    rng = np.random.default_rng([seed, step])
    indices = rng.integers(0, len(dataset), size=batch_size * world)[rank * batch_size:(rank + 1) * batch_size]
    return collate([dataset.sample(int(i), rng=np.random.default_rng([seed, step, int(i), rank, k]))
                    for k, i in enumerate(indices)])


# --------------------------------------------------------------------------- synthetic (synth)
def synthetic_frames(seeds: Sequence[int], width: int = 320, height: int = 180, frames_per_seed: int = 1,
                     speed: float = 10.0, fps: float = 10.0, conditions: Sequence[str] = (),
                     translator: Callable | None = None, progress: bool = True) -> list[Frame]:
    """Render synthetic sequences with exact depth and ego motion: ``frames_per_seed`` targets per seed.

    translator(image, condition, depth, labels, seed) -> uint8 image (default: synth's classical
    translator) adds the translated versions of each target frame for ``conditions``.
    """
    from tqdm import tqdm

    from . import synthetic

    frames: list[Frame] = []
    if conditions and translator is None:
        translator = synthetic.classical_translator()
    for seed in tqdm(list(seeds), desc="render synthetic", disable=not progress, unit="seq"):
        views, K, poses = synthetic.render_sequence(int(seed), width, height, frames_per_seed + 2, speed, fps)
        for t in range(1, frames_per_seed + 1):
            target = views[t]
            translated = {}
            extra = {"lights": getattr(target, "lights", None)} if getattr(translator, "accepts_lights", False) else {}
            for c in conditions:
                translated[c] = translator(target.image, c, target.depth, target.labels, int(seed) * 1000 + t, **extra)
            frames.append(Frame(image=target.image, prev=views[t - 1].image, next=views[t + 1].image, K=K,
                                depth=target.depth, translated=translated,
                                T_prev=relative_pose(poses[t - 1], poses[t]), T_next=relative_pose(poses[t + 1], poses[t]),
                                name=f"synth_{seed}_{t}"))
    return frames


def relative_pose(T_world_from_source: np.ndarray, T_world_from_target: np.ndarray) -> np.ndarray:
    """T_source_from_target (4, 4) from two camera poses in a common world frame."""
    return np.linalg.inv(T_world_from_source) @ T_world_from_target


# --------------------------------------------------------------------------- project bags
def bag_frames(bag: str | Path, image_topic: str, info_topic: str, stride: int = 1, max_frames: int | None = None,
               progress: bool = True) -> list[Frame]:
    """Consecutive (t-1, t, t+1) triples of an image topic of a project bag, with its camera_info K."""
    from tqdm import tqdm

    from depth_prior_ros.replay import bag_io

    images, K = [], None
    with bag_io.BagReader(bag) as reader:
        topics = reader.topics
        for topic in (image_topic, info_topic):
            if topic not in topics:
                raise DataError(f"bag {bag} has no topic {topic} (it has {', '.join(sorted(topics))})")
        for m in tqdm(reader.messages([image_topic, info_topic]), desc=f"read {Path(bag).name}",
                      disable=not progress, unit="msg"):
            if m.topic == info_topic:
                if K is None:
                    K = np.array(m.msg.k, dtype=np.float64).reshape(3, 3)
            else:
                images.append(bag_io.rgb_image(m.msg, m.msgtype))
            if max_frames and len(images) >= max_frames * stride + 2:
                break
    if K is None:
        raise DataError(f"bag {bag} has no camera_info message on {info_topic}")
    images = images[::stride]
    if len(images) < 3:
        raise DataError(f"bag {bag} has {len(images)} images on {image_topic}; self-supervision needs at least 3")
    return [Frame(image=images[i], prev=images[i - 1], next=images[i + 1], K=K, name=f"{Path(bag).name}_{i}")
            for i in range(1, len(images) - 1)]


# --------------------------------------------------------------------------- KITTI raw / Eigen split
KITTI_SIDES = {"l": "image_02", "r": "image_03"}


def read_kitti_calib(path: Path) -> dict[str, np.ndarray]:
    """KITTI calibration text file ('key: numbers' lines) -> {key: float array}."""
    if not path.is_file():
        raise DataError(f"KITTI calibration file {path} does not exist")
    out = {}
    for line in path.read_text().splitlines():
        key, _, values = line.partition(":")
        try:
            out[key.strip()] = np.array([float(v) for v in values.split()])
        except ValueError:
            continue  # e.g. calib_time
    return out


def kitti_lidar_depth(velo_path: Path, calib_dir: Path, cam: int, height: int, width: int) -> np.ndarray:
    """Project a KITTI velodyne scan into rectified camera ``cam`` (2 or 3): sparse z-depth (H, W), 0 = none.

    Points: velo -> cam0 (calib_velo_to_cam R|T) -> rectified (R_rect_00) -> image (P_rect_0cam);
    the nearest point wins where several land on one pixel.
    """
    c2c = read_kitti_calib(calib_dir / "calib_cam_to_cam.txt")
    v2c = read_kitti_calib(calib_dir / "calib_velo_to_cam.txt")
    T = np.eye(4)
    T[:3, :3] = v2c["R"].reshape(3, 3)
    T[:3, 3] = v2c["T"]
    R_rect = np.eye(4)
    R_rect[:3, :3] = c2c["R_rect_00"].reshape(3, 3)
    P = c2c[f"P_rect_0{cam}"].reshape(3, 4)
    points = np.fromfile(velo_path, dtype=np.float32).reshape(-1, 4)
    points = points[points[:, 0] >= 0]  # in front of the car
    xyz1 = np.concatenate([points[:, :3], np.ones((len(points), 1), np.float32)], axis=1)
    cam_pts = (P @ R_rect @ T @ xyz1.T).T
    z = cam_pts[:, 2]
    ok = z > 0.1
    u = np.round(cam_pts[ok, 0] / z[ok]).astype(int)
    v = np.round(cam_pts[ok, 1] / z[ok]).astype(int)
    z = z[ok]
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    depth = np.zeros((height, width), np.float32)
    order = np.argsort(-z)  # far first, so the nearest is written last
    depth[v[order], u[order]] = z[order]
    return depth


def parse_eigen_split(lines: Sequence[str]) -> list[tuple[str, int, str]]:
    """Eigen / Eigen-Zhou split lines 'DATE/DRIVE_sync INDEX SIDE' -> [(folder, index, side)]."""
    out = []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[2] not in KITTI_SIDES or not parts[1].isdigit():
            raise DataError(f"split line {n} '{line.strip()}' is not 'DATE/DRIVE_sync INDEX l|r'")
        out.append((parts[0], int(parts[1]), parts[2]))
    return out


def kitti_frames(root: str | Path, split_file: str | Path, with_lidar: bool = False, ext: str = ".png") -> Callable[[int], Frame]:
    """Lazy loader over a KITTI raw tree for the entries of an Eigen split file; returns (loader, length)."""
    import cv2

    root = Path(root)
    entries = parse_eigen_split(Path(split_file).read_text().splitlines())
    if not entries:
        raise DataError(f"split file {split_file} lists no frames")

    def read(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"KITTI image {path} is missing or unreadable")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def load(i: int) -> Frame:
        folder, index, side = entries[i]
        date = folder.split("/")[0]
        cam_dir = root / folder / KITTI_SIDES[side] / "data"
        image = read(cam_dir / f"{index:010d}{ext}")
        prev = read(cam_dir / f"{max(index - 1, 0):010d}{ext}")
        nxt_path = cam_dir / f"{index + 1:010d}{ext}"
        nxt = read(nxt_path) if nxt_path.is_file() else image
        cam = 2 if side == "l" else 3
        P = read_kitti_calib(root / date / "calib_cam_to_cam.txt")[f"P_rect_0{cam}"].reshape(3, 4)
        depth = None
        if with_lidar:
            depth = kitti_lidar_depth(root / folder / "velodyne_points" / "data" / f"{index:010d}.bin",
                                      root / date, cam, image.shape[0], image.shape[1])
        return Frame(image=image, prev=prev, next=nxt, K=P[:, :3], depth=depth, name=f"{folder} {index} {side}")

    load.length = len(entries)  # type: ignore[attr-defined]
    return load


# --------------------------------------------------------------------------- nuScenes
def nuscenes_frames(root: str | Path, version: str = "v1.0-mini", channel: str = "CAM_FRONT") -> Callable[[int], Frame]:
    """Key-frame images of ``channel`` with their previous/next sweeps (12 Hz) from the v1.0 JSON tables."""
    import cv2

    root = Path(root)
    table_dir = root / version

    def table(name: str) -> list[dict]:
        path = table_dir / f"{name}.json"
        if not path.is_file():
            raise DataError(f"nuScenes table {path} does not exist (is {root} a nuScenes root with {version}/?)")
        return json.loads(path.read_text())

    sensors = {s["token"]: s for s in table("sensor")}
    calib = {c["token"]: c for c in table("calibrated_sensor")}
    sample_data = {d["token"]: d for d in table("sample_data")}
    keyframes = []
    for d in sample_data.values():
        c = calib[d["calibrated_sensor_token"]]
        if sensors[c["sensor_token"]]["channel"] == channel and d.get("is_key_frame") and d["prev"] and d["next"]:
            keyframes.append(d)
    keyframes.sort(key=lambda d: d["timestamp"])
    if not keyframes:
        raise DataError(f"nuScenes {version} at {root} has no {channel} key frames with both neighbours")

    def read(d: dict) -> np.ndarray:
        image = cv2.imread(str(root / d["filename"]), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"nuScenes image {root / d['filename']} is missing or unreadable")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def load(i: int) -> Frame:
        d = keyframes[i]
        K = np.array(calib[d["calibrated_sensor_token"]]["camera_intrinsic"], dtype=np.float64)
        return Frame(image=read(d), prev=read(sample_data[d["prev"]]), next=read(sample_data[d["next"]]), K=K,
                     name=d["token"])

    load.length = len(keyframes)  # type: ignore[attr-defined]
    return load


# --------------------------------------------------------------------------- Oxford RobotCar
def robotcar_frames(root: str | Path, intrinsics: Sequence[float], camera: str = "stereo/left",
                    crop_bottom: int = 160) -> Callable[[int], Frame]:
    """Bayer (GBRG) images of one RobotCar traversal folder, consecutive frames as neighbours.

    intrinsics: (fx, fy, cx, cy) of the camera (the SDK's models/stereo_narrow_left.txt first line).
    crop_bottom: rows cut off the bottom (the car's bonnet; md4all/SSD crop it before resizing).
    """
    import cv2

    root = Path(root)
    folder = root / camera
    stamps_file = root / "stereo.timestamps"
    if stamps_file.is_file():
        stamps = [int(line.split()[0]) for line in stamps_file.read_text().splitlines() if line.strip()]
        paths = [folder / f"{s}.png" for s in stamps if (folder / f"{s}.png").is_file()]
    else:
        paths = sorted(folder.glob("*.png"))
    if len(paths) < 3:
        raise DataError(f"RobotCar folder {folder} has {len(paths)} images; self-supervision needs at least 3")
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])

    def read(path: Path) -> np.ndarray:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DataError(f"RobotCar image {path} is missing or unreadable")
        rgb = cv2.cvtColor(raw, cv2.COLOR_BayerGB2RGB) if raw.ndim == 2 else cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
        return rgb[: rgb.shape[0] - crop_bottom] if crop_bottom else rgb

    def load(i: int) -> Frame:
        j = i + 1
        return Frame(image=read(paths[j]), prev=read(paths[j - 1]), next=read(paths[j + 1]), K=K, name=paths[j].name)

    load.length = len(paths) - 2  # type: ignore[attr-defined]
    return load


# --------------------------------------------------------------------------- translated datasets (GDT)
def attach_translations(frames: list[Frame], manifest: str | Path) -> list[Frame]:
    """Add translated images from a GDT output folder's manifest (matched by the frame's ``name``)."""
    import cv2

    manifest = Path(manifest)
    by_name = {f.name: f for f in frames}
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        frame = by_name.get(entry["source"])
        if frame is None:
            continue
        image = cv2.imread(str(manifest.parent / entry["output"]), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"translated image {manifest.parent / entry['output']} listed in {manifest} is unreadable")
        frame.translated[entry["condition"]] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return frames


def build_dataset(cfg: dict, progress: bool = True) -> SequenceDataset:
    """A SequenceDataset from a config's ``data`` section (see training/README.md for the keys)."""
    kind = cfg.get("source", "synthetic")
    size = tuple(cfg.get("size", (112, 196)))
    conditions = cfg.get("conditions", [])
    p = float(cfg.get("translate_probability", 0.0))
    if kind == "synthetic":
        seeds = range(int(cfg.get("seed_start", 0)), int(cfg.get("seed_start", 0)) + int(cfg.get("sequences", 8)))
        frames = synthetic_frames(seeds, int(cfg.get("render_width", size[1])), int(cfg.get("render_height", size[0])),
                                  int(cfg.get("frames_per_sequence", 1)), float(cfg.get("speed", 10.0)),
                                  float(cfg.get("fps", 10.0)), conditions, progress=progress)
        return SequenceDataset(frames, size, conditions=conditions, translate_probability=p)
    if kind == "bag":
        frames = []
        for bag in cfg["bags"]:
            frames += bag_frames(bag, cfg.get("image_topic", "/camera/image_raw"),
                                 cfg.get("info_topic", "/camera/camera_info"), int(cfg.get("stride", 1)),
                                 cfg.get("max_frames"), progress)
        if cfg.get("manifest"):
            attach_translations(frames, cfg["manifest"])
        return SequenceDataset(frames, size, conditions=conditions, translate_probability=p)
    if kind == "kitti":
        loader = kitti_frames(cfg["root"], cfg["split_file"], bool(cfg.get("with_lidar", False)))
    elif kind == "nuscenes":
        loader = nuscenes_frames(cfg["root"], cfg.get("version", "v1.0-mini"), cfg.get("channel", "CAM_FRONT"))
    elif kind == "robotcar":
        loader = robotcar_frames(cfg["root"], cfg["intrinsics"], cfg.get("camera", "stereo/left"),
                                 int(cfg.get("crop_bottom", 160)))
    else:
        raise DataError(f"data source '{kind}' is not one of synthetic, bag, kitti, nuscenes, robotcar")
    return SequenceDataset(loader, size, length=loader.length, conditions=conditions, translate_probability=p)
