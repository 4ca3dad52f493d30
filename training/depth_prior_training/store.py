"""A recording made ready for training in one streamed pass, with memory bounded whatever its length.

``build_store`` reads a stream (``streams``) once, frame by frame:
  1. keeps the frames where the camera moved since the previous frame (``motion``: odometry, else image
     motion); static frames are dropped;
  2. holds out every ``holdout_every``-th kept frame for validation (never a training target or neighbour);
  3. gives every other kept frame its temporal neighbours: the nearest kept training frames before and
     after it, of the same recording, at most ``max_gap_s`` and ``motion.max_offset`` frames away, that
     moved ``motion.min_parallax`` away from it. A frame that lacks one (a sequence end, the edge of a
     standstill) is no training target: nothing is ever paired with itself;
  4. writes the kept images, resized to the training size, to an on-disk uint8 array (``images.u8``,
     memory-mapped when training: RAM does not grow with the recording);
  5. stores each held-out frame's LiDAR ground truth sparsely (``validation/NNNNNN.npz``: rows, cols,
     z at the native size, with K, size and the ground pose for the prior);
  6. keeps every frame's camera pose above the road (the mount pose: tf, or the drive's one ground fit)
     and, with a road segmenter (``StoreConfig.segmenter``), its road mask at the store size
     (``road.u8``): together the embodied ground prior a teacher may be weakly supervised with.
Memory while building: the last ``max_offset`` frames' small grey images, whatever the length.
"""
from __future__ import annotations

import json
import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .data import Frame, resize_image, scale_intrinsics
from .motion import Motion, MotionConfig, MotionProbe
from .streams import RawFrame

STORE_VERSION = 3


@dataclass
class StoreConfig:
    size: tuple[int, int]
    holdout_every: int = 5            # every n-th kept frame is held out (0: none)
    max_gap_s: float = 1.0            # neighbours at most this far from their target in time
    motion: MotionConfig | None = None
    segmenter: object | None = None   # a depth_prior_ros road segmenter: writes road.u8 (road masks)


@dataclass
class StoredFrame:
    name: str
    stamp_ns: int
    segment: str
    K: np.ndarray                     # at the store size
    held_out: bool
    slot: int                         # row in images.u8
    T_ground: np.ndarray | None = None  # T_ground_from_camera (4, 4), None when the source has no pose


class FrameStore:
    """A built store (see the module docstring): frames, training triplets and validation frames."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        index = json.loads((self.folder / "index.json").read_text())
        self.size = tuple(index["size"])
        self.stats = index["stats"]
        self.frames = [StoredFrame(f["name"], f["stamp_ns"], f["segment"], np.array(f["K"]), f["held_out"], f["slot"],
                                   None if f.get("T_ground") is None else np.array(f["T_ground"]))
                       for f in index["frames"]]
        H, W = self.size
        n = len(self.frames)
        self.images = np.memmap(self.folder / "images.u8", np.uint8, "r", shape=(n, H, W, 3)) if n else None
        road = self.folder / "road.u8"
        self.road = np.memmap(road, np.uint8, "r", shape=(n, H, W)) if n and road.is_file() else None
        self.stereo = None
        self.T_stereo = np.array(index["T_stereo"]) if index.get("T_stereo") is not None else None
        if self.T_stereo is not None:
            self.stereo = np.memmap(self.folder / "stereo.u8", np.uint8, "r", shape=(n, H, W, 3))
        self.triplets = [tuple(t) for t in index["triplets"]]

    @property
    def validation_frames(self) -> list[StoredFrame]:
        return [f for f in self.frames if f.held_out]

    def image(self, frame: StoredFrame) -> np.ndarray:
        return np.array(self.images[frame.slot])  # a copy: torch wants writable arrays

    def validation_data(self, frame: StoredFrame) -> dict | None:
        """{rows, cols, z, K, height, width, T_ground_from_camera[, road]} of a held-out frame (None without
        LiDAR); road: bool (height, width) road mask when the store was built with a segmenter."""
        path = self.folder / "validation" / f"{frame.slot:06d}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if "road" in data:
            h, w = int(data["height"]), int(data["width"])
            data["road"] = np.unpackbits(data["road"], count=h * w).reshape(h, w).astype(bool)
        return data

    def road_prior(self, frame: StoredFrame, max_depth: float = 80.0) -> np.ndarray | None:
        """The embodied prior of the frame at the store size (the node's ``scene_prior`` from its mount
        pose, intrinsics and road mask): float32 (3, H, W) depth (m), 0 where unknown, in layers
        [road pixels, upright surfaces standing on the road's edge, ground plane below the horizon
        (an upper bound for anything standing on the road)]; None without road masks or pose."""
        if self.road is None or frame.T_ground is None:
            return None
        from depth_prior_ros.geometry.camera import PinholeCamera
        from depth_prior_ros.prior.scene import SOURCE_ROAD, SOURCE_VERTICAL, scene_prior

        H, W = self.size
        prior = scene_prior(PinholeCamera(K=frame.K, width=W, height=H), frame.T_ground,
                            np.asarray(self.road[frame.slot], bool), mode="scene", max_depth=max_depth)
        depth = np.nan_to_num(prior.depth, nan=0.0)
        return np.stack([np.where(prior.source == SOURCE_ROAD, depth, 0.0),
                         np.where(prior.source == SOURCE_VERTICAL, depth, 0.0),
                         np.nan_to_num(prior.ground, nan=0.0)]).astype(np.float32)

    def training_frame(self, i: int) -> Frame:
        """Triplet ``i`` as a training Frame (images already at the store size)."""
        prev, target, nxt = (self.frames[j] for j in self.triplets[i])
        stereo = np.array(self.stereo[target.slot]) if self.stereo is not None else None
        return Frame(image=self.image(target), prev=self.image(prev), next=self.image(nxt), K=target.K,
                     name=target.name, stereo=stereo, T_stereo=self.T_stereo, prior_depth=self.road_prior(target))

    def __len__(self) -> int:
        return len(self.triplets)


def build_store(stream: Iterable[RawFrame], config: StoreConfig, folder: str | Path, progress: bool = True,
                description: str = "read") -> FrameStore:
    """Stream ``stream`` once into ``folder`` (replaced) and open it (see the module docstring)."""
    import cv2
    from tqdm import tqdm

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "validation").mkdir(parents=True)
    size = (int(config.size[0]), int(config.size[1]))
    motion = Motion(config.motion)
    max_offset = motion.config.max_offset
    records: list[dict] = []
    recent: deque = deque()            # (slot, raw index, probe) of the last kept frames
    neighbours: dict[int, list] = {}   # slot -> [prev slot, next slot] while the frame may still get them
    previous: tuple[str, MotionProbe] | None = None
    T_stereo, seen = None, 0
    road = open(tmp / "road.u8", "wb") if config.segmenter is not None else None
    with open(tmp / "images.u8", "wb") as images, open(tmp / "stereo.u8", "wb") as stereo:
        for raw_index, raw in enumerate(tqdm(stream, desc=description, unit="frame", disable=not progress)):
            seen += 1
            probe = motion.probe(raw.image, raw.odometry)
            moved = previous is not None and previous[0] == raw.segment and motion.moved(previous[1], probe)
            previous = (raw.segment, probe)
            if not moved:
                continue
            slot = len(records)
            held = bool(config.holdout_every) and slot % config.holdout_every == config.holdout_every - 1
            images.write(np.ascontiguousarray(resize_image(raw.image, size)).tobytes())
            if raw.stereo is not None:
                stereo.write(np.ascontiguousarray(resize_image(raw.stereo, size)).tobytes())
                T_stereo = raw.T_stereo_from_camera
            mask = None
            if road is not None:  # segmented at the native size (the segmenter's own resolution), stored small
                mask = config.segmenter.segment(raw.image).road.astype(np.uint8)
                road.write(np.ascontiguousarray(cv2.resize(mask, size[::-1], interpolation=cv2.INTER_NEAREST)).tobytes())
            K = scale_intrinsics(raw.K, raw.image.shape[:2], size)
            T_ground = raw.T_ground_from_camera
            records.append({"name": raw.name, "stamp_ns": int(raw.stamp_ns), "segment": raw.segment,
                            "K": K.tolist(), "held_out": held, "slot": slot,
                            "T_ground": None if T_ground is None or not np.isfinite(T_ground).all()
                            else np.asarray(T_ground, float).tolist()})
            if held and raw.gt is not None:
                save_validation(tmp / "validation" / f"{slot:06d}.npz", raw, mask)
            while recent and (raw_index - recent[0][1] > max_offset or records[recent[0][0]]["segment"] != raw.segment
                              or raw.stamp_ns - records[recent[0][0]]["stamp_ns"] > config.max_gap_s * 1e9):
                recent.popleft()
            if not held:
                for other, _, other_probe in reversed(recent):  # nearest first
                    if neighbours.get(other, [None, 0])[1] is None and motion.far_enough(other_probe, probe):
                        neighbours[other][1] = slot
                prev = next((o for o, _, p in reversed(recent) if not records[o]["held_out"]
                             and motion.far_enough(probe, p)), None)
                neighbours[slot] = [prev, None]
            recent.append((slot, raw_index, probe))
    if road is not None:
        road.close()
    if T_stereo is None:
        (tmp / "stereo.u8").unlink()
    triplets = [(p, t, n) for t, (p, n) in sorted(neighbours.items()) if p is not None and n is not None]
    held_count = sum(r["held_out"] for r in records)
    stats = {"frames_read": seen, "kept": len(records), "held_out": held_count, "static_dropped": seen - len(records),
             "triplets": len(triplets), "motion": motion.unit or "none"}
    index = {"version": STORE_VERSION, "size": list(size), "max_gap_s": config.max_gap_s, "stats": stats,
             "T_stereo": None if T_stereo is None else np.asarray(T_stereo).tolist(), "frames": records,
             "triplets": triplets}
    (tmp / "index.json").write_text(json.dumps(index))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return FrameStore(folder)


def save_validation(path: Path, raw: RawFrame, road: np.ndarray | None = None) -> None:
    """The held-out frame's LiDAR (sparse), K, size, ground pose and, when segmented, its native road mask."""
    gt = raw.gt()
    rows, cols = np.nonzero(np.isfinite(gt) & (gt > 0))
    T = raw.T_ground_from_camera if raw.T_ground_from_camera is not None else np.full((4, 4), np.nan)
    np.savez(path, rows=rows.astype(np.int32), cols=cols.astype(np.int32), z=gt[rows, cols].astype(np.float32),
             K=np.asarray(raw.K, np.float64), height=np.int32(gt.shape[0]), width=np.int32(gt.shape[1]),
             T_ground_from_camera=np.asarray(T, np.float64),
             **({} if road is None else {"road": np.packbits(road.astype(bool))}))


def sparse_to_dense(data: dict) -> np.ndarray:
    """A validation record -> float32 (H, W) depth, NaN where no LiDAR point landed."""
    out = np.full((int(data["height"]), int(data["width"])), np.nan, np.float32)
    out[data["rows"], data["cols"]] = data["z"]
    return out
