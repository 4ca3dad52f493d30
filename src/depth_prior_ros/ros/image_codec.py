"""Camera images as drivers publish them -> uint8 RGB: the one decoder of the live nodes and offline replay.

Pure functions on plain fields (no ROS import). Raw ``sensor_msgs/Image`` encodings follow
sensor_msgs/image_encodings.hpp; colour conversion is OpenCV's, with the codes cv_bridge uses:

- ``rgba8``/``bgra8`` drop alpha; ``mono8`` is repeated into three channels; ``mono16`` keeps its
  high byte (value >> 8), honouring ``is_bigendian``;
- ``bayer_rggb8`` & co. are demosaiced. OpenCV names a Bayer pattern by the second row's second and
  third pixels, so ROS ``rggb`` is OpenCV ``BayerBG`` (cv_bridge maps them the same way);
- ``yuv422`` is UYVY byte order (U0 Y0 V0 Y1, ROS's historical name, also ``uyvy``); ``yuv422_yuy2``
  and ``yuyv`` are YUYV (Y0 U0 Y1 V0). Both need an even width.

``sensor_msgs/CompressedImage`` carries JPEG or PNG; its size is read from the file header without
decoding (``compressed_size``), so a callback can pair it with camera_info cheaply and a forged header
cannot make the decoder allocate more than the calibrated image. Every refusal is a
:class:`ConversionError` with one sentence.
"""
from __future__ import annotations

import struct

import numpy as np


class ConversionError(ValueError):
    """A message that cannot be converted; the text is one sentence saying why."""


def shown_encoding(encoding: str) -> str:
    """An encoding string as it may appear in a log line: quoted, escaped, at most 40 characters
    (it comes from the wire, so it can be long or carry newlines that would forge log lines)."""
    return repr(encoding[:40]) if encoding else "(empty)"


# encoding -> (values per pixel, bytes per value)
LAYOUTS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "mono8": (1, 1), "mono16": (1, 2),
    "bayer_rggb8": (1, 1), "bayer_bggr8": (1, 1), "bayer_gbrg8": (1, 1), "bayer_grbg8": (1, 1),
    "yuv422": (2, 1), "uyvy": (2, 1), "yuv422_yuy2": (2, 1), "yuyv": (2, 1),
    "8UC1": (1, 1),
}
# Camera encodings the nodes take, -> bytes per pixel. Everything else is refused naming these.
IMAGE_ENCODINGS = {e: c * b for e, (c, b) in LAYOUTS.items() if e != "8UC1"}
MASK_ENCODINGS = {"mono8": 1, "8UC1": 1}
# The list a refusal names (short: a refusal line stays under 200 characters).
IMAGE_ENCODINGS_TEXT = "rgb8, bgr8, rgba8, bgra8, mono8, mono16, bayer_{rggb,bggr,gbrg,grbg}8, yuv422, uyvy, yuyv, " \
                       "yuv422_yuy2"
EVEN_WIDTH = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")


def _cv2_code(encoding: str) -> int | None:
    """The cv2.cvtColor code turning the decoded array into RGB (None: no OpenCV step)."""
    import cv2

    return {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
            "mono8": cv2.COLOR_GRAY2RGB, "mono16": cv2.COLOR_GRAY2RGB,
            "bayer_rggb8": cv2.COLOR_BayerBG2RGB, "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
            "bayer_gbrg8": cv2.COLOR_BayerGR2RGB, "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
            "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
            "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV, "yuyv": cv2.COLOR_YUV2RGB_YUYV}.get(encoding)


# --------------------------------------------------------------------------- raw images
def check_image_layout(encoding: str, width: int, height: int, step: int, data_len: int,
                       supported: dict[str, int] = IMAGE_ENCODINGS) -> int:
    """Validate Image fields cheaply (no pixel access) and return the bytes per pixel.

    Used by subscription callbacks before a frame is queued, so it must stay O(1).
    """
    if encoding not in supported:
        names = IMAGE_ENCODINGS_TEXT if supported is IMAGE_ENCODINGS else ", ".join(supported)
        raise ConversionError(f"image encoding {shown_encoding(encoding)} is not supported (use {names})")
    size = supported[encoding]
    if width <= 0 or height <= 0:
        raise ConversionError(f"image has an empty size {width}x{height}")
    if encoding in EVEN_WIDTH and width % 2:
        raise ConversionError(f"a {encoding} image needs an even width (two pixels share U and V), got {width}")
    if step < width * size:
        raise ConversionError(f"image step {step} is smaller than width {width} x {size} bytes per pixel")
    if data_len != step * height:
        raise ConversionError(f"image data has {data_len} bytes but step {step} x height {height} "
                              f"needs {step * height}")
    return size


def decode_image(encoding: str, width: int, height: int, step: int, data,
                 supported: dict[str, int] = IMAGE_ENCODINGS, bigendian: bool = False) -> np.ndarray:
    """Image fields -> array (H, W, C), or (H, W) for one value per pixel; row padding is skipped.

    uint8 for 8-bit encodings (a view of ``data`` when the buffer allows it: no copy), native-order
    uint16 for mono16 (``bigendian`` is the message's ``is_bigendian``; 8-bit data has no byte order).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    size = check_image_layout(encoding, width, height, step, buf.size, supported)
    channels, itemsize = LAYOUTS[encoding]
    rows = buf.reshape(height, step)[:, :width * size]
    if itemsize == 2:
        wire = np.dtype(">u2" if bigendian else "<u2")
        return np.ascontiguousarray(rows).view(wire).astype(np.uint16).reshape(height, width)
    return rows.reshape(height, width, channels) if channels > 1 else rows.reshape(height, width)


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """Decoded image (from ``decode_image``) -> contiguous uint8 RGB (H, W, 3) (what backends expect)."""
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f"image encoding {shown_encoding(encoding)} cannot be converted to RGB")
    if encoding == "rgb8":
        return np.ascontiguousarray(pixels)
    import cv2

    if encoding == "mono16":
        pixels = (pixels >> 8).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(pixels), _cv2_code(encoding))


def rgb_view(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """Decoded image -> RGB (H, W, 3), a *view* without copying for rgb8, bgr8 (strided) and mono8
    (broadcast); the other encodings need a conversion and come back as a new array.

    Enough for anything that only slices or reads a few pixels (the prior-only path, point colours);
    use ``to_rgb`` where a network needs contiguous memory.
    """
    if encoding == "rgb8":
        return pixels
    if encoding == "bgr8":
        return pixels[..., ::-1]
    if encoding == "mono8":
        return np.broadcast_to(pixels[..., None], pixels.shape + (3,))
    return to_rgb(pixels, encoding)


# --------------------------------------------------------------------------- compressed images
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (C0-CF without DHT C4, JPG C8 and DAC CC) carry the image size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x01, 0xD8] + list(range(0xD0, 0xD8)))


def compressed_size(data, fmt: str = "") -> tuple[int, int]:
    """(width, height) of a JPEG or PNG from its header, without decoding the pixels.

    data: any buffer. Walks the JPEG segments up to the frame header (usually within the first
    kilobytes; EXIF thumbnails are skipped by their lengths).
    """
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else memoryview(data)
    if "compresseddepth" in fmt.lower():
        raise ConversionError(f"CompressedImage format {shown_encoding(fmt)} is a compressed depth image, "
                              "not a camera image")
    if len(view) >= 24 and bytes(view[:8]) == _PNG_MAGIC and bytes(view[12:16]) == b"IHDR":
        width, height = struct.unpack(">II", bytes(view[16:24]))
        return _checked_size(width, height, "PNG")
    if len(view) >= 4 and view[0] == 0xFF and view[1] == 0xD8:
        i, n = 2, len(view)
        while i + 1 < n:
            if view[i] != 0xFF:
                break
            marker = view[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in _JPEG_STANDALONE:
                i += 2
                continue
            if i + 4 > n:
                break
            length = (view[i + 2] << 8) | view[i + 3]
            if marker in _JPEG_SOF:
                if length < 8 or i + 9 > n:
                    break
                height = (view[i + 5] << 8) | view[i + 6]
                width = (view[i + 7] << 8) | view[i + 8]
                return _checked_size(width, height, "JPEG")
            if marker == 0xDA or length < 2:  # scan data before any frame header: not a valid JPEG
                break
            i += 2 + length
        raise ConversionError("CompressedImage JPEG has no readable frame header (truncated or corrupt)")
    raise ConversionError(f"CompressedImage (format {shown_encoding(fmt)}, {len(view)} bytes) is neither JPEG "
                          "nor PNG")


def _checked_size(width: int, height: int, kind: str) -> tuple[int, int]:
    if width <= 0 or height <= 0:
        raise ConversionError(f"CompressedImage {kind} header gives an empty size {width}x{height}")
    return int(width), int(height)


def decode_compressed(data, fmt: str = "", expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """JPEG or PNG bytes -> contiguous uint8 RGB (H, W, 3) (grey, alpha and 16-bit PNGs included).

    expected_size: (width, height) the header must announce (the paired camera_info's), checked
    before decoding so that no forged header makes OpenCV allocate a huge image.
    """
    import cv2

    size = compressed_size(data, fmt)
    if expected_size is not None and tuple(expected_size) != size:
        raise ConversionError(f"CompressedImage is {size[0]}x{size[1]} but {expected_size[0]}x{expected_size[1]} "
                              "was expected")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or (bgr.shape[1], bgr.shape[0]) != size:
        raise ConversionError(f"CompressedImage ({shown_encoding(fmt)}) could not be decoded (corrupt data)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
