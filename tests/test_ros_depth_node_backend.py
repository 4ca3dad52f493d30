"""depth_node with a network backend that fails to load, then loads, then fails on one frame.

The node runs inside the test process (so the test can register its backend through the public
``register_backend`` extension point) but talks to the test only through real rclpy topics.
Expected: prior-based depth and ERROR while the backend cannot load, automatic retry and recovery,
network-based metric depth after it, a per-frame failure that falls back to the prior for that frame.
"""
from __future__ import annotations

import math
import os
import threading

import numpy as np
import pytest

from ros_harness import diagnostics_for, header, make_camera, synthetic_gray, wait_for_subscribers

from depth_prior_ros.processes import RosClient, wait_until

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from depth_prior_ros.geometry import pose_from_static  # noqa: E402
from depth_prior_ros.models import BackendBase, BackendError, Prediction, register_backend  # noqa: E402
from depth_prior_ros.prior import ground_depth  # noqa: E402
from depth_prior_ros.ros.conversions import camera_info_msg, depth_from_image_msg, image_msg  # noqa: E402
from depth_prior_ros.ros.depth_node import DepthNode  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

NS = f"/test_backend_{os.getpid()}"
WIDTH, HEIGHT = 320, 180
POSE = pose_from_static(1.5, math.radians(3.0))
CAMERA = make_camera(WIDTH, HEIGHT)
TRUE_DEPTH = ground_depth(CAMERA.K, WIDTH, HEIGHT, POSE, 80.0)
LOAD_ALLOWED = threading.Event()


class HalfScaleBackend(BackendBase):
    """Scale-ambiguous 'network': the true ground depth at half scale (20 m above the horizon);
    a frame whose first pixel is 255 makes it throw."""

    name = "test_half_scale"
    output_kind = "scale_depth"

    def predict(self, image):
        if image[0, 0, 0] == 255:
            raise RuntimeError("poisoned input")
        return Prediction(np.where(np.isfinite(TRUE_DEPTH), TRUE_DEPTH, 20.0).astype(np.float32) * 0.5,
                          "scale_depth")

    def warmup(self, width, height):
        self.predict(np.zeros((height, width, 3), np.uint8))


@register_backend("test_half_scale")
def _make(weights="", device="auto", dtype="fp16", **options):
    if not LOAD_ALLOWED.is_set():
        raise BackendError("CUDA out of memory (simulated)")
    return HalfScaleBackend()


@pytest.fixture(scope="module")
def setup():
    client = RosClient("backend_test")
    # use_tf false: this test is about the backend; the static pose stands in for tf (test_ros_tf_runtime.py)
    overrides = [Parameter("backend", value="test_half_scale"), Parameter("camera_pitch_deg", value=3.0),
                 Parameter("use_tf", value=False),
                 Parameter("diagnostics_period", value=0.3), Parameter("publish_colored", value=False),
                 Parameter("publish_points", value=False), Parameter("temporal_filter", value=False)]
    node = DepthNode(retry_period=0.5, context=client.context, namespace=NS, parameter_overrides=overrides)
    node.start()
    client.add_node(node)
    pubs = {"image": client.publisher(Image, f"{NS}/image"), "info": client.publisher(CameraInfo, f"{NS}/camera_info")}
    inbox = {"depth": client.subscribe(Image, f"{NS}/depth"), "diag": client.subscribe(DiagnosticArray, "/diagnostics")}
    assert wait_for_subscribers(pubs.values())
    yield node, pubs, inbox
    node.stop()
    client.executor.remove_node(node)
    node.destroy_node()
    client.close()


def stream_until(pubs, inbox, predicate, first_sec, poison=False, timeout=30.0):
    """Publish frames (new stamps) until the node's diagnostics satisfy predicate; returns (values, secs)."""
    sent, found = [], {}
    image = synthetic_gray(WIDTH, HEIGHT)
    if poison:
        image[0, 0] = 255

    def step():
        sec = first_sec + len(sent)
        sent.append(sec)
        pubs["info"].publish(camera_info_msg(CAMERA, header(sec)))
        pubs["image"].publish(image_msg(image, "rgb8", header(sec)))
        values = diagnostics_for(inbox["diag"], f"{NS}/depth_node: depth", predicate, timeout=0.3)
        if values is not None:
            found["values"] = values
        return values is not None

    wait_until(step, timeout=timeout, interval=0.0)
    return found.get("values"), sent


def road_error(depth_msg) -> float:
    depth = depth_from_image_msg(depth_msg)
    road = np.isfinite(TRUE_DEPTH) & (TRUE_DEPTH >= 0.5)
    return float(np.max(np.abs(depth[road] - TRUE_DEPTH[road]) / TRUE_DEPTH[road]))


def test_backend_failure_degrades_to_the_prior_then_recovers(setup):
    node, pubs, inbox = setup
    values, sent = stream_until(pubs, inbox, lambda v: v["backend_state"] == "failed"
                                and int(v["frames_processed"]) >= 1, 100)
    assert values is not None
    assert values["_level"] == 2 and "CUDA out of memory" in values["backend_error"]
    assert values["output_source"] == "prior"
    depth = inbox["depth"].wait_for(lambda m: m.header.stamp.sec in sent)
    assert depth is not None and road_error(depth) <= 0.02  # the prior keeps the output metric

    LOAD_ALLOWED.set()  # the next retry (every 0.5 s here) succeeds
    values, sent = stream_until(pubs, inbox, lambda v: v["backend_state"] == "ready"
                                and v["output_source"] == "network" and v["_level"] < 2, 200)
    assert values is not None and int(values["backend_load_attempts"]) >= 2
    assert float(values["fit_scale"]) == pytest.approx(2.0, rel=0.01)  # half-scale prediction, aligned
    depth = inbox["depth"].wait_for(lambda m: m.header.stamp.sec in sent[-3:])
    assert depth is not None and road_error(depth) <= 0.02

    failures = int(values["backend_frame_failures"])
    values, sent = stream_until(pubs, inbox, lambda v: int(v["backend_frame_failures"]) > failures
                                and v["_level"] == 2, 300, poison=True)
    assert values is not None and "poisoned input" in values["backend_error"]
    poisoned = inbox["depth"].wait_for(lambda m: m.header.stamp.sec in sent)
    assert poisoned is not None and road_error(poisoned) <= 0.02  # that frame fell back to the prior

    values, _ = stream_until(pubs, inbox, lambda v: v["_level"] < 2 and v["output_source"] == "network", 400)
    assert values is not None and values["backend_state"] == "ready"  # frames succeed again: no ERROR
    counts = node.mailbox.counts()
    assert counts.received == counts.processed + counts.dropped_total + counts.pending
