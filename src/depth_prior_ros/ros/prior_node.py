"""prior_node: the embodied metric prior alone (no network, no GPU, no image transport).

Each camera_info (drivers publish one per image, with the image's header) triggers one prior for
that header: ``prior/depth`` (32FC1 metres, NaN unknown), ``prior/mask`` (mono8 source codes:
0 none, 1 road, 2 ground, 3 vertical surface, 4 inpainted; see depth_prior_ros.prior.SOURCE_NAMES)
and ``prior/camera_info``. Pose, road mask, frame accounting and /diagnostics work as in depth_node;
parameters are the geometry / prior / QoS / diagnostics subset (params.PRIOR_NODE_DEFAULTS).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from ..pipeline import DepthPipeline
from ..prior.scene import SOURCE_NONE
from .camera_node import CameraNodeBase, run_node
from .conversions import camera_info_with_header, depth_image_msg, image_msg, mask_depth_range
from .params import PRIOR_NODE_DEFAULTS, parse_prior_params
from .qos import publisher_qos
from .worker import Frame, FrameDropped

DROP_REASONS = ("busy", "invalid_camera_info", "no_pose", "road_mask_mismatch", "bad_frame", "error")


class PriorNode(CameraNodeBase):
    NODE_NAME = "prior_node"
    status_name = "prior"
    drop_reasons = DROP_REASONS

    def __init__(self, **node_kwargs):
        super().__init__(self.NODE_NAME, PRIOR_NODE_DEFAULTS, parse_prior_params, **node_kwargs)
        self.pipeline = DepthPipeline(None, self.settings.pipeline)  # only its cached prior is used
        qos = publisher_qos(1)
        self.pub_depth = self.create_publisher(Image, "prior/depth", qos)
        self.pub_mask = self.create_publisher(Image, "prior/mask", qos)
        self.pub_info = self.create_publisher(CameraInfo, "prior/camera_info", qos)

    def on_camera_info(self, msg, camera, received_at: float) -> None:
        if camera is None:
            self.mailbox.reject("invalid_camera_info")  # the warning was logged by the base class
        else:
            self.mailbox.put(Frame(msg, received_at, {"camera": camera}))

    def handle_frame(self, frame: Frame) -> None:
        msg, camera, header = frame.msg, frame.extras["camera"], frame.msg.header
        t0 = time.perf_counter()
        pose = self.pose_for(header)
        mask = self.road_mask_for(camera)
        try:
            prior = self.pipeline.compute_prior(camera, pose, mask)
        except ValueError as exc:  # pose or mask the prior cannot use
            raise FrameDropped("bad_frame", str(exc)) from exc
        cfg = self.settings.pipeline
        depth = mask_depth_range(prior.depth, cfg.min_depth, cfg.max_depth)
        source = np.where(np.isnan(depth), np.uint8(SOURCE_NONE), prior.source)
        t1 = time.perf_counter()
        self.pub_depth.publish(depth_image_msg(depth, header, "32FC1"))
        self.pub_mask.publish(image_msg(source, "mono8", header))
        self.pub_info.publish(camera_info_with_header(msg, header))
        t2 = time.perf_counter()
        self.hardware_id = header.frame_id
        self.latency.add({"queue": (t0 - frame.received_at) * 1e3, "prior": (t1 - t0) * 1e3,
                          "publish": (t2 - t1) * 1e3, "node": (t2 - frame.received_at) * 1e3})


def main(args=None) -> int:
    return run_node(PriorNode, args)


if __name__ == "__main__":
    sys.exit(main())
