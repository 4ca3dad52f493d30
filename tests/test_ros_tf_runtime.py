"""depth_node as a pip install runs it, in its own process with the shipped defaults (use_tf true,
best-effort input): it follows a moving tf published on /tf through its own subscriptions (no tf2_ros
here), says so on /diagnostics while no transform comes, and takes runtime parameters through its real
set_parameters service. One node process serves every check (CI time)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ros_harness import diagnostics_for, header, make_camera, synthetic_gray, transform_msg, wait_for_subscribers

from depth_prior_ros.processes import NodeProcess, RosClient, wait_until

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs not built (scripts/build_tf2_msgs.py)")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from depth_prior_ros.geometry import pose_from_static  # noqa: E402
from depth_prior_ros.prior import ground_depth  # noqa: E402
from depth_prior_ros.ros.conversions import camera_info_msg, depth_from_image_msg, image_msg  # noqa: E402
from depth_prior_ros.ros.qos import tf_broadcaster_qos  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

NS = f"/test_tf_runtime_{os.getpid()}"
NODE = f"{NS}/depth_node"
WIDTH, HEIGHT = 1242, 375  # a KITTI frame: best effort over the tests' shared-memory transport
CAMERA = make_camera(WIDTH, HEIGHT)
FRAME = "cam_front_optical"
TFMESSAGE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    log = tmp_path_factory.mktemp("tf_runtime") / "depth_node.log"
    # Shipped defaults, except one qos_overrides entry (rclpy's QoS overriding options) on camera_info.
    overrides = {f"{NS}/camera_info": {"subscription": {"reliability": "reliable", "depth": 5}}}
    node = NodeProcess("depth_prior_ros.ros.depth_node", {"diagnostics_period": 0.3, "publish_colored": False,
                                                         "publish_points": False, "qos_overrides": overrides}, log, NS)
    node.start()
    client = RosClient("tf_runtime_test")
    pubs = {"image": client.publisher(Image, f"{NS}/image"), "info": client.publisher(CameraInfo, f"{NS}/camera_info")}
    tf_pub = client.node.create_publisher(TFMessage, "/tf", tf_broadcaster_qos(False))
    depth = client.subscribe(Image, f"{NS}/depth")
    diag = client.subscribe(DiagnosticArray, "/diagnostics")
    try:
        assert wait_for_subscribers(list(pubs.values()) + [tf_pub], 60), node.output()[-2000:]
        yield node, client, pubs, tf_pub, depth, diag
    finally:
        client.close()
        code = node.stop()
        assert code == 0, node.output()[-2000:]


def send_frame(pubs, depth_inbox, sec: int, timeout: float = 30.0):
    """camera_info + image stamped ``sec`` until the depth of that stamp comes back; the depth (H, W)."""
    image = image_msg(synthetic_gray(WIDTH, HEIGHT), "rgb8", header(sec, FRAME))
    info = camera_info_msg(CAMERA, header(sec, FRAME))
    got = {}

    def arrived() -> bool:
        msg = depth_inbox.wait_for(lambda m: m.header.stamp.sec == sec, timeout=0.5)
        if msg is None:
            pubs["info"].publish(info)  # best effort: a lost frame is simply sent again
            pubs["image"].publish(image)
            return False
        got["depth"] = depth_from_image_msg(msg)
        return True

    assert wait_until(arrived, timeout, 0.0), f"no depth for the frame stamped {sec}"
    return got["depth"]


def call(client, service_type, name: str, request):
    cli = client.node.create_client(service_type, f"{NODE}/{name}")
    try:
        assert cli.wait_for_service(timeout_sec=30.0)
        future = cli.call_async(request)
        assert wait_until(future.done, 30.0)
        return future.result()
    finally:
        client.node.destroy_client(cli)


def set_params(client, **values):
    request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
    return call(client, SetParameters, "set_parameters", request).results


def get_param(client, name: str):
    result = call(client, GetParameters, "get_parameters", GetParameters.Request(names=[name]))
    return parameter_value_to_python(result.values[0])


def test_inputs_take_the_sensor_data_qos_and_qos_overrides(rig):
    client = rig[1]

    def qos(topic: str):
        infos = client.node.get_subscriptions_info_by_topic(f"{NS}/{topic}")
        return infos[0].qos_profile if infos else None

    assert wait_until(lambda: qos("image") is not None and qos("camera_info") is not None, 30.0)
    # (the graph carries reliability and durability; history depth is not part of discovery)
    assert qos("image").reliability.name == "BEST_EFFORT"  # as shipped: sensor data
    assert qos("camera_info").reliability.name == "RELIABLE"  # qos_overrides./<ns>/camera_info...


def test_tf_subscription_is_the_real_tf2_type(rig):
    node, client = rig[0], rig[1]
    ns, name = NODE.rsplit("/", 1)

    def ours():
        return [i for i in client.node.get_subscriptions_info_by_topic("/tf")
                if i.node_name == name and i.node_namespace == ns]

    assert wait_until(lambda: ours(), 30.0)
    info = ours()[0]
    assert info.topic_type == "tf2_msgs/msg/TFMessage"
    assert str(info.topic_type_hash) == TFMESSAGE_HASH
    static = [i for i in client.node.get_subscriptions_info_by_topic("/tf_static") if i.node_name == name]
    assert static and static[0].qos_profile.durability.name == "TRANSIENT_LOCAL"  # tf2's static listener QoS


def test_no_transform_is_a_warning_never_silent(rig):
    node, client, pubs, tf_pub, depth, diag = rig
    image = image_msg(synthetic_gray(WIDTH, HEIGHT), "rgb8", header(5, "nowhere_optical"))
    info = camera_info_msg(CAMERA, header(5, "nowhere_optical"))

    def warned(values) -> bool:
        return int(values.get("dropped_no_pose", 0)) > 0 and values["_level"] >= 1 and "tf" in values["_message"]

    values = None
    for _ in range(20):
        pubs["info"].publish(info)
        pubs["image"].publish(image)
        values = diagnostics_for(diag, f"{NODE}: depth", warned, timeout=1.0)
        if values is not None:
            break
    assert values is not None, "a frame without a transform must be counted and diagnosed"
    assert "nowhere_optical" in values["_message"]
    assert values["pose_source"] == "tf" and "no tf2_ros" in values["pose_source_detail"]


def test_depth_follows_the_pitch_published_on_tf(rig):
    node, client, pubs, tf_pub, depth, diag = rig
    rows = slice(int(HEIGHT * 0.8), HEIGHT)  # near road: the ground plane in every pose
    results = {}
    for i, pitch in enumerate((0.0, 4.0, 8.0)):
        sec = 100 + i
        T = pose_from_static(1.5, math.radians(pitch))
        tf_pub.publish(TFMessage(transforms=[transform_msg(T, sec)]))
        got = send_frame(pubs, depth, sec)
        expected = ground_depth(CAMERA.K, WIDTH, HEIGHT, T, 80.0)
        both = np.isfinite(got[rows]) & np.isfinite(expected[rows])
        assert both.mean() > 0.9
        rel = np.abs(got[rows][both] - expected[rows][both]) / expected[rows][both]
        assert np.median(rel) < 0.01, f"pitch {pitch}: median relative error {np.median(rel):.4f}"
        results[pitch] = np.nanmedian(got[rows])
    # Tilting down brings the road nearer: the depth moved with the pose.
    assert results[0.0] > results[4.0] > results[8.0]
    values = diagnostics_for(diag, f"{NODE}: depth", lambda v: int(v.get("tf_lookups_ok", 0)) >= 3)
    assert values is not None


def test_max_depth_changes_at_runtime_and_a_bad_value_is_refused(rig):
    node, client, pubs, tf_pub, depth, diag = rig
    T = pose_from_static(1.5, math.radians(2.0))
    tf_pub.publish(TFMessage(transforms=[transform_msg(T, 200)]))
    before = send_frame(pubs, depth, 200)
    assert np.nanmax(before) > 30.0

    (ok,) = set_params(client, max_depth=30.0)
    assert ok.successful, ok.reason
    tf_pub.publish(TFMessage(transforms=[transform_msg(T, 201)]))
    after = send_frame(pubs, depth, 201)  # the next frame published
    assert np.nanmax(after) <= 30.0  # the scene prior fills the far field up to the new max_depth

    (bad,) = set_params(client, max_depth=-5.0)
    assert not bad.successful and "max_depth" in bad.reason
    (crossed,) = set_params(client, min_depth=40.0)  # in its own range, but not below max_depth (30)
    assert not crossed.successful and "min_depth" in crossed.reason and "max_depth" in crossed.reason
    (fixed,) = set_params(client, backend="ssd_student")
    assert not fixed.successful and "read-only" in fixed.reason.lower().replace("read only", "read-only")
    assert get_param(client, "max_depth") == 30.0 and get_param(client, "min_depth") == 0.5
    described = call(client, DescribeParameters, "describe_parameters",
                     DescribeParameters.Request(names=["max_depth", "backend"])).descriptors
    assert [d.read_only for d in described] == [False, True]  # what ros2 param describe shows
    tf_pub.publish(TFMessage(transforms=[transform_msg(T, 202)]))
    assert np.nanmax(send_frame(pubs, depth, 202)) <= 30.0  # the old (accepted) value still applies
    assert node.alive()
