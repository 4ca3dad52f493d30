"""prior_node: the embodied metric prior alone (no network, no GPU, no image transport).

Each camera_info (drivers publish one per image, with the image's header) triggers one prior for
that header: ``prior/depth`` (32FC1 metres, NaN unknown), ``prior/mask`` (mono8 source codes:
0 none, 1 road, 2 ground, 3 vertical surface, 4 inpainted; see depth_prior_ros.prior.SOURCE_NAMES)
and ``prior/camera_info``. With a road segmenter (``segmentation_weights``) the node needs the
pixels: each ``image`` (or ``image/compressed``) is then the frame, with the camera_info of its stamp,
segmented every ``segmentation_every``-th frame, and its mask is published as ``prior/road_mask`` too.
Pose, road mask, frame accounting and /diagnostics work as in depth_node; its parameters are the
spec's prior_node subset (depth_prior_ros.parameters).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from ..models.segmentation import SegmentationSchedule
from ..parameters import PRIOR_NODE, parse_prior_params
from ..prior.cache import ScenePriorCache
from ..prior.scene import SOURCE_NONE
from .conversions import ConversionError, camera_info_with_header, depth_image_msg, image_msg, rgb_from_msg
from .diagnostics import DiagnosticReport, DiagnosticsPublisher, LatencyStats
from .inputs import CameraInfoInput, ImageInput, RoadMaskInput
from .params import RuntimeParameters, declare_and_read
from .pose_source import checked, make_pose_source, report_pose
from .qos import InputQosOverrides, publisher_qos, subscription_qos
from .runtime import FrameLog, run_node
from .worker import Frame, FrameDropped, FrameMailbox, FrameWorker

DROP_REASONS = ("busy", "invalid_camera_info", "no_pose", "road_mask_mismatch", "bad_frame", "error")
IMAGE_DROP_REASONS = ("invalid_image", "no_camera_info", "unpaired_camera_info", "camera_info_mismatch")  # with a segmenter


class PriorNode(InputQosOverrides, Node):
    NODE_NAME = PRIOR_NODE

    def __init__(self, **node_kwargs):
        super().__init__(self.NODE_NAME, **node_kwargs)
        values = declare_and_read(self, PRIOR_NODE)
        self.settings = s = parse_prior_params(values)
        self.params = RuntimeParameters(self, PRIOR_NODE, values, lambda v: checked(parse_prior_params(v)))
        self.log = FrameLog(self)
        self.pose_source = make_pose_source(self, s.pose)
        self.get_logger().info(f"camera pose from {self.pose_source.description}")
        cfg = s.pipeline
        self.priors = ScenePriorCache(cfg.prior_mode, cfg.min_depth, cfg.max_depth)
        segmenter = s.segmenter()
        self.segmentation = None if segmenter is None else SegmentationSchedule(segmenter, s.segmentation_every)

        # inputs: every camera_info is a frame (every image, with a segmenter)
        qos = subscription_qos(s.qos)
        self.camera_info = CameraInfoInput(self, qos, self.log.warn,
                                           on_info=self._on_camera_info if segmenter is None else None,
                                           tolerance=s.camera_info_tolerance)
        self.road_mask = RoadMaskInput(self, qos, self.log.warn) if s.use_road_mask else None
        # outputs
        out = publisher_qos(1)
        self.pub_depth = self.create_publisher(Image, "prior/depth", out)
        self.pub_mask = self.create_publisher(Image, "prior/mask", out)
        self.pub_info = self.create_publisher(CameraInfo, "prior/camera_info", out)
        self.pub_road = self.create_publisher(Image, "prior/road_mask", out) if segmenter is not None else None
        # frame hand-off, worker and diagnostics
        self.mailbox = FrameMailbox()
        if segmenter is not None:
            self.images = ImageInput(self, qos, self.camera_info, self.mailbox, self.log.dropped,
                                     s.image_transport)
        self.latency = LatencyStats()
        self.worker = FrameWorker(self.mailbox, self._process, self.log.dropped, self.log.failed,
                                  name=f"{self.NODE_NAME}_worker")
        reasons = DROP_REASONS + (IMAGE_DROP_REASONS if segmenter is not None else ())
        self.diagnostics = DiagnosticsPublisher(self, "prior", s.diagnostics_period, self.mailbox, self.latency,
                                                reasons, self._report)
        self.context.on_shutdown(self.mailbox.close)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.log.stopping = True
        self.worker.stop()

    # executor thread --------------------------------------------------------------------------
    def _on_camera_info(self, msg, camera, received_at: float) -> None:
        if camera is None:
            self.mailbox.reject("invalid_camera_info")  # CameraInfoInput logged the reason
        else:
            self.mailbox.put(Frame(msg, received_at, camera, msg))

    # worker thread ----------------------------------------------------------------------------
    def _apply_pending(self) -> None:
        new = self.params.take_pending()  # runtime parameters, applied before the next frame
        if new is None:
            return
        old, self.settings = self.settings, new
        cfg = new.pipeline
        if (cfg.prior_mode, cfg.min_depth, cfg.max_depth) != (old.pipeline.prior_mode, old.pipeline.min_depth,
                                                              old.pipeline.max_depth):
            self.priors = ScenePriorCache(cfg.prior_mode, cfg.min_depth, cfg.max_depth)
        if new.pose != old.pose:
            self.pose_source.apply(new.pose)

    def _process(self, frame: Frame) -> None:
        self._apply_pending()
        camera, header = frame.camera, frame.msg.header
        t0 = time.perf_counter()
        pose = self.pose_source.lookup(header.frame_id, header.stamp)
        mask = self.road_mask.for_camera(camera) if self.road_mask is not None else None
        if mask is None and self.segmentation is not None:
            try:
                rgb = rgb_from_msg(frame.msg, size=(camera.width, camera.height))
            except ConversionError as exc:
                raise FrameDropped("invalid_image", str(exc)) from exc
            mask = self.segmentation.road_mask(rgb)
            if self.pub_road.get_subscription_count() > 0:
                self.pub_road.publish(image_msg(mask.astype(np.uint8) * np.uint8(255), "mono8", header))
        try:
            prior = self.priors.prior(camera, pose, mask, inpaint=self.settings.pipeline.inpaint)
        except ValueError as exc:  # pose or mask the prior cannot use
            raise FrameDropped("bad_frame", str(exc)) from exc
        depth = self.priors.depth_in_range(prior)
        source = np.where(np.isnan(depth), np.uint8(SOURCE_NONE), prior.source)
        t1 = time.perf_counter()
        self.pub_depth.publish(depth_image_msg(depth, header, "32FC1"))
        self.pub_mask.publish(image_msg(source, "mono8", header))
        self.pub_info.publish(camera_info_with_header(frame.info, header))
        t2 = time.perf_counter()
        self.diagnostics.hardware_id = header.frame_id
        self.latency.add({"queue": (t0 - frame.received_at) * 1e3, "prior": (t1 - t0) * 1e3,
                          "publish": (t2 - t1) * 1e3, "node": (t2 - frame.received_at) * 1e3})

    # executor thread: diagnostics -------------------------------------------------------------
    def _report(self, report: DiagnosticReport) -> None:
        self.camera_info.report(report)
        if self.road_mask is not None:
            self.road_mask.report(report)
        report_pose(self.pose_source, report)


def main(args=None) -> int:
    return run_node(PriorNode, args)


if __name__ == "__main__":
    sys.exit(main())
