"""depth_node: image + camera_info + pose -> metric depth, its camera_info, colourised depth, points,
the prior, the road mask of its segmenter (``prior/road_mask``, with ``segmentation_weights``), and
/diagnostics (topics and parameters: README).

Failure policy:
- Configuration errors stop the node at start with one sentence naming the parameter and exit status
  2: an unknown parameter name (with the closest known one), an unknown ``backend`` name or option, no
  ``weights`` for a network backend or a path that does not exist, a malformed value (bad JSON in
  ``backend_options``, min_depth >= max_depth, ...), a road segmenter that cannot be loaded. Retrying
  cannot fix those.
- Runtime failures of the network degrade instead (backend_manager.py): if the backend cannot be built
  or warmed up, the node publishes the metric prior, reports ERROR and retries every 10 s; a frame on
  which the network throws falls back to the prior and marks that diagnostics period ERROR.
- A bad message (encoding, step, size, camera_info mismatch or invalid, missing pose, an image the
  model card's input bounds refuse) drops that frame with a throttled warning, a counter per reason and
  a WARN diagnostic; the node keeps running. Output that is wrong without an error (no valid pixel, a
  network that disagrees with the prior) is counted and diagnosed too (output_checks.py).
Threading: the executor thread runs the callbacks and the diagnostics timer; they only validate in
O(1), store and count, and the image callback hands the newest frame to a one-slot mailbox. One worker
thread does the frame work (pose lookup, prior, network, publishing), so a tf lookup waiting in it
leaves the executor free to deliver /tf (received = processed + dropped + pending, see worker.py).
Runtime parameters (``ros2 param set``; the spec's ``runtime`` ones) are validated on the executor
thread and take effect from the worker's next frame. depth_lifecycle_node is the same node in lifecycle
steps (DepthComposition below).
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..colorize import colorize_depth
from ..ground_pose import MountCheck
from ..parameters import DEPTH_NODE, parse_depth_params
from ..pipeline import DepthPipeline, FrameError
from .backend_manager import RETRY_PERIOD_S, BackendManager
from .conversions import (ConversionError, PointCloudBuilder, camera_info_with_header, depth_image_msg, image_msg,
                          rgb_from_msg)
from .diagnostics import WARN, DiagnosticReport, DiagnosticsPublisher, LatencyStats
from .inputs import CameraInfoInput, ImageInput, RoadMaskInput
from .output_checks import OutputChecks
from .params import RuntimeParameters, declare_and_read
from .pose_source import checked, make_pose_source, report_pose
from .qos import InputQosOverrides, publisher_qos, subscription_qos
from .runtime import FrameLog, destroy_entities, node_entities, run_node
from .worker import Frame, FrameDropped, FrameMailbox, FrameWorker

DROP_REASONS = ("busy", "invalid_image", "no_camera_info", "unpaired_camera_info", "invalid_camera_info",
                "camera_info_mismatch", "no_pose", "road_mask_mismatch", "network_input_rejected", "bad_frame", "error")


class DepthComposition(InputQosOverrides):
    """Everything depth_node is, for a plain rclpy Node (DepthNode) and a lifecycle one
    (depth_lifecycle_node.DepthLifecycleNode), in the lifecycle's steps:

    - ``_declare``: parameters (runtime ones settable with ``ros2 param set``, see params.RuntimeParameters);
    - ``_configure``: settings, pose source (its /tf subscriptions), pipeline, backend (loaded and warmed
      now when ``load_now``, else by the worker before its first frame), publishers, worker, diagnostics;
    - ``_activate`` / ``_deactivate``: the input subscriptions (frames flow only in between);
    - ``_cleanup``: stops the worker, releases the network and destroys what ``_configure`` created.
    """

    NODE_NAME = DEPTH_NODE

    def _declare(self, retry_period: float) -> None:
        self.retry_period = retry_period
        self.log = FrameLog(self)
        self.mailbox = self.camera_info = self.road_mask = None
        self._inputs, self._configured = [], []
        self.params = RuntimeParameters(self, DEPTH_NODE, declare_and_read(self, DEPTH_NODE),
                                        lambda values: checked(parse_depth_params(values, check_files=False)))
        self.context.on_shutdown(self._close_mailbox)  # Ctrl-C: the worker stops before handles go away

    def _close_mailbox(self) -> None:  # a bound method: rclpy keeps on_shutdown callbacks as weak references
        if self.mailbox is not None:
            self.mailbox.close()

    def _configure(self, load_now: bool) -> None:
        before = node_entities(self)
        try:
            self._build(load_now)
        except BaseException:  # a configuration error: leave nothing behind (a lifecycle node may retry)
            destroy_entities(self, node_entities(self, before))
            raise
        self._configured = node_entities(self, before)

    def _build(self, load_now: bool) -> None:
        self.log.stopping = False
        self.params.take_pending()  # the parameters' current values are read below
        self.settings = s = parse_depth_params(self.params.values)
        self.pose_source = make_pose_source(self, s.pose)
        self.get_logger().info(f"camera pose from {self.pose_source.description}")
        self.pipeline = DepthPipeline(None, s.pipeline, s.segmenter(), s.segmentation_every)
        if self.pipeline.segmentation is not None:
            self.get_logger().info(f"road segmenter every {s.segmentation_every} frame(s): "
                                   f"{self.pipeline.segmentation.segmenter.describe()}")
        self.output_checks = OutputChecks()
        self.backends = BackendManager(s.backend, s.backend_kwargs(), self.get_logger().info,
                                       self.get_logger().error, self.retry_period)
        if load_now:  # lifecycle: the network is ready before activation (no camera yet: default size)
            self.backends.load(lambda wait: None, wait_s=0.0)
        self.points = PointCloudBuilder(s.points_decimation)
        self.mount_check = MountCheck()  # refined pose > 1 deg off the mount for 5 s: WARN (a bad extrinsic)
        self._last_result = None
        # outputs (reliable, keep last 1: best-effort and reliable subscribers both connect); the optional
        # ones exist always, since their publish_* switches may change at runtime
        out = publisher_qos(1)
        self.pub_depth = self.create_publisher(Image, "depth", out)
        self.pub_info = self.create_publisher(CameraInfo, "depth/camera_info", out)
        self.pub_confidence = self.create_publisher(Image, "depth/confidence", out)  # fusion.py: P(within 10%)
        self.pub_colored = self.create_publisher(Image, "depth/colored", out)
        self.pub_points = self.create_publisher(PointCloud2, "depth/points", out)
        self.pub_prior = self.create_publisher(Image, "prior/depth", out)
        self.pub_road = self.create_publisher(Image, "prior/road_mask", out) if s.segmentation_weights else None
        # frame hand-off (the image callback: O(1) checks, then the mailbox), worker and diagnostics
        self.mailbox = FrameMailbox()
        self.latency = LatencyStats()
        self.worker = FrameWorker(self.mailbox, self._process, self.log.dropped, self.log.failed,
                                  prepare=None if load_now else lambda: self.backends.load(self._camera_size),
                                  idle=lambda: self.backends.maybe_retry(self._camera_size),
                                  name=f"{self.NODE_NAME}_worker")
        self.diagnostics = DiagnosticsPublisher(self, "depth", s.diagnostics_period, self.mailbox, self.latency,
                                                DROP_REASONS, self._report)

    def _activate(self) -> None:
        """Subscribe the inputs (qos_overrides.<topic>.* parameters may change their QoS, see qos.py)."""
        before, s = node_entities(self), self.settings
        qos = subscription_qos(s.qos)
        self.camera_info = CameraInfoInput(self, qos, self.log.warn, tolerance=s.camera_info_tolerance)
        self.road_mask = RoadMaskInput(self, qos, self.log.warn) if s.use_road_mask else None
        self.images = ImageInput(self, qos, self.camera_info, self.mailbox, self.log.dropped, s.image_transport)
        self._inputs = node_entities(self, before)

    def _deactivate(self, timeout: float = 5.0) -> None:
        """Unsubscribe, then let the frame in progress finish, so nothing is published after."""
        destroy_entities(self, self._inputs)
        if self._inputs:
            self.images.close()  # images still waiting for their camera_info: counted, not left pending
        self._inputs = []
        self.mailbox.wait_idle(timeout)

    def _cleanup(self) -> None:
        self._deactivate()
        self.stop()
        destroy_entities(self, self._configured)
        self._configured = []
        self.pipeline.backend = None
        self.backends = self.camera_info = self.road_mask = None

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.log.stopping = True
        self.worker.stop()
        if self.backends is not None:
            self.backends.stop()

    def _camera_size(self, wait: float = 0.0):
        return None if self.camera_info is None else self.camera_info.size(wait)

    # runtime parameters: the executor thread stores, the worker applies between frames --------
    def _apply_pending(self) -> None:
        new = self.params.take_pending()
        if new is None:
            return
        old, self.settings = self.settings, new
        if new.pipeline != old.pipeline:  # range, prior, filter or alignment: start them afresh
            self.pipeline.config = new.pipeline
            self.pipeline.reset()
        if new.pose != old.pose:
            self.pose_source.apply(new.pose)
        if new.points_decimation != old.points_decimation:
            self.points = PointCloudBuilder(new.points_decimation)
        self.get_logger().info("runtime parameters applied from this frame on")

    # worker thread ----------------------------------------------------------------------------
    def _process(self, frame: Frame) -> None:
        self._apply_pending()
        msg, camera, header = frame.msg, frame.camera, frame.msg.header
        t0 = time.perf_counter()
        backend = self.backends.backend
        if backend is not self.pipeline.backend:  # loaded (or re-loaded): start the scale filter afresh
            self.pipeline.backend = backend
            self.pipeline.reset()
        # Without a network only the shape and point colours are read: a view saves a full-frame copy.
        needs_pixels = self.pipeline.has_network or self.pipeline.segmentation is not None
        try:  # raw layouts were checked in the callback; compressed ones are decoded only here
            image = rgb_from_msg(msg, view=not needs_pixels, size=(camera.width, camera.height))
        except ConversionError as exc:
            raise FrameDropped("invalid_image", str(exc)) from exc
        pose = self.pose_source.lookup(header.frame_id, header.stamp)
        mask = self.road_mask.for_camera(camera) if self.road_mask is not None else None
        t1 = time.perf_counter()
        try:
            result = self.pipeline.process(image, camera, pose, mask)
        except FrameError as exc:
            raise FrameDropped(exc.reason, str(exc)) from exc
        self.backends.record_frame(result.backend_error)
        if result.backend_error:
            self.log.error("backend", f"backend failed on a frame, published the prior: {result.backend_error}")
        problem = self.output_checks.record(result)
        if problem:
            self.log.warn(result.problem, problem)
        t2 = time.perf_counter()
        publish_timings = self._publish(result, frame.info, camera, header, image)
        t3 = time.perf_counter()
        self.diagnostics.hardware_id = header.frame_id
        if result.pose_offsets is not None:
            self.mount_check.update(header.stamp.sec + header.stamp.nanosec * 1e-9, result.pose_offsets)
        self._last_result = result
        timings = {"queue": (t0 - frame.received_at) * 1e3, "convert_pose": (t1 - t0) * 1e3,
                   "publish": (t3 - t2) * 1e3, "node": (t3 - frame.received_at) * 1e3}
        timings.update({k: v for k, v in result.timings_ms.items() if k != "total"})
        timings.update(publish_timings)
        self.latency.add(timings)

    def _publish(self, result, info, camera, header, image) -> dict[str, float]:
        """Publish every output; returns the time each one took (ms), building included."""
        s, timings = self.settings, {}
        t = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            timings[f"publish_{name}"] = (now - t) * 1e3
            t = now

        self.pub_depth.publish(depth_image_msg(result.depth, header, s.output_encoding))
        self.pub_info.publish(camera_info_with_header(info, header))
        lap("depth")
        # Optional outputs cost only when someone listens.
        if result.confidence is not None and self.pub_confidence.get_subscription_count() > 0:
            self.pub_confidence.publish(depth_image_msg(result.confidence, header, "32FC1"))
            lap("confidence")
        if s.publish_colored and self.pub_colored.get_subscription_count() > 0:
            far = s.colored_max_depth if s.colored_max_depth > s.pipeline.min_depth else s.pipeline.max_depth
            colored = colorize_depth(result.depth, s.pipeline.min_depth, far)
            self.pub_colored.publish(image_msg(colored, "rgb8", header))
            lap("colored")
        if s.publish_points and self.pub_points.get_subscription_count() > 0:
            self.pub_points.publish(self.points.msg(result.depth, camera, header, image))
            lap("points")
        if s.publish_prior and self.pub_prior.get_subscription_count() > 0:
            self.pub_prior.publish(depth_image_msg(result.prior.depth, header, "32FC1"))
            lap("prior")
        if self.pub_road is not None and result.road_mask is not None and self.pub_road.get_subscription_count() > 0:
            self.pub_road.publish(image_msg(result.road_mask.astype(np.uint8) * np.uint8(255), "mono8", header))
            lap("road_mask")
        return timings

    # executor thread: diagnostics -------------------------------------------------------------
    def _report(self, report: DiagnosticReport) -> None:
        if self.camera_info is not None:  # None while a lifecycle node is inactive
            self.camera_info.report(report)
        if self.road_mask is not None:
            self.road_mask.report(report)
        report_pose(self.pose_source, report)
        self.backends.report(report)
        self.output_checks.report(report)
        result = self._last_result
        report.add("output_source", result.source if result is not None else "none")
        report.add("fused", result.fused if result is not None else False)
        fit = result.alignment if result is not None else None
        report.add("fit_ok", fit.ok if fit is not None else "n/a")
        report.add("fit_inlier_fraction", fit.inlier_fraction if fit is not None else float("nan"))
        report.add("fit_residual", fit.residual if fit is not None else float("nan"))
        report.add("fit_scale", fit.scale if fit is not None else float("nan"))
        report.add("fit_shift", fit.shift if fit is not None else float("nan"))
        offsets = result.pose_offsets if result is not None else None
        report.add("pose_offset_pitch_deg", math.degrees(offsets.pitch) if offsets else float("nan"))
        report.add("pose_offset_roll_deg", math.degrees(offsets.roll) if offsets else float("nan"))
        report.add("pose_offset_height_m", offsets.height if offsets else float("nan"))
        report.add("pose_observed", ",".join(offsets.observed) if offsets and offsets.observed else "none")
        if offsets is not None and self.mount_check.disagrees(self.mount_check.last):
            report.escalate(WARN, f"the road says the camera is {math.degrees(offsets.pitch):+.1f} deg pitch, "
                                  f"{math.degrees(offsets.roll):+.1f} deg roll off its mount calibration for "
                                  f"{self.mount_check.last - self.mount_check.since:.0f} s: check the extrinsics")


class DepthNode(DepthComposition, Node):
    """The plain node: configured and active from construction; the network loads in the worker."""

    def __init__(self, retry_period: float = RETRY_PERIOD_S, **node_kwargs):
        super().__init__(self.NODE_NAME, **node_kwargs)
        self._declare(retry_period)
        self._configure(load_now=False)
        self._activate()


def main(args=None) -> int:
    return run_node(DepthNode, args)


if __name__ == "__main__":
    sys.exit(main())
