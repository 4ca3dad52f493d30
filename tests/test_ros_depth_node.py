"""depth_node as its own process, driven through real rclpy topics (loopback discovery, own domain id).

Acceptance (issue 2): depth with the input's stamp and frame_id, road values within 2% of the analytic
ground depth, the matching depth/camera_info; malformed frames are dropped and counted while the node
keeps running; received = processed + dropped under a burst; configuration errors fail at start.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from ros_harness import (counts_add_up, diagnostics_for, header, latch_static_tf, make_camera, publish_reliably,
                         run_node_expecting_exit, same_stamp, synthetic_gray, wait_for_subscribers)

from depth_prior_ros.processes import NodeProcess, RosClient, wait_until

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from depth_prior_ros.geometry import pose_from_static  # noqa: E402
from depth_prior_ros.prior import ground_depth  # noqa: E402
from depth_prior_ros.ros.conversions import (camera_info_msg, depth_from_image_msg, image_msg,  # noqa: E402
                                            rgb_from_image_msg)

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

NS = f"/test_depth_{os.getpid()}"  # unique even if two runs share a domain id
WIDTH, HEIGHT = 640, 360
HEIGHT_M, PITCH_DEG = 1.5, 2.0
NODE = "depth_prior_ros.ros.depth_node"


@pytest.fixture(scope="module")
def client():
    c = RosClient("depth_node_test")
    yield c
    c.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    # use_tf as shipped (the pose from a latched /tf_static, see io); reliable input with history 10, not the
    # shipped best effort: the tests below count every message they send, malformed ones included.
    params = {"camera_height": 1.0, "camera_pitch_deg": 2,  # an integer on purpose: accepted as 2.0
              "qos_reliability": "reliable", "qos_depth": 10, "diagnostics_period": 0.3, "points_decimation": 8}
    proc = NodeProcess(NODE, params, tmp_path_factory.mktemp("depth_node") / "node.log", NS).start()
    yield proc
    code = proc.stop()
    output = proc.output()
    assert code == 0, output
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def io(client, node):
    """Publishers and inboxes, connected to the node before any test publishes."""
    pubs = {"image": client.publisher(Image, f"{NS}/image", depth=100),
            "info": client.publisher(CameraInfo, f"{NS}/camera_info"),
            "tf_static": latch_static_tf(client, pose_from_static(HEIGHT_M, math.radians(PITCH_DEG)))}
    inbox = {"depth": client.subscribe(Image, f"{NS}/depth"),
             "info": client.subscribe(CameraInfo, f"{NS}/depth/camera_info"),
             "colored": client.subscribe(Image, f"{NS}/depth/colored"),
             "points": client.subscribe(PointCloud2, f"{NS}/depth/points"),
             "prior": client.subscribe(Image, f"{NS}/prior/depth"),
             "diag": client.subscribe(DiagnosticArray, "/diagnostics")}
    assert wait_for_subscribers([pubs["image"], pubs["info"]], timeout=60), node.output()
    assert wait_until(lambda: client.node.count_publishers(f"{NS}/depth") > 0, 60), node.output()
    return pubs, inbox


def send_frame(pubs, sec, frame_id="cam_front_optical"):
    """camera_info + the synthetic image, both stamped sec."""
    h = header(sec, frame_id)
    pubs["info"].publish(camera_info_msg(make_camera(WIDTH, HEIGHT), h))
    publish_reliably(pubs["image"], image_msg(synthetic_gray(WIDTH, HEIGHT), "rgb8", h))


def depth_for(pubs, inbox, sec, timeout=30.0, frame_id="cam_front_optical"):
    """Publish (camera_info, image) at stamp sec until depth with that stamp arrives (topics are not
    ordered with respect to each other, so one publication is not enough to be sure)."""
    found = None

    def attempt():
        nonlocal found
        send_frame(pubs, sec, frame_id)
        found = inbox["depth"].wait_for(lambda m: m.header.stamp.sec == sec, timeout=1.0)
        return found is not None

    wait_until(attempt, timeout=timeout, interval=0.0)
    return found


def diag(inbox, predicate=lambda v: True, timeout=30.0):
    return diagnostics_for(inbox["diag"], f"{NS}/depth_node: depth", predicate, timeout)


def test_depth_matches_the_analytic_ground_depth_and_keeps_stamp_and_frame(io, node):
    pubs, inbox = io
    depth_msg = depth_for(pubs, inbox, 100, frame_id="cam_front_optical")
    assert depth_msg is not None, node.output()
    assert depth_msg.header.frame_id == "cam_front_optical" and depth_msg.header.stamp.nanosec == 0
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == ("32FC1", WIDTH, HEIGHT)

    depth = depth_from_image_msg(depth_msg)
    camera = make_camera(WIDTH, HEIGHT)
    expected = ground_depth(camera.K, WIDTH, HEIGHT, pose_from_static(HEIGHT_M, math.radians(PITCH_DEG)), 80.0)
    road = np.isfinite(expected) & (expected >= 0.5)
    assert road.mean() > 0.3  # the lower part of the image sees the road
    rel = np.abs(depth[road] - expected[road]) / expected[road]
    assert np.all(rel <= 0.02), f"max relative error {rel.max():.4f}"
    assert np.all(np.isnan(depth) | (depth > 0))

    info = inbox["info"].wait_for(lambda m: same_stamp(m.header.stamp, depth_msg.header.stamp))
    assert info is not None and info.header.frame_id == "cam_front_optical"
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), camera.K)
    assert (info.width, info.height) == (WIDTH, HEIGHT)

    # Optional outputs are built only once the node has matched a subscriber: keep streaming until then.
    sec = [100]

    def optional_outputs_arrived():
        sec[0] += 1
        send_frame(pubs, sec[0])
        return all(inbox[k].wait_for(lambda m: m.header.stamp.sec > 100, timeout=0.5) is not None
                   for k in ("colored", "points", "prior"))

    assert wait_until(optional_outputs_arrived, timeout=30, interval=0.0), node.output()
    colored = inbox["colored"].wait_for(lambda m: m.header.stamp.sec > 100)
    assert colored.encoding == "rgb8" and rgb_from_image_msg(colored).shape == (HEIGHT, WIDTH, 3)
    cloud = inbox["points"].wait_for(lambda m: m.header.stamp.sec > 100)
    assert (cloud.height, cloud.width) == (HEIGHT // 8, WIDTH // 8) and cloud.header.frame_id == "cam_front_optical"
    prior = inbox["prior"].wait_for(lambda m: m.header.stamp.sec > 100)
    assert prior.encoding == "32FC1" and prior.header.frame_id == "cam_front_optical"

    values = diag(inbox, lambda v: int(v["frames_processed"]) >= 1)
    assert values is not None and values["pose_source"] == "tf" and values["backend_state"] == "ready"
    assert "height 1.500 m" in values["pose"]  # tf's pose, not the static camera_height (1.0) parameter
    assert values["output_source"] == "prior" and counts_add_up(values)
    assert float(values["latency_node_ms"]) > 0


def raw_image(sec, encoding="rgb8", width=WIDTH, height=HEIGHT, step=None, size=None):
    import array

    step = width * 3 if step is None else step
    msg = Image(header=header(sec), encoding=encoding, width=width, height=height, step=step)
    msg.data = array.array("B", bytes(step * height if size is None else size))
    return msg


def test_malformed_frames_are_dropped_counted_and_the_node_keeps_going(io, node):
    pubs, inbox = io
    assert depth_for(pubs, inbox, 200) is not None, node.output()
    before = diag(inbox)
    base_invalid = int(before["dropped_invalid_image"])

    bad_images = [raw_image(201, step=WIDTH * 3 - 1),                       # wrong step
                  raw_image(202, size=WIDTH * 3 * HEIGHT - 100),            # data too short
                  raw_image(203, encoding="yuv422", width=WIDTH - 1, step=WIDTH * 2),  # odd width for 4:2:2
                  raw_image(204, encoding="bgra16", step=WIDTH * 8)]
    for msg in bad_images:
        pubs["image"].publish(msg)
    values = diag(inbox, lambda v: int(v["dropped_invalid_image"]) >= base_invalid + 4)
    assert values is not None, node.output()
    warned = diag(inbox, lambda v: v["_level"] == 1 and "invalid_image" in v["_message"], timeout=5)
    assert warned is not None  # the period with the drops is WARN and names the reason

    # camera_info with a zero K: rejected and counted; images meanwhile are dropped as invalid_camera_info
    zero_k = camera_info_msg(make_camera(WIDTH, HEIGHT), header(205))
    zero_k.k = np.zeros(9)
    rejected = int(values["camera_info_rejected"])
    pubs["info"].publish(zero_k)
    assert diag(inbox, lambda v: int(v["camera_info_rejected"]) > rejected) is not None, node.output()
    pubs["image"].publish(image_msg(synthetic_gray(WIDTH, HEIGHT), "rgb8", header(205)))
    assert diag(inbox, lambda v: int(v["dropped_invalid_camera_info"]) >= 1) is not None, node.output()

    # camera_info for another image size: the image is dropped as camera_info_mismatch
    small = camera_info_msg(make_camera(320, 180), header(206))
    received = int(diag(inbox)["camera_info_received"])
    pubs["info"].publish(small)
    assert diag(inbox, lambda v: int(v["camera_info_received"]) > received) is not None
    pubs["image"].publish(image_msg(synthetic_gray(WIDTH, HEIGHT), "rgb8", header(206)))
    values = diag(inbox, lambda v: int(v["dropped_camera_info_mismatch"]) >= 1)
    assert values is not None, node.output()

    assert node.alive(), node.output()
    assert not any(m.header.stamp.sec in (201, 202, 203, 204, 205, 206) for m in inbox["depth"].messages)
    assert depth_for(pubs, inbox, 300) is not None, node.output()  # the next valid frame goes through
    values = diag(inbox, lambda v: int(v["frames_pending"]) == 0 and int(v["frames_processed"]) >= 3)
    assert counts_add_up(values)
    assert "dropped a frame (invalid_image)" in node.output()  # the throttled log line


def test_burst_accounting_adds_up_and_the_newest_frame_gets_through(io, node):
    pubs, inbox = io
    assert depth_for(pubs, inbox, 400) is not None, node.output()
    start = diag(inbox, lambda v: int(v["frames_pending"]) == 0)
    image = synthetic_gray(WIDTH, HEIGHT)
    burst = list(range(401, 461))
    info = camera_info_msg(make_camera(WIDTH, HEIGHT))
    for sec in burst:  # each image with its camera_info, as a driver sends them (paired by stamp)
        info.header = header(sec)
        pubs["info"].publish(info)
        publish_reliably(pubs["image"], image_msg(image, "rgb8", header(sec)))
    last = inbox["depth"].wait_for(lambda m: m.header.stamp.sec == burst[-1])
    assert last is not None, node.output()
    values = diag(inbox, lambda v: int(v["frames_pending"]) == 0
                  and int(v["frames_received"]) > int(start["frames_received"])
                  and int(v["frames_processed"]) > int(start["frames_processed"]))
    assert values is not None and counts_add_up(values), values
    assert int(values["frames_received"]) - int(start["frames_received"]) <= len(burst)
    assert node.alive()


@pytest.mark.parametrize("params, fragment", [
    ({"backend": "no_such_net"}, "parameter 'backend' names unknown backend 'no_such_net'"),
    ({"weights": "/nonexistent/model.safetensors"},
     "parameter 'weights': '/nonexistent/model.safetensors' does not exist"),
    ({"backend_options": "not-json"}, "parameter 'backend_options' is not valid JSON"),
    ({"min_depth": 90.0}, "'min_depth' (90.0) and 'max_depth' (80.0)"),
])
def test_configuration_errors_stop_the_node_at_start(params, fragment):
    code, output = run_node_expecting_exit(NODE, params)
    assert code == 2, output
    assert fragment in output and "Traceback" not in output
