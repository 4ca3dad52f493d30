"""sensor_msgs <-> numpy: images, depth images (REP 118), camera_info, PointCloud2.

Camera images in are decoded by ``image_codec`` (shared with offline replay; re-exported here).
Two layers: pure array functions (``decode_image``, ``encode_depth``, ``depth_to_points``...) that
take plain fields and need no ROS, and thin message wrappers
(``*_msg`` / ``*_from_msg``) that import ``sensor_msgs`` lazily. Every rejection is a
:class:`ConversionError` whose message is one sentence saying what is wrong.

Byte buffers: message ``uint8[]`` fields are ``array.array('B')`` in rclpy; reading them with
``np.frombuffer`` is zero-copy, and writing an ``array.array`` is the setter's fast path (any other
sequence is checked element by element, which takes seconds for a full-HD image).
"""
from __future__ import annotations

import array
import sys

import numpy as np

from ..geometry.camera import CameraModelError, PinholeCamera, normalise_pixels
from .image_codec import (IMAGE_ENCODINGS, MASK_ENCODINGS, ConversionError, check_image_layout,  # noqa: F401
                          compressed_size, decode_compressed, decode_image, rgb_view, shown_encoding,  # noqa: F401
                          to_rgb)  # re-exported: conversions stays the one import for message code

DEPTH_ENCODINGS = {"32FC1": np.dtype(np.float32), "16UC1": np.dtype(np.uint16)}
HOST_IS_BIGENDIAN = sys.byteorder == "big"


# --------------------------------------------------------------------------- images in
def is_compressed(msg) -> bool:
    """A sensor_msgs/CompressedImage (it has ``format`` and no ``encoding``)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def pixels_from_image_msg(msg) -> np.ndarray:
    """sensor_msgs/Image -> decoded array (image_codec.decode_image), honouring ``is_bigendian``."""
    return decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.data, bigendian=bool(msg.is_bigendian))


def rgb_from_msg(msg, view: bool = False, size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/Image (any IMAGE_ENCODINGS) or CompressedImage (JPEG/PNG) -> uint8 RGB (H, W, 3).

    view: rgb8/bgr8/mono8 may come back as a non-contiguous view of the message (see rgb_view).
    size: (width, height) a CompressedImage must have, checked before it is decoded.
    """
    if is_compressed(msg):
        return decode_compressed(msg.data, msg.format, size)
    pixels = pixels_from_image_msg(msg)
    return rgb_view(pixels, msg.encoding) if view else to_rgb(pixels, msg.encoding)


def rgb_from_image_msg(msg) -> np.ndarray:
    """sensor_msgs/Image (any IMAGE_ENCODINGS) or CompressedImage -> contiguous uint8 RGB (H, W, 3)."""
    return rgb_from_msg(msg)


def mask_from_image_msg(msg) -> np.ndarray:
    """sensor_msgs/Image mono8 / 8UC1 -> bool (H, W), nonzero = True."""
    return decode_image(msg.encoding, msg.width, msg.height, msg.step, msg.data, MASK_ENCODINGS) != 0


def depth_from_image_msg(msg) -> np.ndarray:
    """Depth Image (32FC1 metres or 16UC1 millimetres) -> float32 (H, W) metres, NaN unknown.

    Honours ``is_bigendian``; 16UC1 zero means unknown (REP 118).
    """
    dtype = DEPTH_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise ConversionError(f"depth encoding {shown_encoding(msg.encoding)} is not supported (use 32FC1 or 16UC1)")
    itemsize = dtype.itemsize
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if width <= 0 or height <= 0:
        raise ConversionError(f"depth image has an empty size {width}x{height}")
    if step < width * itemsize or step % itemsize:
        raise ConversionError(f"depth image step {step} does not fit width {width} x {itemsize} bytes")
    if buf.size != step * height:
        raise ConversionError(f"depth image data has {buf.size} bytes but step {step} x height {height} "
                              f"needs {step * height}")
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    values = buf.view(wire).reshape(height, step // itemsize)[:, :width].astype(dtype.newbyteorder("="))
    if msg.encoding == "16UC1":
        out = values.astype(np.float32) / np.float32(1000.0)
        out[values == 0] = np.nan
        return out
    return values


# --------------------------------------------------------------------------- images out
def _byte_array(values: np.ndarray) -> array.array:
    """Contiguous array -> array.array('B') with one copy (the message setter's fast path)."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(values)).cast("B"))
    return out


def encode_depth(depth: np.ndarray, encoding: str = "32FC1") -> np.ndarray:
    """Metric depth float (H, W) -> array in the wire encoding (host byte order).

    32FC1: metres, NaN unknown; +-inf and negatives become NaN.
    16UC1: millimetres rounded to the nearest integer; unknown, <= 0 or beyond 65.535 m -> 0.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ConversionError(f"depth must be a 2-D array, got shape {depth.shape}")
    if encoding == "32FC1":
        out = np.array(depth, dtype=np.float32, copy=True)
        with np.errstate(invalid="ignore"):
            out[~(np.isfinite(out) & (out >= 0))] = np.nan
        return out
    if encoding == "16UC1":
        # float32 is exact to well under a millimetre up to 65.5 m, and half the work of float64.
        with np.errstate(invalid="ignore", over="ignore"):
            mm = np.multiply(depth, np.float32(1000.0), dtype=np.float32)
            np.rint(mm, out=mm)
            mm[~((mm > 0) & (mm <= 65535))] = 0  # NaN compares False: unknown -> 0
        return mm.astype(np.uint16)
    raise ConversionError(f"depth encoding {shown_encoding(encoding)} is not supported (use 32FC1 or 16UC1)")


def image_msg(pixels: np.ndarray, encoding: str, header=None):
    """Array -> sensor_msgs/Image. pixels: (H, W) or (H, W, C) of the encoding's element type."""
    from sensor_msgs.msg import Image

    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(HOST_IS_BIGENDIAN and pixels.dtype.itemsize > 1)
    msg.step = int(pixels.strides[0])
    msg.data = _byte_array(pixels)
    return msg


def depth_image_msg(depth: np.ndarray, header=None, encoding: str = "32FC1"):
    """Metric depth (H, W) -> sensor_msgs/Image in 32FC1 (m) or 16UC1 (mm), REP 118."""
    return image_msg(encode_depth(depth, encoding), encoding, header)


# --------------------------------------------------------------------------- camera_info
def camera_from_info_fields(k, d, width: int, height: int, distortion_model: str = "plumb_bob",
                            binning_x: int = 0, binning_y: int = 0, roi=None) -> PinholeCamera:
    """CameraInfo fields -> the PinholeCamera of the images that come with it.

    roi: (x_offset, y_offset, width, height) or None; a zero-size roi means the full image.
    Binning divides the (cropped) image; both follow the CameraInfo definition.
    """
    try:
        camera = PinholeCamera.from_camera_info_fields(k, d, width, height, distortion_model)
        if roi is not None and roi[2] > 0 and roi[3] > 0 and (roi[2], roi[3]) != (width, height):
            camera = camera.cropped(int(roi[0]), int(roi[1]), int(roi[2]), int(roi[3]))
        bx, by = max(int(binning_x), 1), max(int(binning_y), 1)
        if bx > 1 or by > 1:
            camera = camera.resized(camera.width // bx, camera.height // by)
    except CameraModelError as exc:
        raise ConversionError(str(exc)) from exc
    except (ValueError, TypeError) as exc:  # wrong array sizes from a hand-made message
        raise ConversionError(f"camera_info fields are malformed: {exc}") from exc
    return camera


def camera_from_info(msg) -> PinholeCamera:
    """sensor_msgs/CameraInfo -> PinholeCamera (zero K, NaN, empty size... -> ConversionError)."""
    roi = msg.roi
    return camera_from_info_fields(msg.k, msg.d, msg.width, msg.height, msg.distortion_model,
                                   msg.binning_x, msg.binning_y,
                                   (roi.x_offset, roi.y_offset, roi.width, roi.height))


def camera_info_with_header(info, header):
    """A copy of a CameraInfo carrying ``header`` (the depth image's): what depth_image_proc needs."""
    from sensor_msgs.msg import CameraInfo

    out = CameraInfo()
    out.header = header
    out.height, out.width = info.height, info.width
    out.distortion_model = info.distortion_model
    out.d = array.array("d", info.d)
    out.k = np.array(info.k, dtype=np.float64)
    out.r = np.array(info.r, dtype=np.float64)
    out.p = np.array(info.p, dtype=np.float64)
    out.binning_x, out.binning_y = info.binning_x, info.binning_y
    out.roi = info.roi
    return out


def camera_info_msg(camera: PinholeCamera, header=None):
    """PinholeCamera -> sensor_msgs/CameraInfo (R = I, P = [K | 0]); handy for publishers and tests."""
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = camera.width, camera.height
    msg.distortion_model = camera.distortion_model or "plumb_bob"
    msg.d = array.array("d", [float(v) for v in camera.D])
    msg.k = camera.K.astype(np.float64).ravel()
    msg.r = np.eye(3).ravel()
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    msg.p = P.ravel()
    return msg


# --------------------------------------------------------------------------- point clouds
def decimated_rays(camera: PinholeCamera, decimation: int) -> np.ndarray:
    """Undistorted z-normalised rays of every ``decimation``-th pixel: float32 (h, w, 2) of (x, y).

    Only the kept pixels are undistorted, so a distorted full-HD camera stays cheap.
    """
    step = max(int(decimation), 1)
    u = np.arange(0, camera.width, step, dtype=np.float64)
    v = np.arange(0, camera.height, step, dtype=np.float64)
    uu, vv = np.meshgrid(u, v)
    pts = np.stack([uu.ravel(), vv.ravel()], axis=1)
    xy = camera.undistort_points(pts) if camera.is_distorted else normalise_pixels(camera.K, pts)
    return xy.reshape(v.size, u.size, 2).astype(np.float32)


def depth_to_points(depth: np.ndarray, rays_xy: np.ndarray, decimation: int) -> np.ndarray:
    """Decimated 3-D points in the optical frame: depth (H, W) + rays (h, w, 2) -> float32 (h, w, 3).

    Rays are z-normalised, so a pixel's point is depth * (x, y, 1). NaN depth gives NaN points.
    """
    step = max(int(decimation), 1)
    z = np.asarray(depth, dtype=np.float32)[::step, ::step]
    if z.shape != rays_xy.shape[:2]:
        raise ConversionError(f"depth {depth.shape} does not match rays {rays_xy.shape[:2]} at decimation {step}")
    out = np.empty(z.shape + (3,), dtype=np.float32)
    np.multiply(rays_xy[..., 0], z, out=out[..., 0])
    np.multiply(rays_xy[..., 1], z, out=out[..., 1])
    out[..., 2] = z
    return out


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> uint32 (...) 0x00RRGGBB, the PCL/RViz packing of an "rgb" field."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def cloud_array(points: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray:
    """points float32 (h, w, 3) [+ rgb uint8 (h, w, 3)] -> structured (h, w) array, 12 or 16 bytes/point."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if rgb is not None:
        fields.append(("rgb", "<u4"))
    cloud = np.empty(points.shape[:2], dtype=fields)
    cloud["x"], cloud["y"], cloud["z"] = points[..., 0], points[..., 1], points[..., 2]
    if rgb is not None:
        if rgb.shape[:2] != points.shape[:2]:
            raise ConversionError(f"colours {rgb.shape[:2]} do not match points {points.shape[:2]}")
        cloud["rgb"] = pack_rgb(rgb)
    return cloud


def pointcloud2_msg(points: np.ndarray, header=None, rgb: np.ndarray | None = None):
    """Organised PointCloud2 (height h, width w) with float32 x, y, z [+ packed rgb]; NaN = no point."""
    from sensor_msgs.msg import PointCloud2, PointField

    cloud = cloud_array(points, rgb)
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(cloud.shape[0]), int(cloud.shape[1])
    names = ["x", "y", "z"] + (["rgb"] if rgb is not None else [])
    # "rgb" is declared FLOAT32 holding the packed bits: the PCL convention RViz understands.
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate(names)]
    msg.is_bigendian = False  # the structured dtype above is explicitly little-endian
    msg.point_step = cloud.dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = bool(np.all(np.isfinite(points)))
    msg.data = _byte_array(cloud)
    return msg


class PointCloudBuilder:
    """Depth image -> decimated PointCloud2, caching the rays while the camera stays the same."""

    def __init__(self, decimation: int = 4):
        self.decimation = max(int(decimation), 1)
        self._key = None
        self._rays: np.ndarray | None = None

    def rays(self, camera: PinholeCamera) -> np.ndarray:
        key = camera.key()
        if key != self._key:
            self._key, self._rays = key, decimated_rays(camera, self.decimation)
        return self._rays

    def msg(self, depth: np.ndarray, camera: PinholeCamera, header=None, rgb: np.ndarray | None = None):
        points = depth_to_points(depth, self.rays(camera), self.decimation)
        colours = None if rgb is None else rgb[::self.decimation, ::self.decimation]
        return pointcloud2_msg(points, header, colours)
