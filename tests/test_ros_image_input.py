"""Images as drivers publish them, through real depth_node processes (issue 10): a 1242x375 JPEG
CompressedImage stream at 10 Hz, every camera encoding the node converts, and camera_info paired by stamp.

Two nodes for the module (started together): ``compressed`` (image_transport compressed, with the launch
file's remapping of ``image`` to a driver's ``camera/image_raw``) and ``raw``. Both run prior_only: the
depth does not depend on the pixels there, so the conversions themselves are compared with rgb8 in
test_image_codec.py; here every frame of a new encoding must be processed, not dropped.
"""
from __future__ import annotations

import array
import os
import time

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
from depth_prior_ros.ros.conversions import camera_info_msg, image_msg  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

NODE = "depth_prior_ros.ros.depth_node"
BASE = f"/test_input_{os.getpid()}"
NS = {"compressed": f"{BASE}_c", "raw": f"{BASE}_r"}
PARAMS = {"qos_reliability": "reliable", "qos_depth": 50, "diagnostics_period": 0.3, "use_tf": False,
          "publish_colored": False, "publish_points": False, "publish_prior": False}
KITTI = (1242, 375)
SMALL = (64, 48)


def camera(size, f=None):
    width, height = size
    f = f or 0.8 * width
    return PinholeCamera(np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]]), width, height)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    logs = tmp_path_factory.mktemp("image_input")
    procs = {"compressed": NodeProcess(NODE, dict(PARAMS, image_transport="compressed"), logs / "compressed.log",
                                       NS["compressed"], remaps={"image": "camera/image_raw"}).start(),
             "raw": NodeProcess(NODE, PARAMS, logs / "raw.log", NS["raw"]).start()}
    yield procs
    for proc in procs.values():
        code = proc.stop()
        assert code == 0 and "Traceback" not in proc.output(), proc.output()[-3000:]


@pytest.fixture(scope="module")
def client():
    c = RosClient("image_input_test")
    yield c
    c.close()


@pytest.fixture(scope="module")
def io(client, nodes):
    ns_c, ns_r = NS["compressed"], NS["raw"]
    io = {"jpeg": client.publisher(CompressedImage, f"{ns_c}/camera/image_raw/compressed", depth=50),
          "info_c": client.publisher(CameraInfo, f"{ns_c}/camera_info", depth=50),
          "image": client.publisher(Image, f"{ns_r}/image", depth=50),
          "info_r": client.publisher(CameraInfo, f"{ns_r}/camera_info", depth=50),
          "depth_c": client.subscribe(Image, f"{ns_c}/depth", depth=50),
          "depth_r": client.subscribe(Image, f"{ns_r}/depth", depth=50),
          "out_info_r": client.subscribe(CameraInfo, f"{ns_r}/depth/camera_info", depth=50),
          "diag": client.subscribe(DiagnosticArray, "/diagnostics", depth=50)}
    publishers = [io[k] for k in ("jpeg", "info_c", "image", "info_r")]
    assert wait_for_subscribers(publishers, timeout=60), {k: p.output()[-2000:] for k, p in nodes.items()}
    return io


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


def test_a_missing_camera_info_is_a_warning_naming_its_topic(io, nodes):
    values = diag(io, "compressed", lambda v: int(v["camera_info_received"]) == 0)
    assert values is not None, nodes["compressed"].output()[-2000:]
    assert values["_level"] == 1 and f"waiting for camera_info on {NS['compressed']}/camera_info" in values["_message"]


def test_a_jpeg_stream_at_kitti_size_and_10_hz_gets_depth_for_every_processed_frame(io, nodes):
    rgb = picture(*KITTI)
    info = camera_info_msg(camera(KITTI))
    assert send_until_depth(io, io["info_c"], io["jpeg"], info, jpeg_msg(rgb, 1000), io["depth_c"]), \
        nodes["compressed"].output()[-3000:]
    time.sleep(1.0)  # a retried first frame may still be on its way: count from after it
    settled = time.monotonic()
    start = diag(io, "compressed", lambda v: v["_time"] > settled and int(v["frames_pending"]) == 0)
    frames = 30
    sent = set()
    next_at = time.monotonic()
    for k in range(frames):
        msg = jpeg_msg(rgb, 1001, k * 100_000_000)
        info.header = msg.header
        io["info_c"].publish(info)
        io["jpeg"].publish(msg)
        sent.add(stamp_of(msg))
        next_at += 0.1
        time.sleep(max(0.0, next_at - time.monotonic()))
    end = diag(io, "compressed", lambda v: int(v["frames_pending"]) == 0
               and int(v["frames_received"]) >= int(start["frames_received"]) + frames)
    assert end is not None, nodes["compressed"].output()[-3000:]
    delta = {k: int(end[k]) - int(start[k]) for k in end if k.startswith(("frames_", "dropped_"))}
    got = lambda: {stamp_of(m) for m in io["depth_c"].messages} & sent  # noqa: E731
    assert delta["frames_received"] == frames and counts_add_up(end)
    wait_until(lambda: len(got()) >= delta["frames_processed"], 10.0)
    assert delta["frames_processed"] == len(got()) > 0, delta  # depth for every processed frame
    assert delta["frames_received"] == delta["frames_processed"] + delta["frames_dropped"]
    assert {k for k, n in delta.items() if k.startswith("dropped_") and n} <= {"dropped_busy"}, delta
    depth = io["depth_c"].wait_for(lambda m: stamp_of(m) in sent)
    assert (depth.width, depth.height) == KITTI and depth.header.frame_id == "cam_front_optical"

    # Not JPEG at all, and a JPEG of another size than the camera_info: dropped with their reasons.
    bad = CompressedImage(header=header(1002), format="jpeg")
    bad.data = array.array("B", b"\x00" * 64)
    small = jpeg_msg(picture(320, 96), 1003)
    for msg in (bad, small):
        info.header = msg.header
        io["info_c"].publish(info)
        io["jpeg"].publish(msg)
    values = diag(io, "compressed", lambda v: int(v["dropped_invalid_image"]) >= 1
                  and int(v["dropped_camera_info_mismatch"]) >= 1)
    assert values is not None and nodes["compressed"].alive(), nodes["compressed"].output()[-3000:]


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


def test_every_new_encoding_is_processed_not_dropped(io, nodes):
    rgb = picture(*SMALL)
    info = camera_info_msg(camera(SMALL))
    start = diag(io, "raw")
    for k, (encoding, pixels) in enumerate(encoded_frames(rgb).items()):
        msg = image_msg(pixels, encoding, header(2000 + k))
        assert send_until_depth(io, io["info_r"], io["image"], info, msg, io["depth_r"]), \
            f"{encoding}: {nodes['raw'].output()[-3000:]}"
    end = diag(io, "raw", lambda v: int(v["frames_pending"]) == 0)
    assert int(end["dropped_invalid_image"]) == int(start["dropped_invalid_image"]), end
    assert counts_add_up(end)


def test_camera_infos_of_two_cameras_interleaved_pair_by_stamp(io, nodes):
    """Two calibrations on one camera_info topic, 50 ms apart, the other camera's always the latest:
    each image gets the camera_info of its own stamp (the published depth/camera_info says which)."""
    rgb = picture(*SMALL)
    front, rear = camera(SMALL, f=50.0), camera(SMALL, f=80.0)
    for k in range(3):
        sec = 3000 + k
        before = int(diag(io, "raw")["camera_info_received"])
        io["info_r"].publish(camera_info_msg(front, header(sec)))
        io["info_r"].publish(camera_info_msg(rear, header(sec, nanosec=50_000_000)))
        assert diag(io, "raw", lambda v: int(v["camera_info_received"]) >= before + 2) is not None
        for nanosec, expected in ((0, front), (50_000_000, rear)):
            io["image"].publish(image_msg(rgb, "rgb8", header(sec, nanosec=nanosec)))
            out = io["out_info_r"].wait_for(lambda m: stamp_of(m) == (sec, nanosec))
            assert out is not None, nodes["raw"].output()[-3000:]
            np.testing.assert_allclose(np.asarray(out.k).reshape(3, 3), expected.K)

    # An image no camera_info is near is given up as unpaired (after a short wait), and said so.
    before = int(diag(io, "raw")["dropped_unpaired_camera_info"])
    io["image"].publish(image_msg(rgb, "rgb8", header(3100)))
    values = diag(io, "raw", lambda v: int(v["dropped_unpaired_camera_info"]) == before + 1
                  and int(v["frames_pending"]) == 0)
    assert values is not None and counts_add_up(values), nodes["raw"].output()[-3000:]
    assert float(values["camera_info_unpaired_gap_s"]) > 90
    assert "dropped a frame (unpaired_camera_info): no camera_info within camera_info_tolerance 0.01 s" in \
        nodes["raw"].output()
