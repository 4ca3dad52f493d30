"""Training sequences: a target frame t with neighbours t-1 and t+1, intrinsics, optional depth.

Every source yields the same sample (a dict of tensors, batch-collatable), at the training size (H, W):

  image      (3, H, W) float32 in [0, 1]  frame t (clean / day-clear)
  prev, next (3, H, W)                    frames t-1, t+1 (for the photometric loss)
  K          (3, 3)                       intrinsics at (H, W)
  depth      (1, H, W)                    ground truth z-depth in metres, 0 = unknown (LiDAR, synthetic)
  translated (3, H, W)                    frame t in an adverse condition (GDT output), or the image
  has_translated  ()  bool                whether ``translated`` is a real translation
  T_prev, T_next (4, 4)                   known T_source_from_target (synthetic sequences), else NaN
  stereo, T_stereo                        the stereo partner of frame t and T_partner_from_target (stereo sources)
  prior_depth (3, H, W)                   frame t's embodied prior (road, upright surfaces, ground-plane
                                          bound; 0 unknown; stores with ``data.road_segmenter``)

Sources: whole recordings through a streamed frame store (``store``: KITTI raw drives, any bag
``depth-prior replay`` reads, synth streams: static frames dropped, every n-th frame held out for
validation), in-memory synthetic sequences (``synth``), and the public layouts KITTI raw + Eigen split
file lists, nuScenes (v1.0 tables) and Oxford RobotCar. Translated frames (GDT manifests) attach to
every source by frame name.
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
    stereo: np.ndarray | None = None
    T_stereo: np.ndarray | None = None
    prior_depth: np.ndarray | None = None  # float32 (3, h, w): embodied prior layers (FrameStore.road_prior)


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
    stereo = {} if frame.stereo is None else {"stereo": img(frame.stereo),
                                              "T_stereo": torch.from_numpy(np.asarray(frame.T_stereo)).float()}
    if frame.prior_depth is not None:
        stereo["prior_depth"] = torch.from_numpy(np.stack([resize_depth(p, size) for p in frame.prior_depth]))
    return {**stereo,
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
    translations: {frame name: {condition: image path}} (``read_manifest``), read when a sample needs one.
    stores: the frame stores behind the frames (their held-out frames are the validation set).
    Randomness comes from ``rng`` passed to ``sample`` so a run is reproducible step by step.
    """

    def __init__(self, frames: Sequence[Frame] | Callable[[int], Frame], size: tuple[int, int],
                 length: int | None = None, conditions: Sequence[str] = (), translate_probability: float = 0.0,
                 translations: dict[str, dict[str, Path]] | None = None, stores: Sequence = ()):
        self._frames = frames
        self.size = (int(size[0]), int(size[1]))
        self._length = len(frames) if length is None else int(length)  # type: ignore[arg-type]
        self.conditions = tuple(conditions)
        self.translate_probability = float(translate_probability)
        self.translations = translations or {}
        self.stores = list(stores)
        if self._length == 0:
            raise DataError("the dataset has no frames (after dropping static frames and sequence ends)")

    def __len__(self) -> int:
        return self._length

    def frame(self, index: int) -> Frame:
        return self._frames(index) if callable(self._frames) else self._frames[index]

    def sample(self, index: int, rng: np.random.Generator | None = None, condition: str | None = None) -> dict:
        frame = self.frame(index)
        if condition is None and rng is not None and self.conditions and rng.random() < self.translate_probability:
            listed = self.translations.get(frame.name, {})
            available = [c for c in self.conditions if c in frame.translated or c in listed]
            condition = available[int(rng.integers(len(available)))] if available else None
        if condition is not None and condition not in frame.translated and condition in self.translations.get(frame.name, {}):
            frame.translated = {**frame.translated, condition: read_rgb(self.translations[frame.name][condition])}
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
    """Lazy loader over a KITTI raw tree for the entries of an Eigen split file; returns (loader, length).

    Entries at a drive's first or last frame (no t-1 or t+1 image) are dropped, never paired with themselves.
    (Whole drives without a split file: ``source: kitti`` with ``drives:``, see ``streams``.)"""
    root = Path(root)
    entries = parse_eigen_split(Path(split_file).read_text().splitlines())
    if not entries:
        raise DataError(f"split file {split_file} lists no frames")

    def cam_dir(folder: str, side: str) -> Path:
        return root / folder / KITTI_SIDES[side] / "data"

    entries = [e for e in entries if all((cam_dir(e[0], e[2]) / f"{e[1] + d:010d}{ext}").is_file() for d in (-1, 1))]
    if not entries:
        raise DataError(f"no entry of {split_file} has both temporal neighbours under {root}")

    def load(i: int) -> Frame:
        folder, index, side = entries[i]
        date = folder.split("/")[0]
        image, prev, nxt = (read_rgb(cam_dir(folder, side) / f"{index + d:010d}{ext}") for d in (0, -1, 1))
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
def read_rgb(path: str | Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"image {path} is missing or unreadable")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_manifest(manifest: str | Path) -> dict[str, dict[str, Path]]:
    """A GDT manifest (JSON lines: source, condition, output) -> {frame name: {condition: image path}}.

    Works for every source: frames are matched by name when a sample asks for a translation."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DataError(f"translation manifest {manifest} does not exist (run depth_prior_training.gdt first)")
    out: dict[str, dict[str, Path]] = {}
    for n, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            out.setdefault(entry["source"], {})[entry["condition"]] = manifest.parent / entry["output"]
        except (ValueError, KeyError):
            raise DataError(f"line {n} of {manifest} is not a GDT manifest entry") from None
    return out


def attach_translations(frames: list[Frame], manifest: str | Path) -> list[Frame]:
    """Read a manifest's translated images into in-memory frames now (small synthetic sets)."""
    index = read_manifest(manifest)
    for frame in frames:
        for condition, path in index.get(frame.name, {}).items():
            frame.translated[condition] = read_rgb(path)
    return frames


def recordings(cfg: dict) -> list[tuple[str, Callable]]:
    """(recording id, stream factory) of a streamed source: ``bags`` for source bag; ``drives`` (or every
    ``*_sync`` drive under ``root``) for source kitti; ``sequences`` seeds for source synthetic_stream."""
    from . import streams

    kind = cfg.get("source")
    if kind == "bag":
        opts = {k: cfg.get(k) for k in ("image_topic", "info_topic", "lidar_topic", "fixed_frame")}
        return [(str(b), lambda b=b: streams.bag_stream(b, **opts, pose=cfg.get("pose", "tf"),
                                                         camera_height=float(cfg.get("camera_height", 1.5)),
                                                         max_frames=cfg.get("max_frames")))
                for b in cfg.get("bags", [])]
    if kind == "kitti":
        drives = cfg.get("drives") or sorted(str(p) for p in Path(cfg.get("root", ".")).glob("*/*_sync"))
        if not drives:
            raise DataError(f"source kitti needs drives: [...] or a root with DATE/DATE_drive_XXXX_sync folders "
                            f"(none under {cfg.get('root', '.')})")
        return [(str(d), lambda d=d: streams.kitti_drive_stream(d, stereo=bool(cfg.get("stereo", False)),
                                                                  max_frames=cfg.get("max_frames")))
                for d in drives]
    seeds = range(int(cfg.get("seed_start", 0)), int(cfg.get("seed_start", 0)) + int(cfg.get("sequences", 1)))
    return [(f"synth_{s}", lambda s=s: streams.synthetic_stream(s, int(cfg.get("frames_per_sequence", 12)),
                                                                 float(cfg.get("speed", 10.0)), float(cfg.get("fps", 10.0)),
                                                                 float(cfg.get("stereo_baseline", 0.0))))
            for s in seeds]


def open_stores(cfg: dict, size: tuple[int, int], cache_dir: str | Path, progress: bool = True) -> list:
    """One frame store per recording, built on first use and reused while the recording and the data
    settings that shape it (size, motion filter, hold-out, gap, stereo) stay the same."""
    import hashlib

    from .motion import MotionConfig
    from .store import FrameStore, StoreConfig, build_store
    from .streams import StreamError

    from .store import STORE_VERSION

    motion = MotionConfig(**cfg.get("motion", {}))
    config = StoreConfig(size=size, holdout_every=int(cfg.get("holdout_every", 5)),
                         max_gap_s=float(cfg.get("max_gap_s", 0.5)), motion=motion)
    road = cfg.get("road_segmenter") or None   # {weights, card}: road masks for the ground-prior loss
    stores = []
    for rec_id, stream in recordings(cfg):
        shaping = json.dumps([rec_id, list(size), config.holdout_every, config.max_gap_s, motion.__dict__,
                              {k: cfg.get(k) for k in ("stereo", "image_topic", "info_topic", "lidar_topic", "pose",
                                                       "camera_height", "max_frames", "frames_per_sequence",
                                                       "stereo_baseline", "speed")}]
                             + ([road] if road else []), sort_keys=True)
        key = hashlib.sha1(shaping.encode()).hexdigest()[:12]
        folder = Path(cache_dir) / f"{Path(rec_id).name}_{size[0]}x{size[1]}_{key}"
        index = folder / "index.json"
        if index.is_file() and json.loads(index.read_text()).get("version") == STORE_VERSION:
            stores.append(FrameStore(folder))
            continue
        if road and config.segmenter is None:
            config.segmenter = road_segmenter(road)
        try:
            stores.append(build_store(stream(), config, folder, progress, description=f"read {Path(rec_id).name}"))
        except StreamError as exc:
            raise DataError(str(exc)) from exc
    return stores


def road_segmenter(spec: dict):
    """``data.road_segmenter: {weights, card}`` -> the node package's road segmenter (OpenVINO, ONNX,
    LiteRT graph or a SegFormer folder); DataError (one sentence) when it cannot be loaded."""
    from depth_prior_ros.models.base import BackendError
    from depth_prior_ros.models.segmentation import load_segmenter

    try:
        return load_segmenter(str(spec["weights"]), str(spec.get("card", "")), device="cpu")
    except (BackendError, KeyError) as exc:
        raise DataError(f"data.road_segmenter {spec} cannot be loaded: {exc}") from exc


def store_dataset(stores: list, size: tuple[int, int], **options) -> SequenceDataset:
    """The training triplets of several frame stores as one dataset."""
    offsets = np.cumsum([0] + [len(s) for s in stores])

    def load(i: int) -> Frame:
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        return stores[k].training_frame(i - int(offsets[k]))

    return SequenceDataset(load, size, length=int(offsets[-1]), stores=stores, **options)


def build_dataset(cfg: dict, progress: bool = True, cache_dir: str | Path | None = None) -> SequenceDataset:
    """A SequenceDataset from a config's ``data`` section (see training/README.md for the keys).

    cache_dir: where streamed sources keep their frame stores (default ``data.cache_dir``, else runs/cache)."""
    kind = cfg.get("source", "synthetic")
    size = tuple(int(v) for v in cfg.get("size", (112, 196)))
    options = {"conditions": cfg.get("conditions", []), "translate_probability": float(cfg.get("translate_probability", 0.0)),
               "translations": read_manifest(cfg["manifest"]) if cfg.get("manifest") else None}
    if kind == "synthetic":
        seeds = range(int(cfg.get("seed_start", 0)), int(cfg.get("seed_start", 0)) + int(cfg.get("sequences", 8)))
        frames = synthetic_frames(seeds, int(cfg.get("render_width", size[1])), int(cfg.get("render_height", size[0])),
                                  int(cfg.get("frames_per_sequence", 1)), float(cfg.get("speed", 10.0)),
                                  float(cfg.get("fps", 10.0)), options["conditions"], progress=progress)
        return SequenceDataset(frames, size, **options)
    if kind in ("bag", "synthetic_stream") or (kind == "kitti" and not cfg.get("split_file")):
        cache = cache_dir or cfg.get("cache_dir") or "runs/cache"
        return store_dataset(open_stores(cfg, size, cache, progress), size, **options)
    if kind == "kitti":
        loader = kitti_frames(cfg["root"], cfg["split_file"], bool(cfg.get("with_lidar", False)))
    elif kind == "nuscenes":
        loader = nuscenes_frames(cfg["root"], cfg.get("version", "v1.0-mini"), cfg.get("channel", "CAM_FRONT"))
    elif kind == "robotcar":
        loader = robotcar_frames(cfg["root"], cfg["intrinsics"], cfg.get("camera", "stereo/left"),
                                 int(cfg.get("crop_bottom", 160)))
    else:
        raise DataError(f"data source '{kind}' is not one of synthetic, synthetic_stream, bag, kitti, nuscenes, robotcar")
    return SequenceDataset(loader, size, length=loader.length, **options)
