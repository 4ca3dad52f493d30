"""prior_node as its own process: camera_info in, metric prior + source mask + camera_info out."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ros_harness import (counts_add_up, diagnostics_for, header, latch_static_tf, make_camera, same_stamp,
                         wait_for_subscribers)

from depth_prior_ros.processes import NodeProcess, RosClient, wait_until

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from depth_prior_ros.geometry import pose_from_static  # noqa: E402
from depth_prior_ros.prior import SOURCE_GROUND, SOURCE_INPAINTED, SOURCE_NONE, ground_depth  # noqa: E402
from depth_prior_ros.ros.conversions import camera_info_msg, decode_image, depth_from_image_msg  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

NS = f"/test_prior_{os.getpid()}"
WIDTH, HEIGHT = 400, 240


def test_prior_node_publishes_the_prior_and_mask_for_each_camera_info(tmp_path):
    client = RosClient("prior_node_test")
    # Shipped defaults (best-effort input, use_tf true): the camera pose comes from a latched /tf_static.
    tf_static = latch_static_tf(client, pose_from_static(1.6, math.radians(4.0)), "front_optical")  # noqa: F841
    node = NodeProcess("depth_prior_ros.ros.prior_node", {"diagnostics_period": 0.3}, tmp_path / "prior_node.log",
                       NS).start()
    try:
        info_pub = client.publisher(CameraInfo, f"{NS}/camera_info")
        depth_in = client.subscribe(Image, f"{NS}/prior/depth")
        mask_in = client.subscribe(Image, f"{NS}/prior/mask")
        info_in = client.subscribe(CameraInfo, f"{NS}/prior/camera_info")
        diag_in = client.subscribe(DiagnosticArray, "/diagnostics")
        assert wait_for_subscribers([info_pub], timeout=60), node.output()
        assert wait_until(lambda: client.node.count_publishers(f"{NS}/prior/mask") > 0, 60), node.output()

        camera = make_camera(WIDTH, HEIGHT)
        sec = [50]

        def publish_and_receive():
            sec[0] += 1
            info_pub.publish(camera_info_msg(camera, header(sec[0], "front_optical")))
            return depth_in.wait_for(lambda m: m.header.stamp.sec == sec[0], timeout=1.0) is not None

        assert wait_until(publish_and_receive, timeout=30, interval=0.0), node.output()
        stamp_sec = sec[0]
        depth_msg = depth_in.wait_for(lambda m: m.header.stamp.sec == stamp_sec)
        mask_msg = mask_in.wait_for(lambda m: m.header.stamp.sec == stamp_sec)
        out_info = info_in.wait_for(lambda m: m.header.stamp.sec == stamp_sec)
        assert mask_msg is not None and out_info is not None
        assert depth_msg.header.frame_id == mask_msg.header.frame_id == "front_optical"
        assert same_stamp(out_info.header.stamp, depth_msg.header.stamp)
        np.testing.assert_allclose(np.asarray(out_info.k).reshape(3, 3), camera.K)

        depth = depth_from_image_msg(depth_msg)
        mask = decode_image(mask_msg.encoding, mask_msg.width, mask_msg.height, mask_msg.step, mask_msg.data)
        assert mask_msg.encoding == "mono8" and mask.shape == (HEIGHT, WIDTH)
        expected = ground_depth(camera.K, WIDTH, HEIGHT, pose_from_static(1.6, math.radians(4.0)), 80.0)
        ground = mask == SOURCE_GROUND
        assert ground.mean() > 0.3
        np.testing.assert_allclose(depth[ground], expected[ground], rtol=0.02)
        assert set(np.unique(mask)) <= {SOURCE_NONE, SOURCE_GROUND, SOURCE_INPAINTED}
        assert np.all(np.isnan(depth[mask == SOURCE_NONE])) and np.all(np.isfinite(depth[mask != SOURCE_NONE]))
        assert np.all(depth[np.isfinite(depth)] >= 0.5) and np.all(depth[np.isfinite(depth)] <= 80.0)

        # a camera_info the prior cannot use is counted, and the node carries on
        bad = camera_info_msg(camera, header(500, "front_optical"))
        bad.k = np.zeros(9)
        info_pub.publish(bad)
        values = diagnostics_for(diag_in, f"{NS}/prior_node: prior",
                                 lambda v: int(v["dropped_invalid_camera_info"]) >= 1 and int(v["frames_pending"]) == 0)
        assert values is not None, node.output()
        assert counts_add_up(values) and int(values["camera_info_rejected"]) >= 1
        assert wait_until(publish_and_receive, timeout=30, interval=0.0), node.output()
    finally:
        code = node.stop()
        client.close()
    output = node.output()
    assert code == 0 and "Traceback" not in output, output  # Ctrl-C: clean shutdown
