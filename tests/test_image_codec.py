"""Camera images as drivers publish them (issue 10): every encoding the nodes take becomes the RGB an
independent reference computes, JPEG/PNG CompressedImages decode with their header size checked first,
and offline replay reads images through the same decoder."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from depth_prior_ros.ros.image_codec import (IMAGE_ENCODINGS, ConversionError, check_image_layout,
                                             compressed_size, decode_compressed, decode_image, rgb_view, to_rgb)

cv2 = pytest.importorskip("cv2")
RNG = np.random.default_rng(10)
H, W = 6, 8


def convert(encoding: str, buffer: np.ndarray, bigendian: bool = False, pad: int = 0) -> np.ndarray:
    """Bytes of an (H, W * bytes per pixel) image with ``pad`` bytes of row padding -> RGB via the codec."""
    rows = np.ascontiguousarray(buffer).view(np.uint8).reshape(H, -1)
    padded = np.concatenate([rows, np.full((H, pad), 0xEE, np.uint8)], axis=1) if pad else rows
    pixels = decode_image(encoding, W, H, padded.shape[1], padded.tobytes(), bigendian=bigendian)
    rgb = to_rgb(pixels, encoding)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    return rgb


@pytest.mark.parametrize("pad", [0, 3])
def test_colour_and_grey_encodings_give_the_rgb8_pixels(pad):
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (H, W, 1), dtype=np.uint8)
    np.testing.assert_array_equal(convert("rgb8", rgb, pad=pad), rgb)
    np.testing.assert_array_equal(convert("bgr8", rgb[..., ::-1], pad=pad), rgb)
    np.testing.assert_array_equal(convert("rgba8", np.concatenate([rgb, alpha], axis=2), pad=pad), rgb)
    np.testing.assert_array_equal(convert("bgra8", np.concatenate([rgb[..., ::-1], alpha], axis=2), pad=pad), rgb)
    grey = rgb[..., 0]
    np.testing.assert_array_equal(convert("mono8", grey, pad=pad), np.repeat(grey[..., None], 3, axis=2))


def test_mono16_keeps_the_high_byte_in_either_byte_order():
    values = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    expected = np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=2)
    np.testing.assert_array_equal(convert("mono16", values.astype("<u2")), expected)
    np.testing.assert_array_equal(convert("mono16", values.astype(">u2"), bigendian=True), expected)
    np.testing.assert_array_equal(convert("mono16", values.astype("<u2"), pad=2), expected)


# ROS pattern -> the colour (0 red, 1 green, 2 blue) of the top-left 2x2 cell, row by row.
BAYER = {"bayer_rggb8": (0, 1, 1, 2), "bayer_bggr8": (2, 1, 1, 0), "bayer_gbrg8": (1, 2, 0, 1),
         "bayer_grbg8": (1, 0, 2, 1)}


@pytest.mark.parametrize("encoding", sorted(BAYER))
def test_bayer_mosaics_demosaic_to_their_colour(encoding):
    """A flat colour, sampled through the pattern, comes back as that colour away from the border:
    a wrong OpenCV code swaps red and blue or puts green where red is."""
    colour = np.array([200, 100, 30], np.uint8)
    mosaic = np.empty((H, W), np.uint8)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        mosaic[dy::2, dx::2] = colour[BAYER[encoding][k]]
    rgb = convert(encoding, mosaic)
    np.testing.assert_array_equal(rgb[2:-2, 2:-2], np.broadcast_to(colour, (H - 4, W - 4, 3)))


def yuv_reference(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 video range YCbCr -> RGB (what a 4:2:2 camera means), per pixel; u, v already upsampled."""
    c, d, e = 1.164 * (y - 16.0), u - 128.0, v - 128.0
    rgb = np.stack([c + 1.596 * e, c - 0.391 * d - 0.813 * e, c + 2.018 * d], axis=-1)
    return np.clip(np.round(rgb), 0, 255)


@pytest.mark.parametrize("encoding, order", [("yuv422", "UYVY"), ("uyvy", "UYVY"), ("yuyv", "YUYV"),
                                             ("yuv422_yuy2", "YUYV")])
def test_yuv422_byte_orders_convert_like_bt601(encoding, order):
    """ROS yuv422 is U0 Y0 V0 Y1 (UYVY); yuyv and yuv422_yuy2 are Y0 U0 Y1 V0."""
    y = RNG.integers(16, 236, (H, W)).astype(np.uint8)
    u = RNG.integers(16, 241, (H, W // 2)).astype(np.uint8)
    v = RNG.integers(16, 241, (H, W // 2)).astype(np.uint8)
    packed = np.empty((H, W // 2, 4), np.uint8)
    if order == "UYVY":
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    else:
        packed[..., 0], packed[..., 1], packed[..., 2], packed[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    rgb = convert(encoding, packed)
    expected = yuv_reference(y.astype(float), np.repeat(u, 2, axis=1).astype(float),
                             np.repeat(v, 2, axis=1).astype(float))
    assert np.abs(rgb.astype(int) - expected).max() <= 1


def test_views_need_no_copy_and_other_encodings_convert():
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    pixels = decode_image("bgr8", W, H, W * 3, rgb[..., ::-1].tobytes())
    view = rgb_view(pixels, "bgr8")
    assert np.shares_memory(view, pixels)
    np.testing.assert_array_equal(view, rgb)
    rgba = np.concatenate([rgb, np.zeros((H, W, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(rgb_view(decode_image("rgba8", W, H, W * 4, rgba.tobytes()), "rgba8"), rgb)


def test_every_listed_encoding_converts_and_odd_yuv_widths_are_refused():
    for encoding, size in IMAGE_ENCODINGS.items():
        pixels = decode_image(encoding, W, H, W * size, bytes(W * size * H))
        assert to_rgb(pixels, encoding).shape == (H, W, 3), encoding
    with pytest.raises(ConversionError, match="needs an even width"):
        check_image_layout("uyvy", 5, 2, 10, 20)


# --------------------------------------------------------------------------- compressed
def encoded(rgb: np.ndarray, ext: str, *params) -> bytes:
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), list(params))
    assert ok
    return buf.tobytes()


def test_jpeg_and_png_decode_to_rgb_with_the_header_size():
    rgb = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    png = encoded(rgb, ".png")
    assert compressed_size(png, "png") == (53, 37)
    np.testing.assert_array_equal(decode_compressed(png, "png", (53, 37)), rgb)  # lossless
    smooth = np.broadcast_to(np.array([180, 90, 40], np.uint8), (37, 53, 3))
    jpeg = encoded(smooth, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95)
    assert compressed_size(jpeg, "rgb8; jpeg compressed bgr8") == (53, 37)
    out = decode_compressed(jpeg, "jpeg")
    assert out.shape == (37, 53, 3) and np.abs(out.astype(int) - smooth).max() <= 3  # RGB, not BGR
    grey = encoded(rgb[..., :1].repeat(3, axis=2), ".png")
    assert decode_compressed(grey, "png").shape == (37, 53, 3)


def test_compressed_images_are_refused_with_one_sentence_before_decoding():
    jpeg = encoded(np.zeros((16, 24, 3), np.uint8), ".jpg")
    with pytest.raises(ConversionError, match="is 24x16 but 640x360 was expected"):
        decode_compressed(jpeg, "jpeg", (640, 360))
    # A forged PNG header announcing 100000 x 100000 pixels is refused by size, never decoded.
    forged = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 100_000, 100_000) + bytes(20)
    with pytest.raises(ConversionError, match="is 100000x100000 but 640x360 was expected"):
        decode_compressed(forged, "png", (640, 360))
    for data, fmt, fragment in [(b"", "jpeg", "neither JPEG nor PNG"), (b"GIF89a" + bytes(30), "gif", "neither"),
                                (jpeg[:40], "jpeg", "no readable frame header"),
                                (jpeg, "16UC1; compressedDepth png", "compressed depth image")]:
        with pytest.raises(ConversionError, match=fragment) as info:
            decode_compressed(data, fmt)
        assert "\n" not in str(info.value) and len(str(info.value)) < 200
    corrupt = jpeg[:200] + bytes(len(jpeg) - 200)
    with pytest.raises(ConversionError):
        decode_compressed(corrupt, "jpeg", (24, 16))


def test_replay_reads_camera_images_through_the_same_decoder():
    """Offline replay (bag_io) and the nodes (conversions.rgb_from_msg) give the same RGB."""
    bag_io = pytest.importorskip("depth_prior_ros.replay.bag_io")
    pytest.importorskip("sensor_msgs.msg")
    from sensor_msgs.msg import CompressedImage, Image

    from depth_prior_ros.ros.conversions import rgb_from_msg

    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    jpeg = encoded(rgb, ".jpg")
    bag_msg = bag_io.make_compressed_image(jpeg, "jpeg", 0, "cam")
    ros_msg = CompressedImage(format="jpeg")
    ros_msg.data = jpeg
    np.testing.assert_array_equal(bag_io.rgb_image(bag_msg, bag_io.COMPRESSED_IMAGE), rgb_from_msg(ros_msg))
    bgra = np.concatenate([rgb[..., ::-1], np.full((H, W, 1), 255, np.uint8)], axis=2)
    bag_img = bag_io.make_image(bgra, 0, "cam", "bgra8")
    ros_img = Image(encoding="bgra8", width=W, height=H, step=W * 4)
    ros_img.data = bgra.tobytes()
    np.testing.assert_array_equal(bag_io.rgb_image(bag_img), rgb)
    np.testing.assert_array_equal(rgb_from_msg(ros_img), rgb)
