"""The camera inputs a node owns: camera_info (parsed once per calibration, paired with images by
stamp), the image stream (raw or compressed) and the optional road mask.

All run their callbacks on the executor thread and only validate and store; an image becomes a Frame in
the mailbox once its camera_info is found (stamp_pairing.py), or is dropped with its reason.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from .conversions import (MASK_ENCODINGS, ConversionError, camera_from_info, check_image_layout, compressed_size,
                          mask_from_image_msg)
from .diagnostics import WARN, DiagnosticReport
from .stamp_pairing import StampPairing
from .worker import DROP_SHUTDOWN, Frame, FrameDropped, FrameMailbox

IMAGE_TRANSPORTS = ("raw", "compressed")
EXPIRY_PERIOD_S = 0.1  # how often images waiting for their camera_info are checked for time-out


def _info_key(msg) -> tuple:
    """Identity of a CameraInfo's calibration (so a stream of identical messages is parsed once)."""
    roi = msg.roi
    return (msg.width, msg.height, msg.distortion_model, tuple(msg.k), tuple(msg.d), msg.binning_x,
            msg.binning_y, roi.x_offset, roi.y_offset, roi.width, roi.height)


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


@dataclass(frozen=True)
class CalibratedInfo:
    """A received camera_info with its PinholeCamera, or the sentence saying why it has none."""

    msg: object
    camera: object = None
    error: str | None = None

    def for_image(self, width: int, height: int):
        """(camera_info msg, PinholeCamera) for an image of this size, or FrameDropped saying why not."""
        if self.error is not None:
            raise FrameDropped("invalid_camera_info", f"the image's camera_info is invalid: {self.error}")
        camera = self.camera
        if (camera.width, camera.height) != (width, height):
            raise FrameDropped("camera_info_mismatch", f"image is {width}x{height} but camera_info describes "
                                                       f"{camera.width}x{camera.height}")
        return self.msg, camera


class CameraInfoInput:
    """Subscribes ``camera_info``; keeps the recent ones, calibrated, for stamp pairing (``pairing``).

    ``on_info(msg, camera, received_at)`` (optional) runs after each message, camera None when the
    message was rejected (prior_node turns each camera_info into a frame). ``on_paired(outcomes)`` is
    set by the ImageInput that pairs images with these camera_infos.
    """

    def __init__(self, node, qos, warn: Callable[[str, str], object],
                 on_info: Callable[[object, object, float], None] | None = None, tolerance: float = 0.01):
        self._warn, self._on_info = warn, on_info
        self._lock = threading.Lock()
        self._key = self._camera = None
        self._error: str | None = None
        self._ready = threading.Event()
        self.received = self.rejected = 0
        self.pairing = StampPairing(tolerance)
        self.on_paired: Callable[[list], None] | None = None
        self.topic = node.create_subscription(CameraInfo, "camera_info", self._on_msg, qos).topic_name

    def _on_msg(self, msg) -> None:
        received_at = time.perf_counter()
        key = _info_key(msg)
        with self._lock:
            self.received += 1
            camera = self._camera if key == self._key else None
        error = None
        if camera is None:
            try:
                camera = camera_from_info(msg)
            except ConversionError as exc:
                error = str(exc)
                with self._lock:
                    self.rejected += 1
                    self._error = error
                self._warn("camera_info", f"camera_info rejected: {exc}")
        if camera is not None:
            with self._lock:
                self._key, self._camera, self._error = key, camera, None
            self._ready.set()
        with self._lock:
            outcomes = self.pairing.add_info(stamp_ns(msg.header), CalibratedInfo(msg, camera, error))
        if outcomes and self.on_paired is not None:
            self.on_paired(outcomes)
        if self._on_info is not None:
            self._on_info(msg, camera, received_at)

    def pair(self, stamp: int, image) -> list:
        """Pairing outcomes (stamp_pairing.Outcome, info: CalibratedInfo) after an image arrives."""
        with self._lock:
            return self.pairing.add_image(stamp, image)

    def expire(self) -> list:
        with self._lock:
            return self.pairing.expire()

    def drain(self, reason: str, message: str) -> list:
        with self._lock:
            return self.pairing.drain(reason, message)

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
            report.add("camera_info_topic", self.topic)
            error, received, gap = self._error, self.received, self.pairing.last_gap_ns
        if received == 0:
            # Explains every other symptom (no frames, no_camera_info drops): it goes first.
            report.lead(WARN, f"waiting for camera_info on {self.topic} (none received yet)")
        elif error:
            report.escalate(WARN, f"camera_info rejected: {error}")
        if gap is not None:
            report.add("camera_info_unpaired_gap_s", gap / 1e9)


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
    """Subscribes ``image`` (transport ``raw``: sensor_msgs/Image) or ``image/compressed`` (``compressed``:
    sensor_msgs/CompressedImage, JPEG/PNG). Each message whose layout checks out in O(1) is paired with
    its camera_info by stamp and becomes a Frame in the mailbox; any other is counted there as dropped
    with its reason (and logged by ``on_drop``). Compressed frames are decoded by the worker.
    """

    def __init__(self, node, qos, camera_info: CameraInfoInput, mailbox: FrameMailbox,
                 on_drop: Callable[[FrameDropped], object], transport: str = "raw"):
        self._camera_info, self._mailbox, self._on_drop = camera_info, mailbox, on_drop
        self.compressed = transport == "compressed"
        camera_info.on_paired = self._resolve
        if self.compressed:
            self.topic = compressed_topic(node)
            node.create_subscription(CompressedImage, self.topic, self._on_msg, qos)
        else:
            self.topic = node.create_subscription(Image, "image", self._on_msg, qos).topic_name
        node.create_timer(EXPIRY_PERIOD_S, lambda: self._resolve(self._camera_info.expire()))

    def _on_msg(self, msg) -> None:
        received_at = time.perf_counter()
        try:
            if self.compressed:
                width, height = compressed_size(msg.data, msg.format)
            else:
                check_image_layout(msg.encoding, msg.width, msg.height, msg.step, len(msg.data))
                width, height = msg.width, msg.height
        except ConversionError as exc:
            self._drop(FrameDropped("invalid_image", str(exc)), held=False)
            return
        self._mailbox.hold()
        self._resolve(self._camera_info.pair(stamp_ns(msg.header), (msg, received_at, width, height)))

    def _resolve(self, outcomes) -> None:
        """Paired images to the mailbox (once their camera_info fits), given-up ones counted as dropped."""
        for outcome in outcomes:
            msg, received_at, width, height = outcome.image
            if outcome.reason is not None:
                self._drop(FrameDropped(outcome.reason, outcome.message), held=True)
                continue
            try:
                info, camera = outcome.info.for_image(width, height)
            except FrameDropped as drop:
                self._drop(drop, held=True)
                continue
            self._mailbox.put(Frame(msg, received_at, camera, info), held=True)

    def close(self) -> None:
        """Count the images still waiting for their camera_info as dropped (the inputs are going away:
        a lifecycle deactivate), so that received = processed + dropped holds without them."""
        self._resolve(self._camera_info.drain(DROP_SHUTDOWN, "the inputs were closed while it waited for its "
                                                             "camera_info"))

    def _drop(self, drop: FrameDropped, held: bool) -> None:
        self._mailbox.reject(drop.reason, held)
        self._on_drop(drop)


def compressed_topic(node) -> str:
    """``image/compressed`` as image_transport names it: the *resolved* ``image`` topic + /compressed, so
    remapping ``image:=/cam/image_raw`` subscribes /cam/image_raw/compressed; a remapping of
    ``image/compressed`` itself wins."""
    resolve = getattr(node, "resolve_topic_name", None)
    if resolve is None:  # rclpy without name resolution: only an explicit image/compressed remap applies
        return "image/compressed"
    direct = resolve("image/compressed")
    if direct != resolve("image/compressed", only_expand=True):
        return direct
    return resolve("image") + "/compressed"
