"""Fuzzing the ROS message conversions (hypothesis) with real sensor_msgs messages.

Image fields (encoding, width, height, step, data length, is_bigendian) and CameraInfo fields (K with
zeros / NaN / negatives, D of odd lengths and values, distortion model, size, binning, roi) go through
depth_prior_ros.ros.conversions. Properties: a result of the promised shape, or a ConversionError whose
message is one clear sentence; no other exception type; depth going out is never negative or infinite.
"""
from __future__ import annotations

import array
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers_errors import assert_one_sentence

from depth_prior_ros.colorize import colorize_depth
from depth_prior_ros.ros.conversions import (IMAGE_ENCODINGS, ConversionError, camera_from_info,
                                             camera_from_info_fields, camera_info_msg, check_image_layout,
                                             decode_image, depth_from_image_msg, depth_image_msg,
                                             encode_depth, mask_from_image_msg, rgb_from_image_msg, rgb_view,
                                             to_rgb, PointCloudBuilder)

sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 wheels) is not installed")

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UINT32 = 2 ** 32 - 1
ENCODINGS = ["rgb8", "bgr8", "mono8", "rgba8", "bgra8", "mono16", "16UC1", "32FC1", "8UC1", "8UC3", "yuv422",
             "yuyv", "bayer_rggb8", "bayer_gbrg8", "RGB8", "", " rgb8", "rgb8\x00", "\u00e9ncoding", "x" * 60]
# Encodings a hostile or broken publisher may send, that must not turn into long or multi-line log text.
HOSTILE_ENCODINGS = ["x" * 5000, "rgb8\n[ERROR] [depth_node]: forged log line"]


@st.composite
def image_fields(draw):
    """(encoding, width, height, step, data bytes, is_bigendian): mostly near-valid, some absurd."""
    encoding = draw(st.sampled_from(ENCODINGS))
    width = draw(st.one_of(st.integers(0, 40), st.sampled_from([UINT32, 2 ** 31, 65536])))
    height = draw(st.one_of(st.integers(0, 30), st.sampled_from([UINT32, 2 ** 31])))
    channels = IMAGE_ENCODINGS.get(encoding, draw(st.integers(1, 4)))
    natural = width * channels
    step = draw(st.one_of(st.just(natural), st.integers(0, 200), st.sampled_from([natural - 1, natural + 3, UINT32])))
    step = min(max(step, 0), UINT32)
    expected = step * height
    length = draw(st.one_of(st.just(expected), st.integers(0, 4096),
                            st.sampled_from([expected - 1, expected + 1, 0])))
    length = int(min(max(length, 0), 1 << 16))  # never allocate more than 64 KiB per example
    data = draw(st.binary(min_size=min(length, 64), max_size=min(length, 64))).ljust(length, b"\x7f")
    return encoding, width, height, step, data, draw(st.integers(0, 255))


def make_image(encoding, width, height, step, data, bigendian):
    msg = sensor_msgs.Image()
    msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian = encoding, width, height, step, bigendian
    buf = array.array("B")
    buf.frombytes(data)
    msg.data = buf
    return msg


@FUZZ
@given(fields=image_fields())
def test_image_decoding_gives_the_promised_shape_or_one_sentence(fields):
    encoding, width, height, step, data, big = fields
    try:
        channels = check_image_layout(encoding, width, height, step, len(data))
    except ConversionError as exc:
        assert_one_sentence(exc)
        with pytest.raises(ConversionError):
            decode_image(encoding, width, height, step, data)
        return
    pixels = decode_image(encoding, width, height, step, data, bigendian=bool(big))
    assert pixels.dtype == (np.uint16 if encoding == "mono16" else np.uint8) and pixels.shape[:2] == (height, width)
    assert (pixels.ndim == 2) == (channels == 1 or encoding == "mono16")
    rgb = rgb_from_image_msg(make_image(*fields))
    assert rgb.shape == (height, width, 3) and rgb.flags.c_contiguous
    assert rgb_view(pixels, encoding).shape == (height, width, 3)
    assert np.array_equal(to_rgb(pixels, encoding), rgb)


@FUZZ
@given(fields=image_fields(), mask_encoding=st.sampled_from(["mono8", "8UC1", "rgb8", "mono16", ""]))
def test_road_mask_messages_decode_or_one_sentence(fields, mask_encoding):
    encoding, width, height, step, data, big = fields
    try:
        mask = mask_from_image_msg(make_image(mask_encoding, width, height, step, data, big))
    except ConversionError as exc:
        assert_one_sentence(exc)
        return
    assert mask.dtype == bool and mask.shape == (height, width)


@FUZZ
@given(encoding=st.sampled_from(["32FC1", "16UC1", "32FC3", "64FC1", "mono8", ""]), width=st.integers(0, 12),
       height=st.integers(0, 9), step_delta=st.sampled_from([0, 0, 1, -1, 4, -4, 3]),
       length_delta=st.sampled_from([0, 0, 0, 1, -1, -5]), big=st.integers(0, 1), seed=st.integers(0, 2 ** 16))
def test_depth_images_in_honour_byte_order_or_one_sentence(encoding, width, height, step_delta, length_delta, big,
                                                           seed):
    itemsize = 2 if encoding == "16UC1" else 4
    step = max(width * itemsize + step_delta, 0)
    raw = np.random.default_rng(seed).integers(0, 256, max(step * height + length_delta, 0), dtype=np.uint8).tobytes()
    msg = make_image(encoding, width, height, step, raw, big)
    try:
        depth = depth_from_image_msg(msg)
    except ConversionError as exc:
        assert_one_sentence(exc)
        return
    assert depth.shape == (height, width)
    assert depth.dtype == np.float32 or (encoding == "32FC1" and depth.dtype.kind == "f")
    if encoding == "32FC1" and width and height:
        wire = np.frombuffer(raw, dtype=">f4" if big else "<f4").reshape(height, step // 4)[:, :width]
        np.testing.assert_array_equal(depth.astype(np.float32), wire.astype(np.float32))


depth_values = st.sampled_from([np.nan, np.inf, -np.inf, -1.0, -0.0, 0.0, 1e-45, 0.4999, 0.5, 1.0, 65.535,
                                65.5355, 80.0, 1e30, 3.4e38])


@FUZZ
@given(values=st.lists(depth_values | st.floats(-100, 100, width=32), min_size=1, max_size=64),
       encoding=st.sampled_from(["32FC1", "16UC1"]))
def test_depth_going_out_is_never_negative_or_infinite(values, encoding):
    depth = np.array(values, np.float32).reshape(1, -1)
    msg = depth_image_msg(depth, None, encoding)
    assert msg.encoding == encoding and msg.height == 1 and msg.width == depth.shape[1]
    back = depth_from_image_msg(msg)
    known = back[~np.isnan(back)]
    assert np.all(np.isfinite(known)) and np.all(known >= 0)
    if encoding == "16UC1":
        assert np.all(known > 0) and np.all(known <= 65.535)  # 0 means unknown in REP 118
    colors = colorize_depth(depth, 0.5, 80.0)
    assert colors.shape == (1, depth.shape[1], 3) and colors.dtype == np.uint8


@pytest.mark.parametrize("shape", [(3,), (2, 2, 2), ()])
def test_depth_arrays_of_the_wrong_rank_are_one_sentence(shape):
    with pytest.raises(ConversionError) as info:
        encode_depth(np.zeros(shape, np.float32))
    assert_one_sentence(info.value)


k_value = st.one_of(st.floats(-1e4, 1e4), st.sampled_from([0.0, -0.0, -500.0, np.nan, np.inf, -np.inf, 1e-300]))


@st.composite
def camera_info_fields(draw):
    k = [draw(k_value) for _ in range(9)]
    if draw(st.booleans()):  # mostly a plausible pinhole so the deeper checks run too
        k = [draw(k_value), 0.0, draw(k_value), 0.0, draw(k_value), draw(k_value), 0.0, 0.0, 1.0]
    if draw(st.integers(0, 5)) == 0:
        k = [0.0] * 9  # an uncalibrated camera publishes zeros
    d = draw(st.lists(st.one_of(st.floats(-2.0, 2.0), st.sampled_from([0.0, np.nan, np.inf, 1e9])), max_size=16))
    model = draw(st.sampled_from(["plumb_bob", "rational_polynomial", "equidistant", "fisheye", "", "PLUMB_BOB"]))
    width, height = draw(st.integers(0, 64)), draw(st.integers(0, 48))
    binning = (draw(st.integers(0, 5)), draw(st.integers(0, 5)))
    roi = (draw(st.integers(0, 70)), draw(st.integers(0, 50)), draw(st.integers(0, 70)), draw(st.integers(0, 50)))
    return k, d, width, height, model, binning, roi


@FUZZ
@given(fields=camera_info_fields())
def test_camera_info_gives_a_usable_camera_or_one_sentence(fields):
    k, d, width, height, model, (bx, by), roi = fields
    msg = sensor_msgs.CameraInfo()
    msg.k, msg.d, msg.width, msg.height, msg.distortion_model = k, d, width, height, model
    msg.binning_x, msg.binning_y = bx, by
    msg.roi.x_offset, msg.roi.y_offset, msg.roi.width, msg.roi.height = roi
    try:
        camera = camera_from_info(msg)
    except ConversionError as exc:
        assert_one_sentence(exc)
        return
    # A camera that passed must be usable end to end: rays, the point-cloud rays, a ground prior.
    assert camera.width > 0 and camera.height > 0
    assert np.all(np.isfinite(camera.K)) and camera.fx > 0 and camera.fy > 0
    rays = PointCloudBuilder(4).rays(camera)
    assert rays.shape[-1] == 2
    from depth_prior_ros.geometry import pose_from_static
    from depth_prior_ros.pipeline import DepthPipeline, PipelineConfig

    with np.errstate(all="ignore"):
        result = DepthPipeline(None, PipelineConfig()).process(
            np.zeros((camera.height, camera.width, 3), np.uint8), camera, pose_from_static(1.5, math.radians(5)))
    known = result.depth[~np.isnan(result.depth)]
    assert np.all(np.isfinite(known)) and np.all(known >= 0.5)
    # Round trip through a message keeps the calibration.
    again = camera_from_info(camera_info_msg(camera))
    np.testing.assert_allclose(again.K, camera.K)


@pytest.mark.parametrize("k", [[0.0] * 9, [np.nan] * 9, [-500.0, 0, 320, 0, 500, 240, 0, 0, 1],
                               [500.0, 0, 320, 0, 500, 240, 0, 0, 0], [500.0, 0, 320, 7, 500, 240, 0, 0, 1]])
def test_bad_intrinsics_are_rejected_with_a_reason(k):
    with pytest.raises(ConversionError) as info:
        camera_from_info_fields(k, [], 640, 480)
    assert_one_sentence(info.value)
    assert "K" in str(info.value)


def test_wrong_number_of_k_values_is_one_sentence():
    for k in ([1.0] * 8, [1.0] * 10, []):
        with pytest.raises(ConversionError) as info:
            camera_from_info_fields(k, [], 640, 480)
        assert_one_sentence(info.value)


@pytest.mark.parametrize("encoding", HOSTILE_ENCODINGS)
def test_hostile_encoding_strings_stay_one_short_line(encoding):
    with pytest.raises(ConversionError) as info:
        check_image_layout(encoding, 4, 4, 12, 48)
    assert_one_sentence(info.value)
