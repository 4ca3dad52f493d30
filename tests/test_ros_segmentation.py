"""The nodes with a road segmenter (the real OpenVINO road model on the real KITTI frame), and depth_node's
diagnostics for outputs that are wrong without an error (#13.1) and frames beyond the card's input
bounds (#13.5). The nodes run in this process and talk to the test through real rclpy topics."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from helpers_models import REPO, SHARED_DATA, tiny_depth_anything, write_card, write_hf_folder
from ros_harness import counts_add_up, diagnostics_for, header, make_camera, synthetic_gray, wait_for_subscribers

from depth_prior_ros.processes import RosClient, wait_until

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from depth_prior_ros.geometry import PinholeCamera  # noqa: E402
from depth_prior_ros.models.card import card_path_for  # noqa: E402
from depth_prior_ros.models.export import export_onnx  # noqa: E402
from depth_prior_ros.ros.conversions import (camera_info_msg, depth_from_image_msg, image_msg,  # noqa: E402
                                             mask_from_image_msg)
from depth_prior_ros.ros.depth_node import DepthNode  # noqa: E402
from depth_prior_ros.ros.prior_node import PriorNode  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

ROAD = REPO.parent / "shared" / "models" / "road_segmentation_adas_0001" / "road-segmentation-adas-0001.xml"
ROAD_CARD = REPO / "tests" / "cards" / "road-segmentation-adas-0001.card.json"
KITTI = SHARED_DATA / "kitti_000008"
needs_shared = pytest.mark.skipif(not ROAD.is_file() or not KITTI.is_dir(),
                                  reason="../shared/models or ../shared/data is absent")


def kitti_frame():
    """(RGB image, PinholeCamera) of kitti_000008."""
    import cv2

    from depth_prior_ros.replay.datasets import kitti_camera_from_P

    calib = json.loads((KITTI / "calib.json").read_text())
    K, _ = kitti_camera_from_P(np.asarray(calib["projection_P2_3x4"]))
    image = cv2.cvtColor(cv2.imread(str(KITTI / "image.png")), cv2.COLOR_BGR2RGB)
    return image, PinholeCamera(K, image.shape[1], image.shape[0])


class Harness:
    """One node in this process and a client with its topics."""

    def __init__(self, node_class, ns: str, params: dict, outputs: tuple[str, ...]):
        self.client = RosClient(f"seg_test_{ns.strip('/')}")
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        self.node = node_class(context=self.client.context, namespace=ns, parameter_overrides=overrides)
        self.node.start()
        self.client.add_node(self.node)
        self.ns = ns
        self.pubs = {"image": self.client.publisher(Image, f"{ns}/image"),
                     "info": self.client.publisher(CameraInfo, f"{ns}/camera_info")}
        self.inbox = {name: self.client.subscribe(Image, f"{ns}/{name}") for name in outputs}
        self.inbox["diag"] = self.client.subscribe(DiagnosticArray, "/diagnostics")

    def send(self, image, camera, sec: int) -> None:
        self.pubs["info"].publish(camera_info_msg(camera, header(sec)))
        self.pubs["image"].publish(image_msg(image, "rgb8", header(sec)))

    def received(self, topic: str, sec: int, image, camera, timeout: float = 60.0):
        """Publish frames (stamp ``sec``, then later ones) until ``topic`` brings one of them back."""
        sent = []

        def step():
            sent.append(sec + len(sent))
            self.send(image, camera, sent[-1])
            return self.inbox[topic].wait_for(lambda m: m.header.stamp.sec in sent, timeout=1.0) is not None

        assert wait_until(step, timeout, interval=0.0), f"no {topic} from the node"
        return self.inbox[topic].wait_for(lambda m: m.header.stamp.sec in sent, timeout=1.0)

    def close(self) -> None:
        self.node.stop()
        self.client.executor.remove_node(self.node)
        self.node.destroy_node()
        self.client.close()


@pytest.fixture(scope="module")
def offline_reference():
    """The offline pipeline's road mask and prior depth on kitti_000008 with the node's default pose."""
    from depth_prior_ros.models.segmentation import load_segmenter
    from depth_prior_ros.parameters import parse_depth_params
    from depth_prior_ros.pipeline import DepthPipeline

    image, camera = kitti_frame()
    settings = parse_depth_params({"use_tf": False})
    pipeline = DepthPipeline(None, settings.pipeline, load_segmenter(str(ROAD), str(ROAD_CARD)))
    result = pipeline.process(image, camera, settings.pose.static_pose())
    return image, camera, result


@needs_shared
def test_depth_node_segments_publishes_the_mask_and_uses_it_for_the_prior(offline_reference):
    image, camera, expected = offline_reference
    h = Harness(DepthNode, f"/seg_depth_{os.getpid()}", {"use_tf": False, "segmentation_weights": str(ROAD),
                                                         "segmentation_card": str(ROAD_CARD),
                                                         "diagnostics_period": 0.3},
                ("depth", "prior/road_mask"))
    try:
        assert wait_for_subscribers(h.pubs.values())
        mask_msg = h.received("prior/road_mask", 10, image, camera)
        assert mask_msg.encoding == "mono8"
        assert np.array_equal(mask_from_image_msg(mask_msg), expected.road_mask)
        depth_msg = h.inbox["depth"].wait_for(lambda m: m.header.stamp.sec == mask_msg.header.stamp.sec)
        assert depth_msg is not None
        np.testing.assert_array_equal(depth_from_image_msg(depth_msg), expected.depth)
        values = diagnostics_for(h.inbox["diag"], f"{h.ns}/depth_node: depth",
                                 lambda v: int(v["frames_processed"]) >= 1)
        assert values["frames_empty_output"] == "0" and values["frames_no_agreement"] == "0"
        assert "latency_segmentation_ms" in values and counts_add_up(values)
    finally:
        h.close()


@needs_shared
def test_prior_node_takes_the_image_when_it_segments(offline_reference):
    from depth_prior_ros.prior import SOURCE_ROAD

    image, camera, expected = offline_reference
    h = Harness(PriorNode, f"/seg_prior_{os.getpid()}", {"use_tf": False, "segmentation_weights": str(ROAD),
                                                         "segmentation_card": str(ROAD_CARD)},
                ("prior/road_mask", "prior/mask"))
    try:
        assert wait_for_subscribers(h.pubs.values())
        mask_msg = h.received("prior/road_mask", 20, image, camera)
        road = mask_from_image_msg(mask_msg)
        assert np.array_equal(road, expected.road_mask)
        codes = h.inbox["prior/mask"].wait_for(lambda m: m.header.stamp.sec == mask_msg.header.stamp.sec)
        source = np.frombuffer(bytes(codes.data), np.uint8).reshape(codes.height, codes.width)
        assert np.array_equal(source == SOURCE_ROAD, expected.prior.source == SOURCE_ROAD)
    finally:
        h.close()


@pytest.fixture(scope="module")
def metric_sidecar(tmp_path_factory):
    """#13.1's model: an exported affine-disparity graph whose card beside it says metric_depth."""
    work = tmp_path_factory.mktemp("sidecar")
    folder = write_hf_folder(tiny_depth_anything(seed=4), work / "hf")
    onnx = export_onnx("ssd_student", str(folder), work / "model.onnx", height=56, width=98).onnx_path
    card = json.loads(card_path_for(onnx).read_text())
    write_card(card_path_for(onnx), dict(card, output_kind="metric_depth"))
    return onnx


def test_empty_output_is_an_error_with_a_counter_and_oversized_inputs_are_dropped(metric_sidecar):
    camera = make_camera(160, 90)
    h = Harness(DepthNode, f"/seg_empty_{os.getpid()}", {"backend": "onnx", "weights": str(metric_sidecar),
                                                         "device": "cpu", "diagnostics_period": 0.3,
                                                         "camera_pitch_deg": 3.0, "use_tf": False},
                ("depth",))
    try:
        assert wait_for_subscribers(h.pubs.values())
        h.received("depth", 30, synthetic_gray(160, 90), camera)
        values = diagnostics_for(h.inbox["diag"], f"{h.ns}/depth_node: depth",
                                 lambda v: int(v.get("frames_empty_output", "0")) >= 1 and v["_level"] == 2)
        assert values is not None and "no valid pixel" in values["_message"]
        wide = make_camera(2000, 2)
        h.send(np.zeros((2, 2000, 3), np.uint8), wide, 90)
        values = diagnostics_for(h.inbox["diag"], f"{h.ns}/depth_node: depth",
                                 lambda v: v.get("dropped_network_input_rejected") == "1")
        assert values is not None and counts_add_up(values)
    finally:
        h.close()
