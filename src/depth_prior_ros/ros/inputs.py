"""The camera inputs a node owns: camera_info (parsed once per calibration), the image stream and the
optional road mask.

All run their callbacks on the executor thread and only validate and store; the worker thread asks
for the camera or the mask of a frame and gets a FrameDropped (with its reason) when there is none.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from sensor_msgs.msg import CameraInfo, Image

from .conversions import MASK_ENCODINGS, ConversionError, camera_from_info, check_image_layout, mask_from_image_msg
from .diagnostics import WARN, DiagnosticReport
from .worker import Frame, FrameDropped, FrameMailbox


def _info_key(msg) -> tuple:
    """Identity of a CameraInfo's calibration (so a stream of identical messages is parsed once)."""
    roi = msg.roi
    return (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d), msg.binning_x,
            msg.binning_y, roi.x_offset, roi.y_offset, roi.width, roi.height)


class CameraInfoInput:
    """Subscribes ``camera_info``; keeps the latest valid calibration as a PinholeCamera.

    ``on_info(msg, camera, received_at)`` (optional) runs after each message, camera None when the
    message was rejected (prior_node turns each camera_info into a frame).
    """

    def __init__(self, node, qos, warn: Callable[[str, str], object],
                 on_info: Callable[[object, object, float], None] | None = None):
        self._warn, self._on_info = warn, on_info
        self._lock = threading.Lock()
        self._key = self._info = self._camera = None
        self._error: str | None = None
        self._ready = threading.Event()
        self.received = self.rejected = 0
        node.create_subscription(CameraInfo, "camera_info", self._on_msg, qos)

    def _on_msg(self, msg) -> None:
        received_at = time.perf_counter()
        key = _info_key(msg)
        with self._lock:
            self.received += 1
            camera = self._camera if key == self._key else None
        if camera is None:
            try:
                camera = camera_from_info(msg)
            except ConversionError as exc:
                with self._lock:
                    self.rejected += 1
                    self._error, self._camera, self._key = str(exc), None, None
                self._warn("camera_info", f"camera_info rejected: {exc}")
                camera = None
        if camera is not None:
            with self._lock:
                self._key, self._info, self._camera, self._error = key, msg, camera, None
            self._ready.set()
        if self._on_info is not None:
            self._on_info(msg, camera, received_at)

    def for_image(self, width: int, height: int):
        """(camera_info msg, PinholeCamera) for an image of this size, or FrameDropped saying why not."""
        with self._lock:
            info, camera, error = self._info, self._camera, self._error
        if error is not None:
            raise FrameDropped("invalid_camera_info", f"the latest camera_info is invalid: {error}")
        if camera is None:
            raise FrameDropped("no_camera_info", "no camera_info received yet")
        if (camera.width, camera.height) != (width, height):
            raise FrameDropped("camera_info_mismatch", f"image is {width}x{height} but camera_info describes "
                                                       f"{camera.width}x{camera.height}")
        return info, camera

    def size(self, timeout: float = 0.0) -> tuple[int, int] | None:
        """Size of the latest valid camera, waiting up to ``timeout`` s for the first camera_info."""
        if timeout > 0:
            self._ready.wait(timeout)
        with self._lock:
            camera = self._camera
        return None if camera is None else (camera.width, camera.height)

    def report(self, report: DiagnosticReport) -> None:
        with self._lock:
            report.add("camera_info_received", self.received)
            report.add("camera_info_rejected", self.rejected)
            error = self._error
        if error:
            report.escalate(WARN, f"camera_info rejected: {error}")


class RoadMaskInput:
    """Subscribes ``road_mask`` (mono8, nonzero = road); decodes the latest one once, on first use."""

    def __init__(self, node, qos, warn: Callable[[str, str], object]):
        self._warn = warn
        self._msg = None
        self._decoded = (None, None)  # (msg, bool mask)
        self.rejected = 0
        node.create_subscription(Image, "road_mask", self._on_msg, qos)

    def _on_msg(self, msg) -> None:
        try:
            check_image_layout(msg.encoding, msg.width, msg.height, msg.step, len(msg.data), MASK_ENCODINGS)
        except ConversionError as exc:
            self.rejected += 1
            self._warn("road_mask", f"road_mask rejected: {exc}")
            return
        self._msg = msg

    def for_camera(self, camera):
        """Latest road mask as bool (H, W), None before the first one; FrameDropped on a size mismatch."""
        msg = self._msg
        if msg is None:
            return None
        cached_msg, mask = self._decoded
        if cached_msg is not msg:
            mask = mask_from_image_msg(msg)
            self._decoded = (msg, mask)
        if mask.shape != (camera.height, camera.width):
            raise FrameDropped("road_mask_mismatch", f"road_mask is {mask.shape[1]}x{mask.shape[0]} but the "
                                                     f"image is {camera.width}x{camera.height}")
        return mask

    def report(self, report: DiagnosticReport) -> None:
        report.add("road_masks_rejected", self.rejected)


class ImageInput:
    """Subscribes ``image``; each message whose layout and camera_info check out in O(1) becomes a Frame in
    the mailbox, any other is counted there as dropped with its reason (and logged by ``on_drop``)."""

    def __init__(self, node, qos, camera_info: CameraInfoInput, mailbox: FrameMailbox,
                 on_drop: Callable[[FrameDropped], object]):
        self._camera_info, self._mailbox, self._on_drop = camera_info, mailbox, on_drop
        node.create_subscription(Image, "image", self._on_msg, qos)

    def _on_msg(self, msg) -> None:
        received_at = time.perf_counter()
        try:
            check_image_layout(msg.encoding, msg.width, msg.height, msg.step, len(msg.data))
            info, camera = self._camera_info.for_image(msg.width, msg.height)
        except ConversionError as exc:
            drop = FrameDropped("invalid_image", str(exc))
        except FrameDropped as dropped:
            drop = dropped
        else:
            self._mailbox.put(Frame(msg, received_at, camera, info))
            return
        self._mailbox.reject(drop.reason)
        self._on_drop(drop)
