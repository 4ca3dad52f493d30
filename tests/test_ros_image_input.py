"""Images as drivers publish them, through real depth_node processes (issue 10): a 1242x375 JPEG
CompressedImage stream at 10 Hz, every camera encoding the node converts, and camera_info paired by stamp.

Two nodes for the module (the second one started after the first one's stream): ``compressed`` (prior_only, image_transport compressed, with
the launch file's remapping of ``image`` to a driver's ``camera/image_raw``) and ``raw`` (the bundled demo
student network, so that depth depends on the pixels: a frame in each new encoding must give the depth of
the rgb8 frame holding the RGB the conversion makes; test_image_codec.py checks that RGB against
independent references).
"""
from __future__ import annotations

import array
import os
import time
from pathlib import Path

import numpy as np
import pytest

from ros_harness import counts_add_up, diagnostics_for, header, wait_for_subscribers

from depth_prior_ros.processes import NodeProcess, RosClient, wait_until

pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
cv2 = pytest.importorskip("cv2")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from depth_prior_ros.bench.driver import test_image as picture  # noqa: E402
from depth_prior_ros.geometry import PinholeCamera  # noqa: E402
from depth_prior_ros.ros.conversions import camera_info_msg, depth_from_image_msg, image_msg  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

NODE = "depth_prior_ros.ros.depth_node"
BASE = f"/test_input_{os.getpid()}"
NS = {"compressed": f"{BASE}_c", "raw": f"{BASE}_r"}
PARAMS = {"qos_reliability": "reliable", "qos_depth": 50, "diagnostics_period": 0.3, "use_tf": False,
          "publish_colored": False, "publish_points": False, "publish_prior": False}
KITTI = (1242, 375)
SMALL = (64, 48)
DEMO_STUDENT = Path(__file__).resolve().parents[1] / "src" / "depth_prior_ros" / "data" / "demo_student"
NETWORK = {"backend": "ssd_student", "weights": str(DEMO_STUDENT / "model.safetensors"), "device": "cpu",
           "dtype": "fp32", "temporal_filter": False, "camera_height": 1.65}
KITTI_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_000008" / "image.png"


def camera(size, f=None):
    width, height = size
    f = f or 0.8 * width
    return PinholeCamera(np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]]), width, height)


def _node(tmp_path_factory, which: str, params: dict, **kwargs):
    proc = NodeProcess(NODE, params, tmp_path_factory.mktemp("image_input") / f"{which}.log", NS[which],
                       **kwargs).start()
    yield proc
    code = proc.stop()
    assert code == 0 and "Traceback" not in proc.output(), proc.output()[-3000:]


@pytest.fixture(scope="module")
def compressed_node(tmp_path_factory):
    yield from _node(tmp_path_factory, "compressed", dict(PARAMS, image_transport="compressed"),
                     remaps={"image": "camera/image_raw"})


@pytest.fixture(scope="module")
def raw_node(tmp_path_factory):
    # Started once the compressed stream is done: its network loading would compete for the CPU.
    yield from _node(tmp_path_factory, "raw", dict(PARAMS, **NETWORK))


@pytest.fixture(scope="module")
def client():
    c = RosClient("image_input_test")
    yield c
    c.close()


@pytest.fixture(scope="module")
def diagnostics(client):
    return client.subscribe(DiagnosticArray, "/diagnostics", depth=50)


def _connect(client, node, diagnostics, ns: str, key: str, image_type, image_topic: str) -> dict:
    """Publishers into and subscriptions out of the node in ``ns``, once both sides are connected."""
    io = {key: client.publisher(image_type, f"{ns}/{image_topic}", depth=50),
          "info": client.publisher(CameraInfo, f"{ns}/camera_info", depth=50),
          "depth": client.subscribe(Image, f"{ns}/depth", depth=50),
          "out_info": client.subscribe(CameraInfo, f"{ns}/depth/camera_info", depth=50), "diag": diagnostics}
    assert wait_for_subscribers([io[key], io["info"]], timeout=60), node.output()[-2000:]
    assert wait_until(lambda: all(client.node.count_publishers(f"{ns}/{t}") for t in ("depth", "depth/camera_info")),
                      60), node.output()[-2000:]
    return io


@pytest.fixture(scope="module")
def compressed_io(client, compressed_node, diagnostics):
    return _connect(client, compressed_node, diagnostics, NS["compressed"], "jpeg", CompressedImage,
                    "camera/image_raw/compressed")


@pytest.fixture(scope="module")
def raw_io(client, raw_node, diagnostics):
    return _connect(client, raw_node, diagnostics, NS["raw"], "image", Image, "image")


def diag(io, which, predicate=lambda v: True, timeout=30.0):
    return diagnostics_for(io["diag"], f"{NS[which]}/depth_node: depth", predicate, timeout)


def jpeg_msg(rgb, sec, nanosec=0, quality=90):
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    msg = CompressedImage(header=header(sec, nanosec=nanosec), format="rgb8; jpeg compressed bgr8")
    msg.data = array.array("B", buf.tobytes())
    return msg


def stamp_of(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def send_until_depth(io, info_pub, image_pub, info, image, inbox, timeout=30.0):
    """Publish (camera_info, image) with one stamp until depth with that stamp comes back."""
    stamp = stamp_of(image)
    info.header = image.header

    def attempt():
        info_pub.publish(info)
        image_pub.publish(image)
        return inbox.wait_for(lambda m: stamp_of(m) == stamp, timeout=1.0) is not None

    return wait_until(attempt, timeout, interval=0.0)


def test_a_missing_camera_info_is_a_warning_naming_its_topic(compressed_io, compressed_node):
    io = compressed_io
    values = diag(io, "compressed", lambda v: int(v["camera_info_received"]) == 0)
    assert values is not None, compressed_node.output()[-2000:]
    assert values["_level"] == 1 and f"waiting for camera_info on {NS['compressed']}/camera_info" in values["_message"]


def test_a_jpeg_stream_at_kitti_size_and_10_hz_gets_depth_for_every_processed_frame(compressed_io, compressed_node):
    io, node = compressed_io, compressed_node
    rgb = picture(*KITTI)
    info = camera_info_msg(camera(KITTI))
    assert send_until_depth(io, io["info"], io["jpeg"], info, jpeg_msg(rgb, 1000), io["depth"]), \
        node.output()[-3000:]
    time.sleep(1.0)  # a retried first frame may still be on its way: count from after it
    settled = time.monotonic()
    start = diag(io, "compressed", lambda v: v["_time"] > settled and int(v["frames_pending"]) == 0)
    frames = 30
    sent = set()
    next_at = time.monotonic()
    msg = jpeg_msg(rgb, 1001)  # encoded once: the stream only changes the stamp
    for k in range(frames):
        msg.header = header(1001, nanosec=k * 100_000_000)
        info.header = msg.header
        io["info"].publish(info)
        io["jpeg"].publish(msg)
        sent.add(stamp_of(msg))
        next_at += 0.1
        time.sleep(max(0.0, next_at - time.monotonic()))
    end = diag(io, "compressed", lambda v: int(v["frames_pending"]) == 0
               and int(v["frames_received"]) >= int(start["frames_received"]) + frames)
    assert end is not None, node.output()[-3000:]
    delta = {k: int(end[k]) - int(start[k]) for k in end if k.startswith(("frames_", "dropped_"))}
    assert delta["frames_received"] == frames and counts_add_up(end)
    # Depth (and its depth/camera_info) for every processed frame. (Exact on the tests' shared-memory
    # loopback profile; over UDP alone the 1.8 MB depth images flood the test's socket.)
    infos = lambda: {stamp_of(m) for m in io["out_info"].messages} & sent  # noqa: E731
    depths = lambda: {stamp_of(m) for m in io["depth"].messages} & sent  # noqa: E731
    wait_until(lambda: len(depths()) >= delta["frames_processed"] and len(infos()) >= len(depths()), 10.0)
    assert delta["frames_processed"] == len(depths()) == len(infos()) > 0, (delta, len(depths()), len(infos()))
    assert delta["frames_received"] == delta["frames_processed"] + delta["frames_dropped"]
    assert {k for k, n in delta.items() if k.startswith("dropped_") and n} <= {"dropped_busy"}, delta
    depth = io["depth"].wait_for(lambda m: stamp_of(m) in sent)
    assert (depth.width, depth.height) == KITTI and depth.header.frame_id == "cam_front_optical"

    # Not JPEG at all, and a JPEG of another size than the camera_info: dropped with their reasons.
    bad = CompressedImage(header=header(1002), format="jpeg")
    bad.data = array.array("B", b"\x00" * 64)
    small = jpeg_msg(picture(320, 96), 1003)
    for msg in (bad, small):
        info.header = msg.header
        io["info"].publish(info)
        io["jpeg"].publish(msg)
    values = diag(io, "compressed", lambda v: int(v["dropped_invalid_image"]) >= 1
                  and int(v["dropped_camera_info_mismatch"]) >= 1)
    assert values is not None and node.alive(), node.output()[-3000:]


def encoded_frames(rgb: np.ndarray) -> dict[str, tuple[np.ndarray, str]]:
    """The same picture in each camera encoding the node converts: encoding -> (buffer, encoding)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    mosaic = np.empty(rgb.shape[:2], np.uint8)  # RGGB
    mosaic[0::2, 0::2], mosaic[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2], mosaic[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
    return {"bgr8": rgb[..., ::-1], "rgba8": np.concatenate([rgb, alpha], axis=2),
            "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2), "mono8": grey,
            "mono16": grey.astype(np.uint16) << 8, "bayer_rggb8": mosaic,
            "yuv422": cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY), "yuyv": cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUYV)}


@pytest.mark.skipif(not KITTI_IMAGE.is_file(), reason="the shared KITTI frame is not there")
def test_every_new_encoding_gives_the_depth_of_the_rgb8_frame_with_the_same_pixels(raw_io, raw_node):
    """A road scene (KITTI, half size) through the demo student: the network is used (not the prior
    alone), so equal depth means equal pixels went in."""
    io = raw_io
    from depth_prior_ros.ros.conversions import pixels_from_image_msg, to_rgb

    rgb = cv2.resize(cv2.imread(str(KITTI_IMAGE))[..., ::-1], (620, 186), interpolation=cv2.INTER_AREA)
    kitti_half = PinholeCamera(np.array([[360.77, 0, 304.78], [0, 360.77, 86.43], [0, 0, 1]]), 620, 186)
    info = camera_info_msg(kitti_half)
    assert diag(io, "raw", lambda v: v["backend_state"] == "ready", timeout=120) is not None, \
        raw_node.output()[-3000:]
    start = diag(io, "raw")
    sec = 2000
    for encoding, pixels in encoded_frames(rgb).items():
        msg = image_msg(pixels, encoding, header(sec))
        same = image_msg(to_rgb(pixels_from_image_msg(msg), encoding), "rgb8", header(sec + 1))
        depths = []
        for frame in (msg, same):
            assert send_until_depth(io, io["info"], io["image"], info, frame, io["depth"]), \
                f"{encoding}: {raw_node.output()[-3000:]}"
            depths.append(depth_from_image_msg(io["depth"].wait_for(lambda m: stamp_of(m) == stamp_of(frame))))
        np.testing.assert_array_equal(depths[0], depths[1], err_msg=encoding)
        sec += 2
    end = diag(io, "raw", lambda v: int(v["frames_pending"]) == 0 and v["output_source"] == "network")
    assert end is not None, raw_node.output()[-3000:]
    assert int(end["dropped_invalid_image"]) == int(start["dropped_invalid_image"]), end
    assert counts_add_up(end)


def test_camera_infos_of_two_cameras_interleaved_pair_by_stamp(raw_io, raw_node):
    """Two calibrations on one camera_info topic, 50 ms apart, the other camera's always the latest:
    each image gets the camera_info of its own stamp (the published depth/camera_info says which)."""
    io = raw_io
    rgb = picture(*SMALL)
    front, rear = camera(SMALL, f=50.0), camera(SMALL, f=80.0)
    for k in range(3):
        sec = 3000 + k
        before = int(diag(io, "raw")["camera_info_received"])
        io["info"].publish(camera_info_msg(front, header(sec)))
        io["info"].publish(camera_info_msg(rear, header(sec, nanosec=50_000_000)))
        assert diag(io, "raw", lambda v: int(v["camera_info_received"]) >= before + 2) is not None
        for nanosec, expected in ((0, front), (50_000_000, rear)):
            io["image"].publish(image_msg(rgb, "rgb8", header(sec, nanosec=nanosec)))
            out = io["out_info"].wait_for(lambda m: stamp_of(m) == (sec, nanosec))
            assert out is not None, raw_node.output()[-3000:]
            np.testing.assert_allclose(np.asarray(out.k).reshape(3, 3), expected.K)

    # An image no camera_info is near is given up as unpaired (after a short wait), and said so.
    before = int(diag(io, "raw")["dropped_unpaired_camera_info"])
    io["image"].publish(image_msg(rgb, "rgb8", header(3100)))
    values = diag(io, "raw", lambda v: int(v["dropped_unpaired_camera_info"]) == before + 1
                  and int(v["frames_pending"]) == 0)
    assert values is not None and counts_add_up(values), raw_node.output()[-3000:]
    assert float(values["camera_info_unpaired_gap_s"]) > 90
    assert "dropped a frame (unpaired_camera_info): no camera_info within camera_info_tolerance 0.01 s" in \
        raw_node.output()
