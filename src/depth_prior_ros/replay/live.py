"""Live replay: publish a bag's frames through rclpy to a ``depth_node`` subprocess and score its output.

For each backend one node is started (``python -m depth_prior_ros.ros.depth_node``) in its own
namespace with a generated params file. This process publishes ``image``, ``camera_info`` (and
``road_mask``) at the recorded rate or a fixed one, listens to ``depth`` and ``/diagnostics``, and
matches outputs to inputs by header stamp (the node keeps the input's stamp). End-to-end latency is
"image published" -> "depth received" on one monotonic clock; a frame whose depth never comes within
``frame_timeout`` counts as dropped.

The pose: with tf2_ros installed (a ROS installation) the node could read the bag's /tf; the PyPI
wheels have no tf2_ros, so the node gets the pose of each bag's first frame as its static
``camera_height`` / ``camera_pitch_deg`` / ``camera_roll_deg`` parameters (yaw does not change a
ground prior). A bag whose camera pose moves over time is therefore replayed with a fixed pose live;
offline replay follows the tf at every stamp.

Network isolation: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a per-run ROS_DOMAIN_ID are set in
``os.environ`` before rclpy is initialised, for this process and the node alike.
"""
from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..geometry.extrinsics import PoseSummary, summarize_pose
from ..processes import stop_gently
from .config import BackendSpec, ReplayConfig, ReplayError, condition_for, node_settings
from .frames import Frame, iter_frames
from .recorder import Recorder

DOMAIN_ENV = "DEPTH_PRIOR_DOMAIN_ID"
DEFAULT_DOMAIN_RANGE = (120, 149)


def choose_domain_id(requested: int | None = None) -> int:
    """Explicit id, else $DEPTH_PRIOR_DOMAIN_ID, else a random id in 120-149 (parallel runs rarely meet)."""
    if requested is None and os.environ.get(DOMAIN_ENV):
        try:
            requested = int(os.environ[DOMAIN_ENV])
        except ValueError as exc:
            raise ReplayError(f"{DOMAIN_ENV}={os.environ[DOMAIN_ENV]!r} is not an integer ROS domain id") from exc
    if requested is None:
        requested = random.randint(*DEFAULT_DOMAIN_RANGE)
    if not 0 <= requested <= 232:
        raise ReplayError(f"ROS domain id {requested} is outside 0-232")
    return requested


def isolate_ros_network(domain_id: int) -> None:
    """Loopback-only discovery on our own domain; must run before rclpy.init."""
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def _package_root() -> str:
    import depth_prior_ros

    return str(Path(depth_prior_ros.__file__).resolve().parent.parent)


# --------------------------------------------------------------------------- the node process
@dataclass
class NodeProcess:
    """A depth_node subprocess with its params file and log."""

    label: str
    namespace: str
    params: dict
    log_dir: Path
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _params_path: Path | None = None

    def start(self) -> None:
        import yaml

        self.log_dir.mkdir(parents=True, exist_ok=True)
        fd, params_path = tempfile.mkstemp(prefix="depth_node_", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump({"/**": {"ros__parameters": self.params}}, f)
        self._params_path = Path(params_path)
        self.log_path = self.log_dir / f".{_safe(self.label)}.log.partial"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([_package_root()] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [sys.executable, "-m", "depth_prior_ros.ros.depth_node", "--ros-args",
               "-r", f"__ns:={self.namespace}", "--params-file", str(self._params_path)]
        log = open(self.log_path, "wb")
        try:
            # Own session: a Ctrl-C in the terminal reaches us, and we stop the node in order.
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        finally:
            log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def last_log_line(self) -> str:
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        for line in reversed(lines):
            if "error" in line.lower():
                return line
        return lines[-1] if lines else ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (a clean rclpy shutdown), then SIGTERM, then SIGKILL; keeps the log as logs/<label>.log."""
        code = stop_gently(self.proc, timeout) if self.proc is not None else None
        if self._params_path is not None:
            self._params_path.unlink(missing_ok=True)
        if self.log_path is not None and self.log_path.exists():
            os.replace(self.log_path, self.log_dir / f"{_safe(self.label)}.log")
        return code


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


class LiveSession:
    """rclpy endpoints around one node: publishers for its inputs, subscriptions for depth and diagnostics."""

    def __init__(self, context, namespace: str, label: str):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.rclpy = rclpy
        self.context = context
        self.namespace = namespace
        self.node = rclpy.create_node(f"depth_prior_replay_{_safe(label)}", context=context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=10,
                              reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)
        self.pub_image = self.node.create_publisher(Image, f"{namespace}/image", reliable)
        self.pub_info = self.node.create_publisher(CameraInfo, f"{namespace}/camera_info", reliable)
        self.pub_mask = self.node.create_publisher(Image, f"{namespace}/road_mask", reliable)
        self.arrivals: dict[int, tuple[float, bytes]] = {}
        self.node.create_subscription(Image, f"{namespace}/depth", self._on_depth, reliable, raw=True)
        self.diagnostics: dict[str, str] = {}
        self._diag_name = f"{namespace}/depth_node"
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable)

    def _on_depth(self, raw: bytes) -> None:
        from . import bag_io

        t = time.monotonic()
        header = bag_io.deserialize(raw, bag_io.IMAGE).header  # the stamp says which frame it is
        self.arrivals[bag_io.stamp_to_ns(header.stamp)] = (t, raw)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(self._diag_name):
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self.diagnostics["_level"] = str(status.level[0] if isinstance(status.level, bytes) else status.level)
                self.diagnostics["_message"] = status.message

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + max(seconds, 0.0)
        while True:
            left = deadline - time.monotonic()
            self.executor.spin_once(timeout_sec=max(min(left, 0.05), 0.0))
            if left <= 0:
                return

    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(left, 0.05))
        return True

    def connected(self) -> bool:
        n = self.node
        return (self.pub_image.get_subscription_count() > 0 and self.pub_info.get_subscription_count() > 0
                and n.count_publishers(f"{self.namespace}/depth") > 0)

    def backend_settled(self) -> bool:
        return self.diagnostics.get("backend_state") in ("ready", "failed")

    def publish(self, frame: Frame, with_mask: bool) -> float:
        """Publish camera_info (+ road_mask) then the image; returns the image's publish time."""
        from . import bag_io

        t = frame.stamp_ns
        info = bag_io.normalised_camera_info(frame.camera_info, t, frame.frame_id)
        self.pub_info.publish(bag_io.serialize(info, bag_io.CAMERA_INFO))
        if with_mask and frame.road_mask_input is not None:
            mask = frame.road_mask_input.astype(np.uint8) * 255
            self.pub_mask.publish(bag_io.serialize(bag_io.make_image(mask, t, frame.frame_id, "mono8"),
                                                   bag_io.IMAGE))
        data = bag_io.serialize(bag_io.make_image(frame.image, t, frame.frame_id, "rgb8"), bag_io.IMAGE)
        published = time.monotonic()
        self.pub_image.publish(data)
        return published

    def close(self) -> None:
        try:
            self.executor.remove_node(self.node)
            self.executor.shutdown()
        finally:
            self.node.destroy_node()


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
    domain = choose_domain_id(config.domain_id)
    isolate_ros_network(domain)
    import rclpy

    report = recorder.report
    report.run_info["ros_domain_id"] = domain
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        pose = nominal_pose(bags, config)
        report.note(f"live: the node ran with a static camera pose, the median over the bags' frames ({pose}); "
                    "it does not follow per-frame tf (no tf2_ros in this replay), offline replay does")
        for i, spec in enumerate(config.backends):
            _run_backend(context, bags, config, recorder, spec, pose, f"/replay_{os.getpid()}_{i}")
    finally:
        if context.ok():
            context.try_shutdown() if hasattr(context, "try_shutdown") else context.shutdown()


def _run_backend(context, bags, config: ReplayConfig, recorder: Recorder, spec: BackendSpec, pose,
                 namespace: str) -> None:
    from tqdm import tqdm

    from . import bag_io
    from .ground_truth import depth_from_image

    settings = node_settings(config, spec)  # validates before a process starts
    # Reliable input QoS unless asked otherwise: with the sensor-data default (best effort), Fast DDS
    # loses fragments of large images on a busy loopback, and a lost input would count as a node drop.
    params = {"qos_reliability": "reliable", **config.node_params, **spec.node_params(),
              "use_tf": False, "camera_height": float(pose.height),
              "camera_pitch_deg": float(math.degrees(pose.pitch)), "camera_roll_deg": float(math.degrees(pose.roll)),
              "camera_yaw_deg": 0.0, "publish_colored": False, "publish_points": False, "publish_prior": False}
    report = recorder.report
    label = spec.display
    node = NodeProcess(label, namespace, params, report.out / "logs")
    session = None
    stats = LiveStats()
    try:
        node.start()
        session = LiveSession(context, namespace, label)
        ready = session.spin_until(lambda: not node.alive() or (session.connected() and session.backend_settled()),
                                   config.startup_timeout)
        if ready and node.alive():
            # The first camera_info must be there before the first image, or that image is dropped.
            first = next(iter_frames(bags[0], config.frames, condition_for(config, 0, len(bags))), None)
            if first is not None:
                ready = session.spin_until(lambda: not node.alive() or _has_camera_info(session, first),
                                           config.startup_timeout)
        if not node.alive():
            raise ReplayError(f"depth_node for backend '{label}' exited at start "
                              f"(status {node.proc.returncode}): {node.last_log_line() or 'no output'}")
        if not ready:
            raise ReplayError(f"depth_node for backend '{label}' did not come up within {config.startup_timeout:.0f} s "
                              f"(see {report.out / 'logs'})")
        if session.diagnostics.get("backend_state") == "failed":
            report.note(f"live: backend '{label}' failed to load in the node and it published the prior: "
                        f"{session.diagnostics.get('backend_error', '')}")
        with_mask = settings.use_road_mask
        for i, bag in enumerate(bags):
            frames = iter_frames(bag, config.frames, condition_for(config, i, len(bags)))
            pending: dict[int, Pending] = {}
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
                    session.spin_for(next_at - time.monotonic())
                    _collect(session, pending, recorder, label, stats, config, depth_from_image, bag_io)
                    if not node.alive():
                        raise ReplayError(f"depth_node for backend '{label}' stopped during the replay: "
                                          f"{node.last_log_line() or 'no output'}")
                    published = session.publish(frame, with_mask)
                    stats.published += 1
                    pending[frame.stamp_ns] = Pending(frame, published)
                    if config.rate is not None:
                        next_at = published + 1.0 / config.rate
                    if config.lockstep:
                        session.spin_until(lambda: frame.stamp_ns in session.arrivals, config.frame_timeout)
                        next_at = max(next_at, time.monotonic())
                    _collect(session, pending, recorder, label, stats, config, depth_from_image, bag_io)
                    report.checkpoint()
            # Let the last frames arrive, then count what never came as dropped.
            session.spin_until(lambda: all(s in session.arrivals for s in pending), config.frame_timeout)
            _collect(session, pending, recorder, label, stats, config, depth_from_image, bag_io, final=True)
        # Let one more diagnostics message arrive so the node's own counters cover every frame.
        session.spin_until(lambda: _diag_int(session, "frames_received") >= stats.published,
                           max(3.0, 2.5 * float(params.get("diagnostics_period", 1.0))))
    finally:
        counters = dict(session.diagnostics) if session is not None else {}
        if session is not None:
            session.close()
        code = node.stop()
        stats.node_counters = {k: v for k, v in counters.items()
                               if k.startswith(("frames_", "dropped_", "latency_", "backend"))}
        report.live_stats[label] = {"published": stats.published, "received": stats.received,
                                    "dropped_frames": stats.dropped, "unmatched_outputs": stats.late_or_unknown,
                                    "node_exit_status": code, "node": stats.node_counters}


def _diag_int(session: LiveSession, key: str) -> int:
    try:
        return int(float(session.diagnostics.get(key, "-1")))
    except ValueError:
        return -1


def _has_camera_info(session: LiveSession, frame: Frame) -> bool:
    """Publish the camera_info again and say whether the node's diagnostics have counted one."""
    from . import bag_io

    now = time.monotonic()
    if now - getattr(session, "_last_info_sent", 0.0) > 0.2:
        info = bag_io.normalised_camera_info(frame.camera_info, frame.stamp_ns, frame.frame_id)
        session.pub_info.publish(bag_io.serialize(info, bag_io.CAMERA_INFO))
        session._last_info_sent = now
    try:
        return int(session.diagnostics.get("camera_info_received", "0")) > 0
    except ValueError:
        return False


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
        recorder.record(label, item.frame, depth, latency_ms=(t_recv - item.published_at) * 1e3)
    now = time.monotonic()
    for stamp in list(pending):
        item = pending[stamp]
        if final or now - item.published_at > config.frame_timeout:
            del pending[stamp]
            stats.dropped += 1
            recorder.record(label, item.frame, None, dropped=True, error="no depth image from the node")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in str(text))
