"""From a bag to evaluation frames: topic resolution, time synchronisation, pose, ground truth.

``iter_frames`` reads a bag twice: once for /tf and /tf_static (a small TF tree), then once in time
order for the camera and ground-truth topics, joining each image with the camera_info, depth, LiDAR
and mask messages nearest to its header stamp. Memory stays bounded: messages are dropped from the
join buffers as soon as no later image can use them.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..geometry.camera import CameraModelError, PinholeCamera
from ..geometry.extrinsics import (PoseError, check_ground_pose, fit_ground_plane, pose_from_ground_plane,
                                   pose_from_static)
from ..geometry.tf_tree import TfLookupError, TfTree
from . import bag_io
from .bag_io import BagError, BagReader
from .ground_truth import GroundTruthError, agreement, depth_from_image, lidar_depth

# Bag custom_data keys our converters write so a bag replays with no topic arguments.
HINT_PREFIX = "depth_prior."
TF_TOPICS = ("/tf", "/tf_static")
POSE_SOURCES = ("tf", "static", "lidar")
GT_SOURCES = ("auto", "depth", "lidar", "none")


@dataclass
class ReplayTopics:
    """Topic names; None = take the bag's hint (custom_data) or a unique topic of the right type."""

    image: str | None = None
    camera_info: str | None = None
    gt_depth: str | None = None
    lidar: str | None = None
    road_mask: str | None = None
    labels: str | None = None


@dataclass
class FrameOptions:
    topics: ReplayTopics = field(default_factory=ReplayTopics)
    ground_frame: str | None = None       # None: bag hint, else "base_footprint"
    pose: str = "tf"                      # tf | static | lidar (ground plane fitted to each frame's LiDAR)
    camera_height: float = 1.5            # static pose
    camera_pitch_deg: float = 0.0
    camera_roll_deg: float = 0.0
    gt_source: str = "auto"               # auto (depth topic, else LiDAR) | depth | lidar | none
    fixed_frame: str | None = None        # LiDAR motion compensation through this world-fixed frame
                                          # (None: the bag's hint; "none": no compensation)
    sync_tolerance: float = 0.05          # s between an image and its depth/LiDAR/mask messages
    lidar_min_depth: float = 0.1
    max_frames: int | None = None         # per bag
    stride: int = 1                       # use every n-th image
    tf_max_extrapolation: float = 0.5

    def __post_init__(self) -> None:
        if self.pose not in POSE_SOURCES:
            raise ValueError(f"pose source '{self.pose}' is not one of {', '.join(POSE_SOURCES)}")
        if self.gt_source not in GT_SOURCES:
            raise ValueError(f"ground-truth source '{self.gt_source}' is not one of {', '.join(GT_SOURCES)}")
        if self.stride < 1:
            raise ValueError("frame stride must be at least 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"at most {self.max_frames} frames would replay nothing; give at least 1")
        if not 0.0 <= self.sync_tolerance <= 60.0:  # also refuses NaN
            raise ValueError(f"sync tolerance {self.sync_tolerance} s must be between 0 and 60 s")


@dataclass
class ResolvedTopics:
    image: str
    image_type: str
    camera_info: str
    gt_depth: str | None
    lidar: str | None
    road_mask: str | None
    labels: str | None
    ground_frame: str
    fixed_frame: str | None = None


@dataclass
class Frame:
    """One camera frame ready for a pipeline and the metrics.

    image: uint8 RGB (H, W, 3); gt: float32 (H, W) metres or None; road: bool (H, W) or None
    (from the labels or road-mask topic); road_mask_input: what a node subscribed to road_mask would get.
    """

    bag: str
    condition: str
    index: int
    stamp_ns: int
    frame_id: str
    image: np.ndarray
    camera: PinholeCamera
    camera_info: object
    T_ground_from_camera: np.ndarray
    gt: np.ndarray | None
    gt_source: str
    gt_agreement: float | None
    road: np.ndarray | None
    road_mask_input: np.ndarray | None
    lidar_points: int = 0
    bag_path: str = ""


@dataclass(frozen=True)
class LostFrame:
    """A frame a damaged bag record took away: its image, or a message it is joined with, is unreadable."""

    bag: str
    condition: str
    index: int
    stamp_ns: int
    reason: str


class FrameSink:
    """Where iter_frames reports what a bag's damage cost (the replay's Recorder is one)."""

    def lost(self, frame: LostFrame) -> None:
        """A frame that could not be built from the bag."""

    def bag_checked(self, bag_path: str, integrity) -> None:
        """The bag's BagIntegrity, when it is opened and again when reading ends."""


# --------------------------------------------------------------------------- topic resolution
def bag_hints(bag: BagReader) -> dict[str, str]:
    return {k[len(HINT_PREFIX):]: v for k, v in bag.custom_data.items() if k.startswith(HINT_PREFIX)}


def resolve_topics(bag: BagReader, options: FrameOptions) -> ResolvedTopics:
    """Topic names for this bag; BagError (one sentence) when a required one is missing or ambiguous."""
    hints = bag_hints(bag)
    topics = bag.topics
    t = options.topics

    def pick(name: str | None, hint_key: str):
        return name if name else (hints.get(hint_key) or None)

    image = pick(t.image, "image_topic")
    if image is None:
        candidates = [n for n, s in topics.items() if s.msgtype in bag_io.IMAGE_TYPES
                      and not any(w in n.lower() for w in ("depth", "mask", "label", "seg", "prior"))]
        if len(candidates) != 1:
            listed = ", ".join(candidates) or "none"
            raise BagError(f"bag {bag.path}: choose the camera image topic with --image-topic "
                           f"(image topics found: {listed})")
        image = candidates[0]
    image_type = bag.require(image, "camera image", bag_io.IMAGE_TYPES).msgtype

    info = pick(t.camera_info, "camera_info_topic")
    if info is None:
        base = image.rsplit("/", 1)[0]
        if image.endswith("/compressed"):
            base = base.rsplit("/", 1)[0]
        sibling = f"{base}/camera_info"
        infos = bag.find_topics(bag_io.CAMERA_INFO)
        if sibling in topics:
            info = sibling
        elif len(infos) == 1:
            info = infos[0]
        else:
            raise BagError(f"bag {bag.path} has no camera_info for '{image}' (CameraInfo topics: "
                           f"{', '.join(infos) or 'none'}); depth replay needs the intrinsics, "
                           "pass --camera-info-topic")
    if info not in topics:
        infos = bag.find_topics(bag_io.CAMERA_INFO)
        raise BagError(f"bag {bag.path} has no camera_info topic '{info}' (CameraInfo topics: "
                       f"{', '.join(infos) or 'none'}); depth replay needs the intrinsics, pass --camera-info-topic")
    bag.require(info, "camera_info", (bag_io.CAMERA_INFO,))

    gt_depth = pick(t.gt_depth, "gt_topic")
    lidar = pick(t.lidar, "lidar_topic")
    if lidar is None and t.gt_depth is None and options.gt_source in ("auto", "lidar"):
        clouds = bag.find_topics(bag_io.POINT_CLOUD2)
        lidar = clouds[0] if len(clouds) == 1 else None
    if options.gt_source == "depth" and gt_depth is None:
        raise BagError(f"bag {bag.path}: --gt-source depth needs --gt-topic (a 32FC1/16UC1 depth image topic)")
    if options.gt_source == "lidar" and lidar is None:
        raise BagError(f"bag {bag.path}: --gt-source lidar needs --lidar-topic (a PointCloud2 topic)")
    if options.gt_source == "none":
        gt_depth = lidar = None
    # Explicitly named (or hinted) topics must exist: a typo should not silently drop ground truth.
    if gt_depth is not None:
        bag.require(gt_depth, "ground-truth depth", (bag_io.IMAGE,))
    if lidar is not None:
        bag.require(lidar, "LiDAR", (bag_io.POINT_CLOUD2,))
    road_mask = pick(t.road_mask, "road_mask_topic")
    labels = pick(t.labels, "labels_topic")
    if road_mask is not None:
        if t.road_mask is None and road_mask not in topics:
            road_mask = None  # a hint for an optional topic the bag does not carry
        else:
            bag.require(road_mask, "road mask", (bag_io.IMAGE,))
    if labels is not None:
        if t.labels is None and labels not in topics:
            labels = None
        else:
            bag.require(labels, "labels", (bag_io.IMAGE,))
    ground = options.ground_frame or hints.get("ground_frame") or "base_footprint"
    fixed = options.fixed_frame if options.fixed_frame is not None else hints.get("fixed_frame")
    fixed = None if fixed in ("", "none") else fixed
    return ResolvedTopics(image, image_type, info, gt_depth, lidar, road_mask, labels, ground, fixed)


def bag_condition(bag: BagReader) -> str:
    hints = bag_hints(bag)
    return hints.get("condition") or bag.custom_data.get("condition") or Path(bag.path).name


# --------------------------------------------------------------------------- tf
def read_tf_tree(bag: BagReader, max_extrapolation: float = 0.5) -> TfTree:
    tree = TfTree(max_extrapolation=max_extrapolation)
    topics = [t for t, s in bag.topics.items() if s.msgtype == bag_io.TF_MESSAGE]
    for m in bag.messages(topics):
        tree.add_tf_message(m.msg, static=m.topic.endswith("tf_static"))
    return tree


# --------------------------------------------------------------------------- synchronisation
class StampJoiner:
    """Joins each image with the nearest-stamped message of every other stream.

    Feed messages in log-time order with ``push``; ``pop_ready`` yields (image, {role: message or None})
    once every stream has a message stamped after the image or the log time is ``window_ns`` past it.
    ``tolerance_ns`` bounds the stamp difference for a match; None accepts any distance (camera_info).
    """

    def __init__(self, roles: dict[str, int | None], window_ns: int = 500_000_000):
        self.roles = dict(roles)
        self.window_ns = window_ns
        self.images: deque = deque()   # (stamp, log, msg)
        self.buffers = {role: deque() for role in roles}  # (stamp, msg), in arrival order
        self.now = 0

    def push_image(self, stamp: int, log_ns: int, msg) -> None:
        self.images.append((stamp, log_ns, msg))
        self.now = max(self.now, log_ns)

    def push(self, role: str, stamp: int, log_ns: int, msg) -> None:
        self.buffers[role].append((stamp, msg))
        self.now = max(self.now, log_ns)

    def _decided(self, stamp: int, log_ns: int) -> bool:
        if self.now - log_ns > self.window_ns:
            return True
        return all(any(s >= stamp for s, _ in buf) for buf in self.buffers.values())

    def pop_ready(self, flush: bool = False) -> Iterator[tuple[tuple, dict]]:
        while self.images and (flush or self._decided(self.images[0][0], self.images[0][1])):
            stamp, log_ns, msg = self.images.popleft()
            matched = {}
            for role, buf in self.buffers.items():
                tol = self.roles[role]
                best = min(buf, key=lambda item: abs(item[0] - stamp), default=None)
                ok = best is not None and (tol is None or abs(best[0] - stamp) <= tol)
                matched[role] = best[1] if ok else None
                # Keep the latest message at or before this image (a later image may still want it,
                # e.g. a camera_info published once) and everything after it.
                keep_from = 0
                for i, (s, _) in enumerate(buf):
                    if s <= stamp:
                        keep_from = i
                for _ in range(keep_from):
                    buf.popleft()
            yield (stamp, log_ns, msg), matched


# --------------------------------------------------------------------------- frames
def iter_frames(bag_path: str | Path, options: FrameOptions, condition: str | None = None,
                stats: dict | None = None, sink: FrameSink | None = None) -> Iterator[Frame]:
    """Frames of one bag in stamp order. BagError for unreadable bags, missing topics or poses.

    A frame whose image, or whose camera_info, ground truth, mask or tf within the sync tolerance,
    sits in a damaged record is not built: it goes to ``sink.lost`` with the reason (it still counts
    for ``stride`` and ``max_frames``).
    """
    stats = stats if stats is not None else {}
    sink = sink or FrameSink()
    with BagReader(bag_path) as bag:
        sink.bag_checked(str(bag_path), bag.integrity)
        try:
            yield from _frames(bag, options, condition, stats, sink)
        finally:
            sink.bag_checked(str(bag_path), bag.integrity)


class _DamagedImage:
    def __init__(self, reason: str):
        self.reason = reason


def _frames(bag: BagReader, options: FrameOptions, condition: str | None, stats: dict,
            sink: FrameSink) -> Iterator[Frame]:
    topics = resolve_topics(bag, options)
    cond = condition or bag_condition(bag)
    stats.update(topics=topics, condition=cond, images_in_bag=bag.topics[topics.image].count)
    tree = read_tf_tree(bag, options.tf_max_extrapolation)
    tol = int(options.sync_tolerance * 1e9)
    roles: dict[str, int | None] = {"camera_info": None}
    role_topics = {topics.camera_info: "camera_info"}
    for role, name in (("gt_depth", topics.gt_depth), ("lidar", topics.lidar), ("road_mask", topics.road_mask),
                       ("labels", topics.labels)):
        if name is not None:
            roles[role] = tol
            role_topics[name] = role
    joiner = StampJoiner(roles)
    wanted = [topics.image] + list(role_topics)
    partners = set(role_topics) | set(bag.find_topics(bag_io.TF_MESSAGE))
    builder = _FrameBuilder(bag, topics, tree, options, cond, stats)

    def joined():
        """(stamp, image msg, matched) in order: as soon as each image's partners are known, then the rest."""
        for m in bag.messages(wanted, with_damage=True):
            if m.damage is not None:  # a lost partner is found through bag.integrity below
                if m.topic == topics.image:
                    joiner.push_image(m.log_ns, m.log_ns, _DamagedImage(m.damage))
                continue
            if m.topic == topics.image:
                joiner.push_image(m.stamp_ns, m.log_ns, m.msg)
            else:
                joiner.push(role_topics[m.topic], m.stamp_ns, m.log_ns, m.msg)
            yield from joiner.pop_ready()
        yield from joiner.pop_ready(flush=True)

    produced = 0
    for seen, ((stamp, log_ns, msg), matched) in enumerate(joined()):
        if seen % options.stride:
            continue
        if isinstance(msg, _DamagedImage):
            reason = msg.reason
        else:
            reason = next((f"{d.topic} near this frame is unreadable: {d.reason}" for d in bag.integrity.damaged
                           if d.topic in partners and (d.near(stamp, tol) or d.near(log_ns, tol))), None)
        if reason is None:
            yield builder.build(produced, stamp, msg, matched)
        else:
            sink.lost(LostFrame(str(Path(bag.path).name), cond, produced, stamp, reason))
        produced += 1
        if options.max_frames is not None and produced >= options.max_frames:
            return


class _FrameBuilder:
    """Decodes one joined set of messages into a Frame (image, camera, pose, ground truth, masks)."""

    def __init__(self, bag: BagReader, topics: ResolvedTopics, tree: TfTree, options: FrameOptions,
                 condition: str, stats: dict):
        self.bag, self.topics, self.tree, self.options, self.condition = bag, topics, tree, options, condition
        self.stats = stats
        self._camera_key = None
        self._camera = None

    def camera(self, info) -> PinholeCamera:
        f = bag_io.camera_info_fields(info)
        key = (tuple(f["k"]), tuple(f["d"]), f["width"], f["height"], f["distortion_model"])
        if key != self._camera_key:
            try:
                self._camera = bag_io.camera_from_info(info)
            except CameraModelError as exc:
                raise BagError(f"bag {self.bag.path}: camera_info on '{self.topics.camera_info}' is unusable: "
                               f"{exc}") from exc
            self._camera_key = key
        return self._camera

    def pose(self, frame_id: str, stamp: int, lidar_xyz: np.ndarray | None, T_cam_lidar: np.ndarray | None):
        o = self.options
        if o.pose == "static":
            T = pose_from_static(o.camera_height, math.radians(o.camera_pitch_deg), math.radians(o.camera_roll_deg))
        elif o.pose == "lidar":
            if lidar_xyz is None or T_cam_lidar is None:
                raise BagError(f"bag {self.bag.path}: --pose lidar needs a LiDAR scan for every frame "
                               f"(none near stamp {stamp / 1e9:.3f} s)")
            try:
                T = pose_from_ground_plane(fit_ground_plane(lidar_xyz, threshold=0.1), T_cam_lidar)
            except PoseError as exc:
                raise BagError(f"bag {self.bag.path}: the LiDAR ground fit failed at {stamp / 1e9:.3f} s: "
                               f"{exc}") from exc
        else:
            ground = self.topics.ground_frame
            try:
                T = self.tree.lookup(ground, frame_id, stamp)
            except TfLookupError as exc:
                raise BagError(f"bag {self.bag.path}: no camera pose above the road from tf ({exc}); set "
                               f"--ground-frame, or use --pose static with --camera-height, or --pose lidar") from exc
        try:
            check_ground_pose(T)
        except PoseError as exc:
            raise BagError(f"bag {self.bag.path}: the camera pose at {stamp / 1e9:.3f} s is unusable: {exc}") from exc
        return T

    def build(self, index: int, stamp: int, image_msg, matched: dict) -> Frame:
        topics = self.topics
        image = bag_io.rgb_image(image_msg, topics.image_type)
        info = matched.get("camera_info")
        if info is None:
            raise BagError(f"bag {self.bag.path} has no camera_info message on '{topics.camera_info}'")
        camera = self.camera(info)
        if image.shape[:2] != (camera.height, camera.width):
            raise BagError(f"bag {self.bag.path}: images on '{topics.image}' are {image.shape[1]}x{image.shape[0]} "
                           f"but camera_info says {camera.width}x{camera.height}")
        frame_id = str(image_msg.header.frame_id)

        lidar_xyz = T_cam_lidar = None
        lidar_gt = None
        cloud = matched.get("lidar")
        if cloud is not None:
            lidar_xyz = bag_io.pointcloud2_to_xyz(cloud)
            lidar_frame = str(cloud.header.frame_id)
            lidar_stamp = bag_io.stamp_to_ns(cloud.header.stamp)
            try:
                if topics.fixed_frame:
                    T_cam_lidar = self.tree.lookup_between(frame_id, stamp, lidar_frame, lidar_stamp,
                                                           topics.fixed_frame)
                else:
                    T_cam_lidar = self.tree.lookup(frame_id, lidar_frame, lidar_stamp)
            except TfLookupError as exc:
                raise BagError(f"bag {self.bag.path}: cannot place the LiDAR in the camera image ({exc})") from exc
            lidar_gt = lidar_depth(lidar_xyz, T_cam_lidar, camera, self.options.lidar_min_depth)
        T = self.pose(frame_id, stamp, lidar_xyz, T_cam_lidar)

        depth_gt = None
        if matched.get("gt_depth") is not None:
            msg = matched["gt_depth"]
            try:
                depth_gt = depth_from_image(bag_io.image_to_numpy(msg), str(msg.encoding))
            except GroundTruthError as exc:
                raise BagError(f"bag {self.bag.path}: ground truth on '{topics.gt_depth}': {exc}") from exc
            if depth_gt.shape != image.shape[:2]:
                raise BagError(f"bag {self.bag.path}: ground-truth depth is {depth_gt.shape[1]}x{depth_gt.shape[0]}, "
                               f"the image {image.shape[1]}x{image.shape[0]}")

        src = self.options.gt_source
        gt, gt_source = None, ""
        if depth_gt is not None and src in ("auto", "depth"):
            gt, gt_source = depth_gt, "depth"
        elif lidar_gt is not None and src in ("auto", "lidar"):
            gt, gt_source = lidar_gt, "lidar"
        gt_check = None
        if depth_gt is not None and lidar_gt is not None:
            gt_check, _ = agreement(lidar_gt, depth_gt)

        road = road_input = None
        if matched.get("road_mask") is not None:
            road_input = bag_io.image_to_numpy(matched["road_mask"]) != 0
            road = road_input
        if matched.get("labels") is not None:
            from ..synth.labels import Label

            road = bag_io.image_to_numpy(matched["labels"]) == int(Label.ROAD)
        for name, mask in (("road mask", road_input), ("labels", road)):
            if mask is not None and mask.shape != image.shape[:2]:
                raise BagError(f"bag {self.bag.path}: the {name} image is {mask.shape[1]}x{mask.shape[0]}, "
                               f"the camera image {image.shape[1]}x{image.shape[0]}")
        return Frame(str(Path(self.bag.path).name), self.condition, index, stamp, frame_id, image, camera, info, T,
                     gt, gt_source, gt_check, road, road_input,
                     lidar_points=0 if lidar_xyz is None else int(len(lidar_xyz)), bag_path=str(self.bag.path))


def image_poses(bag_path: str | Path, options: FrameOptions) -> list[np.ndarray]:
    """T_ground_from_camera at every image stamp of a bag, from tf (no image decoding); for the
    static and LiDAR pose sources, the first frame's pose."""
    if options.pose != "tf":
        first = next(iter_frames(bag_path, FrameOptions(**{**options.__dict__, "max_frames": 1})), None)
        return [] if first is None else [first.T_ground_from_camera]
    with BagReader(bag_path) as bag:
        topics = resolve_topics(bag, options)
        tree = read_tf_tree(bag, options.tf_max_extrapolation)
        poses = []
        for m in bag.messages([topics.image]):
            try:
                poses.append(tree.lookup(topics.ground_frame, str(m.msg.header.frame_id), m.stamp_ns))
            except TfLookupError as exc:
                raise BagError(f"bag {bag.path}: no camera pose above the road from tf ({exc})") from exc
        return poses
