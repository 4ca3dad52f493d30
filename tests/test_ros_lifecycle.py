"""depth_lifecycle_node in its own process, driven through its real lifecycle services: configure ->
activate -> deactivate -> cleanup (and configure again), depth only while active. The camera pose comes
from a latched /tf_static, as a robot_state_publisher gives it (shipped defaults: use_tf true)."""
from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest

from ros_harness import header, make_camera, synthetic_gray, transform_msg

from depth_prior_ros.processes import NodeProcess, RosClient, wait_until

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (scripts/build_tf2_msgs.py)")
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from depth_prior_ros.geometry import pose_from_static  # noqa: E402
from depth_prior_ros.ros.conversions import camera_info_msg, depth_from_image_msg, image_msg  # noqa: E402
from depth_prior_ros.ros.qos import tf_broadcaster_qos  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

NS = f"/test_lifecycle_{os.getpid()}"
NODE = f"{NS}/depth_node"
WIDTH, HEIGHT = 320, 180
CAMERA = make_camera(WIDTH, HEIGHT)


def call(client, service_type, name: str, request):
    cli = client.node.create_client(service_type, f"{NODE}/{name}")
    try:
        assert cli.wait_for_service(timeout_sec=60.0), f"no {NODE}/{name} service"
        future = cli.call_async(request)
        assert wait_until(future.done, 60.0)
        return future.result()
    finally:
        client.node.destroy_client(cli)


def transition(client, transition_id: int) -> bool:
    return call(client, ChangeState, "change_state", ChangeState.Request(transition=Transition(id=transition_id))).success


def state(client) -> int:
    return call(client, GetState, "get_state", GetState.Request()).current_state.id


def test_lifecycle_gives_depth_only_while_active(tmp_path):
    node = NodeProcess("depth_prior_ros.ros.depth_lifecycle_node", {"diagnostics_period": 0.5},
                       tmp_path / "lifecycle.log", NS)
    node.start()
    client = RosClient("lifecycle_test")
    try:
        image_pub = client.publisher(Image, f"{NS}/image")
        info_pub = client.publisher(CameraInfo, f"{NS}/camera_info")
        static_pub = client.node.create_publisher(TFMessage, "/tf_static", tf_broadcaster_qos(True))
        static_pub.publish(TFMessage(transforms=[transform_msg(pose_from_static(1.5, math.radians(3.0)), 0)]))
        depth = client.subscribe(Image, f"{NS}/depth")
        sec = [0]

        def send_and_receive(timeout: float) -> np.ndarray | None:
            """Frames with new stamps until one's depth comes back within ``timeout``; None if none."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                sec[0] += 1
                stamp = sec[0]
                info_pub.publish(camera_info_msg(CAMERA, header(stamp)))
                image_pub.publish(image_msg(synthetic_gray(WIDTH, HEIGHT), "rgb8", header(stamp)))
                msg = depth.wait_for(lambda m: m.header.stamp.sec == stamp, timeout=0.3)
                if msg is not None:
                    return depth_from_image_msg(msg)
            return None

        assert state(client) == State.PRIMARY_STATE_UNCONFIGURED
        assert transition(client, Transition.TRANSITION_CONFIGURE), node.output()[-2000:]
        assert state(client) == State.PRIMARY_STATE_INACTIVE
        assert "ready" in node.output()  # the backend loaded in on_configure
        assert image_pub.get_subscription_count() == 0
        assert send_and_receive(1.5) is None

        assert transition(client, Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: image_pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0, 30)
        got = send_and_receive(30.0)
        assert got is not None, node.output()[-2000:]
        assert np.isfinite(got).mean() > 0.5  # the ground prior from the latched /tf_static pose

        assert transition(client, Transition.TRANSITION_DEACTIVATE)
        assert state(client) == State.PRIMARY_STATE_INACTIVE
        assert wait_until(lambda: image_pub.get_subscription_count() == 0, 30)
        assert send_and_receive(1.5) is None

        assert transition(client, Transition.TRANSITION_CLEANUP)
        assert state(client) == State.PRIMARY_STATE_UNCONFIGURED
        assert wait_until(lambda: client.node.count_publishers(f"{NS}/depth") == 0, 30)  # released
        assert transition(client, Transition.TRANSITION_CONFIGURE)  # and it comes back
        assert state(client) == State.PRIMARY_STATE_INACTIVE
        assert node.alive()
    finally:
        client.close()
        code = node.stop()
    assert code == 0, node.output()[-2000:]
    assert "Traceback" not in node.output()
