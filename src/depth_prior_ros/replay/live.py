"""Live replay: publish a bag's frames through rclpy to a ``depth_node`` subprocess and score its output.

For each backend one node is started (``python -m depth_prior_ros.ros.depth_node``) in its own
namespace with a generated params file. This process publishes ``image``, ``camera_info`` (and
``road_mask``) at the recorded rate or a fixed one, listens to ``depth`` and ``/diagnostics``, and
matches outputs to inputs by header stamp (the node keeps the input's stamp). End-to-end latency is
"image published" -> "depth received" on one monotonic clock; a frame whose depth never comes within
``frame_timeout`` counts as dropped.

The node runs its shipped defaults (best-effort input, ``use_tf: true``) and this process publishes the
bag's tf as a robot does: its /tf_static latched once per bag (tf2's static broadcaster QoS), its /tf
up to TF_LEAD_S past each image's stamp before that image (a live broadcaster is ahead of a camera's
stamps), so the node follows the recorded pose at every stamp, as offline replay does. Only with a pose
that is not in tf (``--pose static`` or ``lidar``) does the node get the median pose of the frames as
its static ``camera_*`` parameters and ``use_tf: false`` (a note in the report says so).

Network isolation: ``processes.isolate_ros`` (loopback discovery, the run's ROS_DOMAIN_ID) before rclpy
starts, for this process and the node alike.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..geometry.extrinsics import PoseSummary, summarize_pose
from ..processes import NodeProcess, NodeProcessError, RosClient, choose_domain_id, isolate_ros, wait_until
from .config import BackendSpec, ReplayConfig, ReplayError, condition_for, node_settings
from .frames import Frame, iter_frames
from .recorder import Recorder

TF_LEAD_S = 0.2  # /tf published this far past an image's stamp before the image


# --------------------------------------------------------------------------- the replay side
@dataclass
class Pending:
    frame: Frame
    published_at: float


@dataclass
class LiveStats:
    published: int = 0
    received: int = 0
    dropped: int = 0
    late_or_unknown: int = 0
    node_counters: dict = field(default_factory=dict)


class LiveSession(RosClient):
    """rclpy endpoints around one node: publishers for its inputs, its depth (raw, by stamp), its diagnostics."""

    def __init__(self, namespace: str, label: str, segmenting: bool = False, with_tf: bool = False):
        from sensor_msgs.msg import CameraInfo, Image

        super().__init__(f"depth_prior_replay_{_safe(label)}", namespace)
        self.segmenting = segmenting  # the node publishes its segmenter's mask on prior/road_mask
        self.outputs = ["depth"] + (["prior/road_mask"] if segmenting else [])
        self.pub_image = self.publisher(Image, "image")
        self.pub_info = self.publisher(CameraInfo, "camera_info")
        self.pub_mask = self.publisher(Image, "road_mask")
        self.pub_tf = self.pub_tf_static = None
        if with_tf:
            from tf2_msgs.msg import TFMessage

            from ..ros.qos import tf_broadcaster_qos

            self.pub_tf = self.node.create_publisher(TFMessage, "/tf", tf_broadcaster_qos(False))
            self.pub_tf_static = self.node.create_publisher(TFMessage, "/tf_static", tf_broadcaster_qos(True))
        self.arrivals: dict[int, tuple[float, bytes]] = {}
        self.road_masks: dict[int, bytes] = {}  # the node's segmenter masks (prior/road_mask), by stamp
        self.subscribe(Image, "depth", self._on_depth, raw=True)
        self.subscribe(Image, "prior/road_mask", self._on_road_mask, raw=True)
        self.watch_diagnostics(f"{namespace}/depth_node")

    def _on_depth(self, raw: bytes) -> None:
        from . import bag_io

        t = time.monotonic()
        header = bag_io.deserialize(raw, bag_io.IMAGE).header  # the stamp says which frame it is
        self.arrivals[bag_io.stamp_to_ns(header.stamp)] = (t, raw)

    def _on_road_mask(self, raw: bytes) -> None:
        from . import bag_io

        self.road_masks[bag_io.stamp_to_ns(bag_io.deserialize(raw, bag_io.IMAGE).header.stamp)] = raw

    def road_mask(self, stamp: int, timeout: float) -> np.ndarray | None:
        """The node's road mask of this frame as bool (H, W) (it follows the depth image), or None."""
        from . import bag_io

        wait_until(lambda: stamp in self.road_masks, timeout, 0.002)
        raw = self.road_masks.pop(stamp, None)
        return None if raw is None else bag_io.image_to_numpy(bag_io.deserialize(raw, bag_io.IMAGE)) != 0

    @property
    def diagnostics(self) -> dict:
        return self.last_diagnostics() or {}

    def ready(self) -> bool:
        """Connected both ways, and the backend has loaded or failed (then the node publishes the prior)."""
        inputs = [self.pub_image, self.pub_info] + ([self.pub_tf] if self.pub_tf is not None else [])
        return self.connected(inputs, self.outputs) and \
            self.diagnostics.get("backend_state") in ("ready", "failed")

    def camera_info(self, frame: Frame) -> bytes:
        from . import bag_io

        info = bag_io.normalised_camera_info(frame.camera_info, frame.stamp_ns, frame.frame_id)
        return bag_io.serialize(info, bag_io.CAMERA_INFO)

    def publish(self, frame: Frame, with_mask: bool) -> float:
        """Publish camera_info (+ road_mask) then the image; returns the image's publish time."""
        from . import bag_io

        t = frame.stamp_ns
        self.pub_info.publish(self.camera_info(frame))
        if with_mask and frame.road_mask_input is not None:
            mask = frame.road_mask_input.astype(np.uint8) * 255
            self.pub_mask.publish(bag_io.serialize(bag_io.make_image(mask, t, frame.frame_id, "mono8"),
                                                   bag_io.IMAGE))
        data = bag_io.serialize(bag_io.make_image(frame.image, t, frame.frame_id, "rgb8"), bag_io.IMAGE)
        published = time.monotonic()
        self.pub_image.publish(data)
        return published


class TfPlayer:
    """One bag's tf for the node: ``start`` latches its /tf_static (all static transforms in one message,
    as tf2's StaticTransformBroadcaster sends them); ``until(stamp_ns)`` publishes the /tf messages whose
    stamps are at most ``stamp_ns`` + TF_LEAD_S and were not published yet."""

    def __init__(self, session: LiveSession, bag_path: Path):
        from . import bag_io

        self.session, self.static, self.timed = session, [], []
        with bag_io.BagReader(bag_path) as bag:
            topics = [t for t, summary in bag.topics.items() if summary.msgtype == bag_io.TF_MESSAGE]
            for m in bag.messages(topics):
                if m.topic.endswith("tf_static"):
                    self.static.extend(m.msg.transforms)
                elif m.msg.transforms:
                    stamp = min(bag_io.stamp_to_ns(ts.header.stamp) for ts in m.msg.transforms)
                    self.timed.append((stamp, bag_io.serialize(m.msg, bag_io.TF_MESSAGE)))
        self.timed.sort(key=lambda item: item[0])
        self._next = 0

    def start(self) -> None:
        from . import bag_io

        if self.static:
            self.session.pub_tf_static.publish(bag_io.serialize(bag_io.make_tf_message(self.static), bag_io.TF_MESSAGE))

    def until(self, stamp_ns: int) -> None:
        limit = stamp_ns + int(TF_LEAD_S * 1e9)
        while self._next < len(self.timed) and self.timed[self._next][0] <= limit:
            self.session.pub_tf.publish(self.timed[self._next][1])
            self._next += 1


def bag_ground_frame(bags: list[Path], config: ReplayConfig) -> str:
    """The ground frame the node looks up (the first bag's: --ground-frame, else the bag's hint)."""
    from . import bag_io
    from .frames import resolve_topics

    with bag_io.BagReader(bags[0]) as bag:
        return resolve_topics(bag, config.frames).ground_frame


def nominal_pose(bags: list[Path], config: ReplayConfig) -> PoseSummary:
    """Median height, pitch and roll over every image of the bags: the static mount the node gets."""
    from .frames import image_poses

    summaries = [summarize_pose(T) for bag in bags for T in image_poses(bag, config.frames)]
    if not summaries:
        raise ReplayError("the bags contain no camera frames")
    return PoseSummary(float(np.median([s.height for s in summaries])),
                       float(np.median([s.pitch for s in summaries])),
                       float(np.median([s.roll for s in summaries])))


def run_live(bags: list[Path], config: ReplayConfig, recorder: Recorder) -> None:
    """Replay every bag through one depth_node per backend, in turn."""
    try:
        domain = choose_domain_id(config.domain_id)
    except NodeProcessError as exc:
        raise ReplayError(str(exc)) from exc
    isolate_ros(domain)
    report = recorder.report
    report.run_info["ros_domain_id"] = domain
    if config.frames.pose == "tf":
        pose = None
        report.note("live: the node ran its shipped defaults (best-effort input, use_tf true) and followed the "
                    "bags' /tf and /tf_static, republished by the replay as a robot publishes them")
    else:
        pose = nominal_pose(bags, config)
        report.note(f"live: the pose is not in tf (--pose {config.frames.pose}), so the node ran with use_tf false "
                    f"and a static camera pose, the median over the bags' frames ({pose}); offline replay uses "
                    "each frame's pose")
    for i, spec in enumerate(config.backends):
        _run_backend(bags, config, recorder, spec, pose, f"/replay_{os.getpid()}_{i}")


def _run_backend(bags, config: ReplayConfig, recorder: Recorder, spec: BackendSpec, pose, namespace: str) -> None:
    from tqdm import tqdm

    from . import bag_io
    from .ground_truth import depth_from_image

    settings = node_settings(config, spec)  # validates before a process starts
    # The shipped defaults, input QoS (best effort) and tf included: the transport of this host is
    # shared memory (processes.isolate_ros), where best-effort large images arrive whole.
    params = {**config.node_params, **spec.node_params()}
    if pose is None:
        params.setdefault("ground_frame", bag_ground_frame(bags, config))
    else:
        params.update({"use_tf": False, "camera_height": float(pose.height),
                       "camera_pitch_deg": float(math.degrees(pose.pitch)),
                       "camera_roll_deg": float(math.degrees(pose.roll)), "camera_yaw_deg": 0.0})
    report = recorder.report
    label = spec.display
    node = NodeProcess("depth_prior_ros.ros.depth_node", params, report.out / "logs" / f"{_safe(label)}.log",
                       namespace)
    session = None
    stats = LiveStats()
    try:
        node.start()
        session = LiveSession(namespace, label, bool(settings.segmentation_weights), with_tf=pose is None)
        ready = wait_until(lambda: not node.alive() or session.ready(), config.startup_timeout) and node.alive()
        first = next(iter_frames(bags[0], config.frames, condition_for(config, 0, len(bags))), None)
        if ready and first is not None:
            # The first camera_info must be there before the first image, or that image is dropped.
            ready = session.send_until_counted(session.pub_info, session.camera_info(first),
                                               timeout=config.startup_timeout)
        if not node.alive():
            raise ReplayError(f"depth_node for backend '{label}' exited at start "
                              f"(status {node.proc.returncode}): {node.last_error_line() or 'no output'}")
        if not ready:
            raise ReplayError(f"depth_node for backend '{label}' did not come up within {config.startup_timeout:.0f} s "
                              f"(see {report.out / 'logs'})")
        if session.diagnostics.get("backend_state") == "failed":
            report.note(f"live: backend '{label}' failed to load in the node and it published the prior: "
                        f"{session.diagnostics.get('backend_error', '')}")
        with_mask = settings.use_road_mask
        for i, bag in enumerate(bags):
            frames = iter_frames(bag, config.frames, condition_for(config, i, len(bags)), sink=recorder.sink([label]))
            pending: dict[int, Pending] = {}
            tf = TfPlayer(session, bag) if pose is None else None
            if tf is not None:
                tf.start()
            prev_stamp = None
            next_at = time.monotonic()
            with tqdm(frames, desc=f"live {label} {bag.name}", unit="frame", disable=not config.progress,
                      leave=False) as bar:
                for frame in bar:
                    if recorder.out_bag is not None:
                        recorder.out_bag.write_inputs(frame)
                    if prev_stamp is not None and config.rate is None:
                        next_at += min(max((frame.stamp_ns - prev_stamp) / 1e9, 0.0), 5.0)
                    prev_stamp = frame.stamp_ns
                    time.sleep(max(next_at - time.monotonic(), 0.0))
                    _collect(session, pending, recorder, label, stats, config, depth_from_image, bag_io)
                    if not node.alive():
                        raise ReplayError(f"depth_node for backend '{label}' stopped during the replay: "
                                          f"{node.last_error_line() or 'no output'}")
                    if tf is not None:
                        tf.until(frame.stamp_ns)
                    published = session.publish(frame, with_mask)
                    stats.published += 1
                    pending[frame.stamp_ns] = Pending(frame, published)
                    if config.rate is not None:
                        next_at = published + 1.0 / config.rate
                    # The node's first frame builds its per-camera caches (a vehicle pays that once, at start):
                    # wait for it, so the recorded timing does not drop the frames behind it.
                    if config.lockstep or stats.published == 1:
                        wait_until(lambda: frame.stamp_ns in session.arrivals, config.frame_timeout, 0.002)
                        next_at = max(next_at, time.monotonic())
                    _collect(session, pending, recorder, label, stats, config, depth_from_image, bag_io)
                    report.checkpoint()
            # Let the last frames arrive, then count what never came as dropped.
            wait_until(lambda: all(s in session.arrivals for s in pending), config.frame_timeout, 0.002)
            _collect(session, pending, recorder, label, stats, config, depth_from_image, bag_io, final=True)
        # Let one more diagnostics message arrive so the node's own counters cover every frame.
        wait_until(lambda: session.counter("frames_received") >= stats.published,
                   max(3.0, 2.5 * float(params.get("diagnostics_period", 1.0))))
    finally:
        counters = session.diagnostics if session is not None else {}
        if session is not None:
            session.close()
        code = node.stop()
        stats.node_counters = {k: v for k, v in counters.items()
                               if k.startswith(("frames_", "dropped_", "latency_", "backend"))}
        report.live_stats[label] = {"published": stats.published, "received": stats.received,
                                    "dropped_frames": stats.dropped, "unmatched_outputs": stats.late_or_unknown,
                                    "node_exit_status": code, "node": stats.node_counters}


def _collect(session: LiveSession, pending: dict, recorder: Recorder, label: str, stats: LiveStats,
             config: ReplayConfig, depth_from_image, bag_io, final: bool = False) -> None:
    """Score arrived depth images, and count frames past their timeout (or all left, when final) as dropped."""
    for stamp in list(session.arrivals):
        t_recv, raw = session.arrivals.pop(stamp)
        item = pending.pop(stamp, None)
        if item is None:
            stats.late_or_unknown += 1
            continue
        msg = bag_io.deserialize(raw, bag_io.IMAGE)
        depth = depth_from_image(bag_io.image_to_numpy(msg), str(msg.encoding))
        stats.received += 1
        mask = session.road_mask(stamp, config.frame_timeout) if session.segmenting else (
            item.frame.road_mask_input if config.node_params.get("use_road_mask") else None)
        recorder.record(label, item.frame, depth, latency_ms=(t_recv - item.published_at) * 1e3, road_mask=mask)
    now = time.monotonic()
    for stamp in list(pending):
        item = pending[stamp]
        if final or now - item.published_at > config.frame_timeout:
            del pending[stamp]
            stats.dropped += 1
            recorder.record(label, item.frame, None, dropped=True, error="no depth image from the node")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in str(text))
