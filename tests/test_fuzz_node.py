"""The live depth_node against garbage messages: one node process for the whole module.

A real depth_node (prior_only, reliable QoS) gets a handful of malformed images and camera_infos, then
hypothesis-generated Image fields, then a valid frame. Properties: the node stays alive and keeps
publishing, every bad frame is dropped and counted under a reason (received = processed + dropped),
no exception escapes into its log, and the depth it publishes is never negative or infinite.
"""
from __future__ import annotations

import array
import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from depth_prior_ros.bench.driver import CAMERA_FRAME, Driver  # noqa: E402
from depth_prior_ros.bench.transport import DEPTH_NODE_MODULE, depth_node_params  # noqa: E402
from depth_prior_ros.processes import (NodeProcess, choose_domain_id, isolated_ros, log_problems,  # noqa: E402
                                       unique_namespace)
from depth_prior_ros.ros.conversions import depth_from_image_msg  # noqa: E402

pytestmark = pytest.mark.ros

DOMAIN_ID = choose_domain_id()  # the run's domain; the namespace below keeps concurrent runs apart
W, H = 64, 48
K = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])
TIMEOUT = 30.0


class LiveNode:
    """The node process + the test's driver, with helpers to send messages and check health."""

    def __init__(self, tmp_path):
        namespace = unique_namespace("fuzz")
        # Reliable keep-last 100 on both sides: a burst of bad frames must reach the node even when a
        # loaded CI machine stalls its executor for a while (keep-last 10 lost frames that way).
        self.proc = NodeProcess(DEPTH_NODE_MODULE, depth_node_params("reliable", 100, 0.3),
                                tmp_path / "depth_node_fuzz.log", namespace=namespace)
        self.driver = Driver(W, H, K, namespace=namespace, reliable=True, qos_depth=100, camera_pose=(1.5, 5.0),
                             diagnostics_name=f"{namespace}/depth_node:")  # the mount on /tf_static (use_tf)
        self.sent_images = 0

    def publish_image(self, msg, stamp_ns: int | None = None) -> None:
        now = time.time_ns() if stamp_ns is None else stamp_ns
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        self.driver.pub_image.publish(msg)
        self.sent_images += 1
        time.sleep(0.005)

    def publish_info(self, msg) -> None:
        """Publish a camera_info and wait until the node has taken it (topics are not ordered among
        each other, so an image sent right after could otherwise overtake it)."""
        before = self.info_count()
        self.driver.pub_info.publish(msg)
        deadline = time.monotonic() + TIMEOUT
        while self.info_count() <= before:
            assert time.monotonic() < deadline, "depth_node never reported the camera_info"
            time.sleep(0.02)

    def info_count(self) -> int:
        values = self.driver.last_diagnostics() or {}
        return int(values.get("camera_info_received", "0") or 0)

    def valid_frame_gives_sane_depth(self) -> np.ndarray:
        """A good camera_info + image must come back as depth: the node is alive and still working."""
        self.publish_info(self.driver.info_msg)
        stamp = self.driver.publish_frame(info=False)
        self.sent_images += 1
        msg = self.driver.wait_for_output(stamp, TIMEOUT)
        assert msg is not None, f"no depth for a valid frame; node log:\n{self.proc.output()[-3000:]}"
        depth = depth_from_image_msg(msg)
        known = depth[~np.isnan(depth)]
        assert known.size > 0 and np.all(np.isfinite(known)) and np.all(known >= 0.5) and np.all(known <= 80.0)
        return depth

    def counters(self) -> dict:
        """The node's counters once it has seen every image sent and has nothing pending."""
        deadline = time.monotonic() + TIMEOUT
        values = None
        while time.monotonic() < deadline:
            values = self.driver.last_diagnostics()
            if values and int(values.get("frames_received", -1)) >= self.sent_images \
                    and values.get("frames_pending") == "0":
                return values
            time.sleep(0.05)
        raise AssertionError(f"node counters never caught up with {self.sent_images} images: {values}")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with isolated_ros(DOMAIN_ID, "shm"):
        node = LiveNode(tmp_path_factory.mktemp("fuzz_node"))
        with node.proc, node.driver:
            node.driver.wait_connected([node.driver.pub_image, node.driver.pub_info], ["depth"], TIMEOUT)
            deadline = time.monotonic() + TIMEOUT
            while node.driver.last_diagnostics() is None:  # the node's first report: it is up
                assert time.monotonic() < deadline, node.proc.output()[-3000:]
                time.sleep(0.05)
            node.valid_frame_gives_sane_depth()
            yield node
            exit_code = node.proc.stop()
        text = node.proc.output()
        assert exit_code == 0, f"depth_node exited with {exit_code} on SIGINT:\n{text[-3000:]}"
        assert not log_problems(text), log_problems(text)


def image(encoding="rgb8", width=W, height=H, step=None, data_len=None, fill=90, frame_id=CAMERA_FRAME,
          bigendian=0):
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1}.get(encoding, 4)
    msg = Image()
    msg.header.frame_id = frame_id
    msg.encoding, msg.width, msg.height, msg.is_bigendian = encoding, width, height, bigendian
    msg.step = width * channels if step is None else step
    n = msg.step * height if data_len is None else data_len
    msg.data = array.array("B", bytes([fill]) * n)
    return msg


def camera_info(k=None, d=(), width=W, height=H, model="plumb_bob"):
    msg = CameraInfo()
    msg.header.frame_id = "camera"
    msg.width, msg.height, msg.distortion_model = width, height, model
    msg.k = list(K.ravel() if k is None else k)
    msg.d = list(d)
    return msg


def _k(fx=50.0, fy=50.0, value=None):
    return [value] * 9 if value is not None else [fx, 0, 31.5, 0, fy, 23.5, 0, 0, 1]


# The malformed messages a hostile test sent the live node (issue 13), each with the drop reason it must
# be counted under. The encodings stay unsupported when new ones (rgba8, bayer, yuv, mono16) are converted.
UNSUPPORTED_ENCODINGS = ["", "32FC1", "64FC1", "8SC1", "32SC4", "rgb16", "RGB8", "jpeg", "mono8 ",
                         "rgb8\n[ERROR] forged", "x" * 100_000]
BAD_IMAGES = {
    "invalid_image": [image(e, step=W * 3) for e in UNSUPPORTED_ENCODINGS] + [
        image("rgb8", step=W * 3 - 1), image("mono8", step=2 ** 32 - 1, data_len=10),  # wrong step
        image("rgb8", data_len=W * H * 3 - 1), image("rgb8", data_len=W * H * 3 + 1),  # wrong size
        image("rgb8", data_len=0),
        image("rgb8", width=0, height=0, step=0), image("rgb8", width=0, height=H, step=0),  # 0 dimensions
        image("rgb8", width=2 ** 31, height=1, step=0, data_len=16),  # 2^31 dimensions
        image("mono8", width=1, height=2 ** 31, step=1, data_len=16),
        image("rgb8", width=65536, height=65536, step=65536 * 3, data_len=16),
        image("rgb8", width=100_000, height=1, data_len=16), image("mono8", width=1, height=100_000, data_len=16),
    ],
    "camera_info_mismatch": [image("rgb8", width=W // 2, height=H // 2), image("mono8", width=W + 1),
                             image("bgr8", height=H - 1)],
}
# Processed (or shed as busy while the node works; no_pose for a frame_id tf does not know): what a camera
# may legitimately send.
GOOD_IMAGES = [image("mono8"), image("bgr8"), image("rgb8", step=W * 3 + 5), image("rgb8", frame_id="x" * 500),
               image("rgb8", bigendian=1),  # 8-bit pixels have no byte order
               image("rgb8", frame_id="other_camera")]  # a frame_id that differs from the camera_info's
BAD_INFOS = [
    camera_info(k=_k(value=0.0)), camera_info(k=_k(value=np.nan)), camera_info(k=_k(value=np.inf)),
    camera_info(k=_k(fx=-50.0)), camera_info(k=_k(fx=1e-3, fy=1e-3)),  # zero, NaN, inf, negative, tiny K
    camera_info(d=[0.1, 0.2, 0.3]), camera_info(d=[0.1] * 6), camera_info(d=[np.nan] * 5),  # wrong D
    camera_info(d=[np.inf] * 5), camera_info(d=[1e10, 0, 0, 0, 0]),
    *[camera_info(model=m, d=[0.1, 0.1, 0.1, 0.1]) for m in ("equidistant", "fisheye", "kannala_brandt",
                                                              "double_sphere", "PLUMB_BOB")],
    camera_info(width=0, height=0), camera_info(width=100_000, height=100_000),
]
BACKWARDS_S = (0, -1, -2)  # three images, each stamped a second before the previous one


def test_malformed_messages_are_dropped_under_their_reason_and_the_node_goes_on(live):
    """One pass over every malformed case: the node stays alive, each drop is counted under its reason
    (exactly), the good frames are processed or shed as busy, and nothing is lost."""
    before = live.counters()
    for msgs in BAD_IMAGES.values():
        for msg in msgs:
            live.publish_image(msg)
    for msg in GOOD_IMAGES:
        live.publish_image(msg)
    now = time.time_ns()
    for seconds in BACKWARDS_S:
        live.publish_image(image("rgb8"), stamp_ns=now + seconds * 10 ** 9)
    for info in BAD_INFOS:
        live.publish_info(info)
        live.publish_image(image("rgb8"))
    assert live.proc.alive(), live.proc.output()[-3000:]
    live.valid_frame_gives_sane_depth()
    after = live.counters()
    delta = lambda key: int(after.get(key, 0)) - int(before.get(key, 0))  # noqa: E731
    assert delta("dropped_invalid_image") == len(BAD_IMAGES["invalid_image"])
    assert delta("dropped_camera_info_mismatch") == len(BAD_IMAGES["camera_info_mismatch"])
    assert delta("dropped_invalid_camera_info") == len(BAD_INFOS)
    assert delta("camera_info_rejected") >= len(BAD_INFOS)
    assert delta("dropped_error") == 0
    good = len(GOOD_IMAGES) + len(BACKWARDS_S) + 1  # + the valid frame at the end
    # The two frame_ids without a transform in tf (use_tf as shipped) have no pose: dropped as no_pose
    # unless shed as busy first.
    assert delta("dropped_no_pose") <= 2
    assert delta("frames_processed") + delta("dropped_busy") + delta("dropped_no_pose") == good
    assert delta("frames_received") == sum(len(m) for m in BAD_IMAGES.values()) + good + len(BAD_INFOS)
    assert int(after["frames_received"]) == int(after["frames_processed"]) + int(after["frames_dropped"])


@st.composite
def fuzzed_images(draw):
    encoding = draw(st.sampled_from(["rgb8", "bgr8", "mono8", "rgba8", "32FC1", "", "RGB8"]))
    width = draw(st.sampled_from([W, W, W // 2, 0, 1, 4096]))
    height = draw(st.sampled_from([H, H, 1, 0, 4096]))
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1}.get(encoding, 4)
    step = draw(st.sampled_from([width * channels, width * channels + 1, max(width * channels - 1, 0), 0]))
    length = draw(st.sampled_from([step * height, step * height + 1, max(step * height - 1, 0), 7]))
    length = min(length, W * H * 4)
    return image(encoding, width, height, step, length, fill=draw(st.integers(0, 255)),
                 frame_id=draw(st.sampled_from(["camera", "", "\u00fc" * 20])))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(msg=fuzzed_images(), with_info=st.booleans())
def test_fuzzed_images_never_break_the_node(live, msg, with_info):
    if with_info:
        live.publish_info(live.driver.info_msg)
    live.publish_image(msg)
    assert live.proc.alive(), live.proc.output()[-3000:]


def test_after_all_that_the_node_still_publishes_and_accounts_for_every_frame(live):
    depth = live.valid_frame_gives_sane_depth()
    # The bottom rows see the road: the prior there is the analytic ground depth, within 2%.
    v = H - 1
    y = (v - K[1, 2]) / K[1, 1]
    pitch = math.radians(5.0)
    expected = 1.5 / (y * math.cos(pitch) + math.sin(pitch))
    assert abs(float(np.nanmedian(depth[v])) - expected) / expected < 0.02
    values = live.counters()
    assert int(values["frames_received"]) == live.sent_images
    assert int(values["frames_received"]) == int(values["frames_processed"]) + int(values["frames_dropped"])
    assert int(values.get("dropped_error", 0)) == 0
    assert live.proc.alive()
