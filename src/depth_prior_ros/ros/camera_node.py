"""What depth_node and prior_node share: parameters, camera_info, road mask, pose, mailbox + worker,
throttled drop logs, /diagnostics, and ``run_node`` (init, spin, clean Ctrl-C).

Threading: one executor thread runs the subscription callbacks and the diagnostics timer; they only
validate, store and count. One worker thread does the frame work (pose lookup, prior, network,
publishing). rclpy publishers are safe to use from that thread, and a tf lookup waiting in it leaves
the executor free to deliver /tf.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from .conversions import MASK_ENCODINGS, ConversionError, camera_from_info, check_image_layout, mask_from_image_msg
from .diagnostics import (OK, WARN, DiagnosticReport, LatencyStats, add_frame_values, add_latency_values,
                          to_diagnostic_array)
from .params import ParameterError, declare_and_read
from .pose_source import PoseUnavailable, make_pose_source
from .qos import diagnostics_qos, subscription_qos
from .worker import Frame, FrameDropped, FrameMailbox, FrameWorker, ThrottledLog

LOG_THROTTLE_S = 5.0


def fully_qualified_name(node: Node) -> str:
    namespace = node.get_namespace().rstrip("/")
    return f"{namespace}/{node.get_name()}"


def _info_key(msg) -> tuple:
    """Identity of a CameraInfo's calibration (so a stream of identical messages is parsed once)."""
    roi = msg.roi
    return (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d), msg.binning_x,
            msg.binning_y, roi.x_offset, roi.y_offset, roi.width, roi.height)


class CameraNodeBase(Node):
    """Subclasses set ``status_name`` / ``drop_reasons`` and implement ``handle_frame(frame)`` (worker
    thread; raise FrameDropped to drop); optional hooks: prepare, idle, on_camera_info, add_diagnostics."""

    status_name = "camera"
    drop_reasons: tuple[str, ...] = ("busy",)

    def __init__(self, node_name: str, defaults: dict, parse, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.settings = parse(declare_and_read(self, defaults))
        logger = self.get_logger()
        # `warning` is the current name; very old rclpy only has `warn`.
        self.warn_throttled = ThrottledLog(getattr(logger, "warning", None) or logger.warn, LOG_THROTTLE_S)
        self.error_throttled = ThrottledLog(self.get_logger().error, LOG_THROTTLE_S)
        self.mailbox = FrameMailbox()
        self.latency = LatencyStats()
        self.pose_source = make_pose_source(self, self.settings.pose)
        self.get_logger().info(f"camera pose from {self.pose_source.description}")

        self._camera_lock = threading.Lock()
        self._camera_key = None
        self._camera_info = None
        self._camera = None
        self._camera_error: str | None = None
        self._camera_ready = threading.Event()
        self.camera_info_received = 0
        self.camera_info_rejected = 0
        self._road_mask_msg = None
        self._road_mask_cache = (None, None)  # (msg, decoded bool mask)
        self.road_masks_rejected = 0
        self.hardware_id = ""
        self._stopping = False

        self.sub_qos = subscription_qos(self.settings.qos)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, self.sub_qos)
        if self.settings.use_road_mask:
            self.create_subscription(Image, "road_mask", self._on_road_mask, self.sub_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", diagnostics_qos())
        self._diag_prev = (None, time.monotonic())
        self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics)
        self.worker = FrameWorker(self.mailbox, self.handle_frame, self._on_drop, self._on_error,
                                  prepare=self.prepare, idle=self.idle, name=f"{node_name}_worker")
        self.context.on_shutdown(self.mailbox.close)  # Ctrl-C: the worker stops before handles go away

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self._stopping = True
        self.worker.stop()

    # ------------------------------------------------------------------ hooks
    def prepare(self) -> None:
        """Worker thread, once, before the first frame."""

    def idle(self) -> None:
        """Worker thread, after each frame and every 0.25 s without frames."""

    def handle_frame(self, frame: Frame) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_camera_info(self, msg, camera, received_at: float) -> None:
        """Executor thread, after each camera_info (camera is None when it was rejected)."""

    def add_diagnostics(self, report: DiagnosticReport) -> None:
        """Executor thread: node-specific values and level."""

    # ------------------------------------------------------------------ camera_info and road mask
    def _on_camera_info(self, msg) -> None:
        received_at = time.perf_counter()
        key = _info_key(msg)
        camera = None
        with self._camera_lock:
            self.camera_info_received += 1
            if key == self._camera_key and self._camera is not None:
                camera = self._camera
        if camera is None:
            try:
                camera = camera_from_info(msg)
            except ConversionError as exc:
                with self._camera_lock:
                    self.camera_info_rejected += 1
                    self._camera_error, self._camera, self._camera_key = str(exc), None, None
                self.warn_throttled("camera_info", f"camera_info rejected: {exc}")
                self.on_camera_info(msg, None, received_at)
                return
        with self._camera_lock:
            self._camera_key, self._camera_info, self._camera, self._camera_error = key, msg, camera, None
        self._camera_ready.set()
        self.on_camera_info(msg, camera, received_at)

    def camera_for(self, width: int, height: int):
        """(camera_info msg, PinholeCamera) for an image of this size, or FrameDropped saying why not."""
        with self._camera_lock:
            info, camera, error = self._camera_info, self._camera, self._camera_error
        if error is not None:
            raise FrameDropped("invalid_camera_info", f"the latest camera_info is invalid: {error}")
        if camera is None:
            raise FrameDropped("no_camera_info", "no camera_info received yet")
        if (camera.width, camera.height) != (width, height):
            raise FrameDropped("camera_info_mismatch", f"image is {width}x{height} but camera_info describes "
                                                       f"{camera.width}x{camera.height}")
        return info, camera

    def camera_size(self, timeout: float = 0.0) -> tuple[int, int] | None:
        """Size of the latest valid camera, waiting up to ``timeout`` s for the first camera_info."""
        if timeout > 0:
            self._camera_ready.wait(timeout)
        with self._camera_lock:
            camera = self._camera
        return None if camera is None else (camera.width, camera.height)

    def _on_road_mask(self, msg) -> None:
        try:
            check_image_layout(msg.encoding, msg.width, msg.height, msg.step, len(msg.data), MASK_ENCODINGS)
        except ConversionError as exc:
            self.road_masks_rejected += 1
            self.warn_throttled("road_mask", f"road_mask rejected: {exc}")
            return
        self._road_mask_msg = msg

    def road_mask_for(self, camera):
        """Latest road mask as bool (H, W) for this camera, None without one; FrameDropped on a size mismatch."""
        if not self.settings.use_road_mask:
            return None
        msg = self._road_mask_msg
        if msg is None:
            return None
        cached_msg, mask = self._road_mask_cache
        if cached_msg is not msg:
            mask = mask_from_image_msg(msg)
            self._road_mask_cache = (msg, mask)
        if mask.shape != (camera.height, camera.width):
            raise FrameDropped("road_mask_mismatch", f"road_mask is {mask.shape[1]}x{mask.shape[0]} but the "
                                                     f"image is {camera.width}x{camera.height}")
        return mask

    def pose_for(self, header):
        try:
            return self.pose_source.lookup(header.frame_id, header.stamp)
        except PoseUnavailable as exc:
            raise FrameDropped("no_pose", str(exc)) from exc

    # ------------------------------------------------------------------ drops and errors
    def reject(self, drop: FrameDropped) -> None:
        """Executor thread: count and log a frame refused before it reached the mailbox."""
        self.mailbox.reject(drop.reason)
        self._on_drop(drop)

    def _on_drop(self, drop: FrameDropped) -> None:
        self.warn_throttled(drop.reason, f"dropped a frame ({drop.reason}): {drop}")

    def _on_error(self, exc: Exception) -> None:
        if self._stopping or not self.context.ok():  # shutting down: publishers may be gone
            return
        if self.error_throttled(f"error:{type(exc).__name__}",
                                f"unexpected {type(exc).__name__} while processing a frame: {exc}"):
            self.get_logger().debug(traceback.format_exc())

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        previous, since = self._diag_prev
        now = time.monotonic()
        counts = self.mailbox.counts()
        self._diag_prev = (counts, now)
        report = DiagnosticReport(OK, "")
        add_frame_values(report, counts, previous, now - since, self.drop_reasons)
        add_latency_values(report, self.latency.window())
        with self._camera_lock:
            report.add("camera_info_received", self.camera_info_received)
            report.add("camera_info_rejected", self.camera_info_rejected)
            camera_error = self._camera_error
        if camera_error:
            report.escalate(WARN, f"camera_info rejected: {camera_error}")
        if self.settings.use_road_mask:
            report.add("road_masks_rejected", self.road_masks_rejected)
        report.add("pose_source", self.pose_source.kind)
        report.add("pose_source_detail", self.pose_source.description)
        report.add("pose", self.pose_source.last_summary)
        self.add_diagnostics(report)
        if report.level == OK:
            rate = dict(report.values).get("rate_out_hz", "0")
            report.message = f"publishing at {rate} Hz"
        name = f"{fully_qualified_name(self)}: {self.status_name}"
        msg = to_diagnostic_array([(name, self.hardware_id or fully_qualified_name(self), report)],
                                  self.get_clock().now().to_msg())
        self._diag_pub.publish(msg)


def run_node(node_class, args=None) -> int:
    """rclpy.init, build the node, spin until Ctrl-C / SIGTERM / shutdown, clean up. Exit status:
    0 after a normal shutdown, 2 for a configuration error (one sentence on stderr)."""
    import rclpy

    try:
        from rclpy.executors import ExternalShutdownException
    except ImportError:  # very old rclpy: the exception does not exist, so nothing raises it
        class ExternalShutdownException(Exception):
            pass

    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        node.start()
        rclpy.spin(node)
        return 0
    except ParameterError as exc:
        print(f"[{getattr(node_class, 'NODE_NAME', 'node')}] configuration error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        if hasattr(rclpy, "try_shutdown"):
            rclpy.try_shutdown()
        elif rclpy.ok():
            rclpy.shutdown()
