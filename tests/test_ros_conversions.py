"""sensor_msgs <-> numpy conversions: images, depth (REP 118), camera_info, PointCloud2, colour map."""
from __future__ import annotations

import array
import struct

import numpy as np
import pytest

from depth_prior_ros.colorize import colorize_depth, turbo_lut
from depth_prior_ros.ros.conversions import (ConversionError, PointCloudBuilder, camera_from_info,
                                            camera_from_info_fields, camera_info_msg, camera_info_with_header,
                                            check_image_layout, decode_image, depth_from_image_msg,
                                            depth_image_msg, depth_to_points, encode_depth, image_msg,
                                            mask_from_image_msg, pointcloud2_msg, rgb_from_image_msg, rgb_view,
                                            to_rgb)

pytest.importorskip("sensor_msgs.msg", reason="sensor_msgs (ROS 2 wheels) not installed")
from sensor_msgs.msg import CameraInfo, Image, PointField  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

RNG = np.random.default_rng(0)


def raw_image(encoding: str, width: int, height: int, step: int, data: bytes, bigendian: int = 0) -> Image:
    msg = Image(encoding=encoding, width=width, height=height, step=step, is_bigendian=bigendian)
    msg.data = array.array("B", data)
    return msg


# --------------------------------------------------------------------------- colour images
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_image_round_trip_for_every_supported_encoding(encoding):
    shape = (5, 7, 3) if encoding != "mono8" else (5, 7)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    msg = image_msg(pixels, encoding, Header(frame_id="cam"))
    assert (msg.width, msg.height, msg.encoding, msg.header.frame_id) == (7, 5, encoding, "cam")
    assert msg.step == 7 * (3 if encoding != "mono8" else 1) and len(msg.data) == msg.step * 5
    rgb = rgb_from_image_msg(msg)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    expected = {"rgb8": pixels, "bgr8": pixels[..., ::-1], "mono8": np.repeat(pixels[..., None], 3, axis=2)}[encoding]
    np.testing.assert_array_equal(rgb, expected)
    view = rgb_view(decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.data), encoding)
    np.testing.assert_array_equal(view, expected)


def test_row_padding_is_skipped_and_decoding_does_not_copy():
    width, height, step = 5, 4, 20  # 15 bytes of pixels + 5 bytes of padding per row
    rows = RNG.integers(0, 256, (height, step), dtype=np.uint8)
    rows[:, 15:] = 255  # padding that must not leak into the image
    msg = raw_image("rgb8", width, height, step, rows.tobytes())
    pixels = decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.data)
    np.testing.assert_array_equal(pixels, rows[:, :15].reshape(height, width, 3))
    assert np.shares_memory(pixels, np.frombuffer(msg.data, np.uint8))


def test_big_endian_flag_does_not_change_8_bit_images():
    data = bytes(range(12))
    little = rgb_from_image_msg(raw_image("rgb8", 2, 2, 6, data, 0))
    big = rgb_from_image_msg(raw_image("rgb8", 2, 2, 6, data, 1))
    np.testing.assert_array_equal(little, big)


@pytest.mark.parametrize("encoding, width, height, step, size, fragment", [
    ("rgb8", 4, 3, 11, 33, "step 11 is smaller than width 4 x 3"),
    ("rgb8", 4, 3, 12, 35, "data has 35 bytes but step 12 x height 3 needs 36"),
    ("rgb8", 4, 3, 12, 37, "needs 36"),
    ("mono8", 4, 3, 4, 4, "needs 12"),
    ("yuv422", 3, 3, 6, 18, "a yuv422 image needs an even width (two pixels share U and V), got 3"),
    ("rgb16", 4, 3, 24, 72, "'rgb16' is not supported (use rgb8, bgr8, rgba8, bgra8, mono8, mono16, bayer_{rggb,"),
    ("bgra16", 4, 3, 32, 96, "'bgra16' is not supported"),
    ("", 4, 3, 12, 36, "encoding (empty) is not supported"),
    ("rgb8", 0, 3, 0, 0, "empty size 0x3"),
])
def test_malformed_images_are_rejected_with_one_sentence(encoding, width, height, step, size, fragment):
    msg = raw_image(encoding, width, height, step, bytes(size))
    with pytest.raises(ConversionError) as info:
        rgb_from_image_msg(msg)
    text = str(info.value)
    assert fragment in text and "\n" not in text and text.count(". ") == 0
    with pytest.raises(ConversionError):  # the O(1) pre-check used by the callbacks agrees
        check_image_layout(encoding, width, height, step, size)


def test_road_mask_accepts_mono8_and_8uc1_only():
    mask = np.array([[0, 1, 255], [0, 0, 7]], dtype=np.uint8)
    for encoding in ("mono8", "8UC1"):
        np.testing.assert_array_equal(mask_from_image_msg(image_msg(mask, encoding)), mask != 0)
    with pytest.raises(ConversionError, match="not supported"):
        mask_from_image_msg(image_msg(np.zeros((2, 3, 3), np.uint8), "rgb8"))


def test_to_rgb_rejects_other_encodings():
    with pytest.raises(ConversionError):
        to_rgb(np.zeros((2, 2), np.uint8), "16UC1")


# --------------------------------------------------------------------------- depth images
def test_32fc1_keeps_metres_and_maps_inf_and_negative_to_nan():
    depth = np.array([[1.25, np.nan, np.inf], [-2.0, 0.0, 79.5]], dtype=np.float32)
    msg = depth_image_msg(depth, Header(frame_id="cam"), "32FC1")
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("32FC1", 12, 0)
    back = depth_from_image_msg(msg)
    np.testing.assert_array_equal(back, np.array([[1.25, np.nan, np.nan], [np.nan, 0.0, 79.5]], np.float32))


def test_16uc1_rounds_to_millimetres_and_zero_means_unknown():
    depth = np.array([[1.2344, 1.2346, 0.0005, 0.0004], [np.nan, -1.0, 65.535, 65.6]], dtype=np.float64)
    mm = encode_depth(depth, "16UC1")
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, [[1234, 1235, 0, 0], [0, 0, 65535, 0]])
    # 0.0005 m rounds half-to-even to 0 mm -> unknown: nothing below half a millimetre is published.
    back = depth_from_image_msg(depth_image_msg(depth, None, "16UC1"))
    np.testing.assert_allclose(back[0, :2], [1.234, 1.235], atol=1e-6)
    assert np.isnan(back[1, 0]) and np.isnan(back[1, 1]) and back[1, 2] == pytest.approx(65.535)


@pytest.mark.parametrize("encoding, fmt, values", [("16UC1", "H", [1500, 0, 2]), ("32FC1", "f", [1.5, 2.25, 80.0])])
def test_depth_decoding_honours_big_endian_and_padding(encoding, fmt, values):
    size = struct.calcsize(fmt)
    row_big = struct.pack(">" + fmt * 3, *values) + b"\xff" * size  # one element of row padding
    msg = raw_image(encoding, 3, 2, 4 * size, row_big * 2, bigendian=1)
    out = depth_from_image_msg(msg)
    expected = np.array(values, np.float32) / (1000.0 if encoding == "16UC1" else 1.0)
    if encoding == "16UC1":
        expected[1] = np.nan
    np.testing.assert_allclose(out, np.stack([expected, expected]), rtol=1e-6)
    little = raw_image(encoding, 3, 2, 4 * size, (struct.pack("<" + fmt * 3, *values) + b"\0" * size) * 2)
    np.testing.assert_allclose(depth_from_image_msg(little), out, rtol=1e-6)


def test_depth_encoding_errors():
    with pytest.raises(ConversionError, match="not supported"):
        encode_depth(np.ones((2, 2)), "32FC3")
    with pytest.raises(ConversionError, match="2-D"):
        encode_depth(np.ones((2, 2, 1)), "32FC1")
    with pytest.raises(ConversionError, match="not supported"):
        depth_from_image_msg(image_msg(np.zeros((2, 2), np.uint8), "mono8"))


# --------------------------------------------------------------------------- camera_info
def test_camera_info_round_trip_and_header_copy():
    from depth_prior_ros.geometry import PinholeCamera

    camera = PinholeCamera(np.array([[500.0, 0, 319.5], [0, 510.0, 179.5], [0, 0, 1]]), 640, 360,
                           np.array([0.1, -0.05, 0.001, 0.0, 0.0]))
    info = camera_info_msg(camera, Header(frame_id="old"))
    back = camera_from_info(info)
    np.testing.assert_allclose(back.K, camera.K)
    np.testing.assert_allclose(back.D, camera.D)
    assert (back.width, back.height) == (640, 360)
    copy = camera_info_with_header(info, Header(frame_id="cam_optical"))
    assert copy.header.frame_id == "cam_optical" and info.header.frame_id == "old"
    np.testing.assert_array_equal(copy.k, info.k)
    np.testing.assert_array_equal(copy.p, info.p)
    assert list(copy.d) == list(info.d) and (copy.width, copy.height) == (640, 360)
    copy.k[0] = 1.0  # a copy, not a view of the original
    assert info.k[0] == 500.0


@pytest.mark.parametrize("k, fragment", [
    ([0.0] * 9, "non-positive focal lengths"),
    ([500, 0, 320, 0, np.nan, 180, 0, 0, 1], "NaN or inf"),
    ([500, 0, 320, 0, 500, 180, 0, 0, 0], "K[2,2] = 1"),
])
def test_unusable_camera_info_is_rejected(k, fragment):
    info = CameraInfo(width=640, height=360)
    info.k = np.asarray(k, dtype=np.float64)
    with pytest.raises(ConversionError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        camera_from_info(info)


def test_camera_info_roi_and_binning_describe_the_published_image():
    K = [800.0, 0, 799.5, 0, 800.0, 449.5, 0, 0, 1]
    cropped = camera_from_info_fields(K, [], 1600, 900, roi=(100, 50, 800, 400))
    assert (cropped.width, cropped.height) == (800, 400)
    assert (cropped.cx, cropped.cy) == (699.5, 399.5)
    binned = camera_from_info_fields(K, [], 1600, 900, binning_x=2, binning_y=2)
    assert (binned.width, binned.height) == (800, 450)
    assert binned.fx == pytest.approx(400.0) and binned.cx == pytest.approx(399.5)
    full_roi = camera_from_info_fields(K, [], 1600, 900, roi=(0, 0, 1600, 900))
    assert (full_roi.width, full_roi.height) == (1600, 900)
    with pytest.raises(ConversionError, match="crop"):
        camera_from_info_fields(K, [], 1600, 900, roi=(1000, 0, 800, 400))


# --------------------------------------------------------------------------- point clouds
def test_pointcloud2_layout_and_values():
    from depth_prior_ros.geometry import PinholeCamera

    camera = PinholeCamera(np.array([[100.0, 0, 9.5], [0, 100.0, 5.5], [0, 0, 1]]), 20, 12)
    depth = np.full((12, 20), 5.0, np.float32)
    depth[0, 0] = np.nan
    rgb = RNG.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    builder = PointCloudBuilder(decimation=4)
    msg = builder.msg(depth, camera, Header(frame_id="cam"), rgb)
    assert (msg.height, msg.width) == (3, 5) and msg.header.frame_id == "cam"
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
        ("rgb", 12, PointField.FLOAT32, 1)]
    assert msg.point_step == 16 and msg.row_step == 16 * 5 and len(msg.data) == 16 * 15
    assert not msg.is_dense and not msg.is_bigendian
    cloud = np.frombuffer(msg.data, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")]).reshape(3, 5)
    assert np.isnan(cloud["z"][0, 0])
    u, v = 4 * 2, 4 * 1  # cloud cell (1, 2) is pixel (u=8, v=4)
    assert cloud["z"][1, 2] == 5.0
    assert cloud["x"][1, 2] == pytest.approx((u - 9.5) / 100 * 5)
    assert cloud["y"][1, 2] == pytest.approx((v - 5.5) / 100 * 5)
    r, g, b = (int(c) for c in rgb[v, u])
    assert cloud["rgb"][1, 2] == (r << 16) | (g << 8) | b
    assert builder.rays(camera) is builder.rays(camera)  # cached per camera


def test_pointcloud_without_colour_has_12_byte_points_and_distortion_uses_undistorted_rays():
    from depth_prior_ros.geometry import PinholeCamera

    camera = PinholeCamera(np.array([[100.0, 0, 9.5], [0, 100.0, 5.5], [0, 0, 1]]), 20, 12,
                           np.array([-0.3, 0.1, 0, 0, 0]))
    builder = PointCloudBuilder(decimation=1)
    points = depth_to_points(np.full((12, 20), 2.0, np.float32), builder.rays(camera), 1)
    expected = camera.pixel_rays()[..., :2] * 2.0
    np.testing.assert_allclose(points[..., :2], expected, atol=1e-5)
    msg = pointcloud2_msg(points)
    assert msg.point_step == 12 and [f.name for f in msg.fields] == ["x", "y", "z"] and msg.is_dense


# --------------------------------------------------------------------------- colour map
def test_turbo_lut_matches_matplotlib():
    matplotlib = pytest.importorskip("matplotlib")
    reference = (np.asarray(matplotlib.colormaps["turbo"](np.linspace(0, 1, 256)))[:, :3] * 255).round()
    lut = turbo_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert np.abs(lut.astype(float) - reference).max() <= 1.0


def test_colorize_depth_near_is_warm_far_is_cool_unknown_is_black():
    depth = np.array([[0.5, 1.0, 10.0, 80.0, 200.0, np.nan, -1.0, np.inf, 0.1]], np.float32)
    rgb = colorize_depth(depth, 0.5, 80.0)
    assert rgb.shape == (1, 9, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[0, 0], turbo_lut()[255])  # min_depth -> top of the map (red)
    np.testing.assert_array_equal(rgb[0, 3], turbo_lut()[0])    # max_depth -> bottom (dark blue)
    np.testing.assert_array_equal(rgb[0, 4], turbo_lut()[0])    # beyond the range: clamped
    np.testing.assert_array_equal(rgb[0, 8], turbo_lut()[255])  # nearer than min_depth: clamped
    assert not rgb[0, 5:8].any()                              # NaN, negative, inf: black
    assert rgb[0, 0, 0] > rgb[0, 0, 2] and rgb[0, 3, 2] > rgb[0, 3, 0]
    with pytest.raises(ValueError, match="colour range"):
        colorize_depth(depth, 5.0, 1.0)


def test_colorize_does_not_need_matplotlib():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from depth_prior_ros.colorize import colorize_depth; "
            "colorize_depth(np.ones((2, 2), np.float32), 0.5, 80.0); "
            "assert 'matplotlib' not in sys.modules and 'rclpy' not in sys.modules")
    from pathlib import Path
    import os

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# --------------------------------------------------------------------------- fuzz
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(encoding=st.sampled_from(["rgb8", "bgr8", "mono8", "yuv422", "bgra16", "16UC1", "", "RGB8"]),
       width=st.integers(0, 40), height=st.integers(0, 40), step=st.integers(0, 200), extra=st.integers(-5, 5),
       bigendian=st.integers(0, 1))
def test_fuzzed_image_fields_convert_or_fail_with_one_sentence(encoding, width, height, step, extra, bigendian):
    size = max(step * height + extra, 0)
    msg = raw_image(encoding, width, height, step, bytes(size), bigendian)
    try:
        rgb = rgb_from_image_msg(msg)
    except ConversionError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8


finite = st.floats(-1e4, 1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(k=st.lists(st.one_of(finite, st.just(float("nan")), st.just(0.0)), min_size=9, max_size=9),
       d=st.lists(st.one_of(st.floats(-1, 1), st.just(float("nan"))), max_size=8), width=st.integers(0, 3000),
       height=st.integers(0, 3000), model=st.sampled_from(["plumb_bob", "rational_polynomial", "equidistant", ""]),
       binning=st.integers(0, 5000), roi=st.tuples(st.integers(0, 3000), st.integers(0, 3000),
                                                     st.integers(0, 3000), st.integers(0, 3000)))
def test_fuzzed_camera_info_gives_a_camera_or_one_sentence(k, d, width, height, model, binning, roi):
    try:
        camera = camera_from_info_fields(k, d, width, height, model, binning, binning, roi)
    except ConversionError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert camera.width > 0 and camera.height > 0 and camera.fx > 0 and camera.fy > 0


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32)), min_size=6, max_size=6))
def test_fuzzed_depth_never_encodes_negative_or_infinite_values(values):
    depth = np.array(values, np.float32).reshape(2, 3)
    out32 = depth_from_image_msg(depth_image_msg(depth, None, "32FC1"))
    assert not np.any(np.isinf(out32)) and not np.any(out32 < 0)
    out16 = depth_from_image_msg(depth_image_msg(depth, None, "16UC1"))
    assert not np.any(np.isinf(out16)) and not np.any(out16 <= 0)
    rgb = colorize_depth(depth, 0.5, 80.0)
    assert rgb.shape == (2, 3, 3)
