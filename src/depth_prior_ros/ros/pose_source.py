"""Where the camera pose above the road comes from: tf2_ros on a vehicle, static parameters otherwise.

``make_pose_source`` picks one at start and says which (and why) in ``description``; the nodes log
it and put it in /diagnostics. tf2_ros is imported lazily: it is part of every ROS 2 distro but not
of the PyPI wheels, so without it the static path is used.

A source's ``lookup(frame_id, stamp)`` returns T_ground_from_camera (4, 4), or raises
:class:`PoseUnavailable` (one sentence), a FrameDropped, so that frame is dropped and counted.
"""
from __future__ import annotations

import threading

import numpy as np

from ..geometry.extrinsics import PoseError, check_ground_pose, pose_from_transform, summarize_pose
from ..parameters import ParameterError, PoseSettings
from .diagnostics import DiagnosticReport
from .worker import FrameDropped


class PoseUnavailable(FrameDropped):
    """No usable pose for this frame (tf lookup failed or gave a pose that cannot see the road)."""

    def __init__(self, message: str):
        super().__init__("no_pose", message)


def report_pose(source, report: DiagnosticReport) -> None:
    """Which pose source is in use, why, and the last pose it gave (diagnostics of both nodes)."""
    report.add("pose_source", source.kind)
    report.add("pose_source_detail", source.description)
    report.add("pose", source.last_summary)


def import_tf2():
    """The tf2_ros module, or None where it is not installed (PyPI wheels, CI)."""
    try:
        import tf2_ros
    except (ImportError, OSError):
        return None
    return tf2_ros


class StaticPoseSource:
    """The same pose for every frame, from camera_height / camera_*_deg."""

    kind = "static"

    def __init__(self, settings: PoseSettings, why: str = ""):
        self.T = settings.static_pose()
        try:
            check_ground_pose(self.T)
        except PoseError as exc:  # only reachable through odd parameters; name them
            raise ParameterError(f"static camera pose parameters are unusable: {exc}") from exc
        self.last_summary = str(summarize_pose(self.T))
        self.description = f"static parameters ({self.last_summary})" + (f"; {why}" if why else "")

    def lookup(self, frame_id: str, stamp) -> np.ndarray:
        return self.T


class TfPoseSource:
    """ground_frame <- image frame from tf at the image stamp (waits up to tf_timeout seconds).

    Call ``lookup`` from a worker thread, never from a subscription callback: while it waits, the
    executor must stay free to deliver the /tf messages it waits for.
    """

    kind = "tf"

    def __init__(self, node, settings: PoseSettings, tf2_ros):
        self._tf2 = tf2_ros
        self.ground_frame = settings.ground_frame
        self.timeout = float(settings.tf_timeout)
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self.description = f"tf ({self.ground_frame} <- image frame at the image stamp)"
        self.last_summary = "no transform yet"
        self._lock = threading.Lock()

    def lookup(self, frame_id: str, stamp) -> np.ndarray:
        from rclpy.duration import Duration
        from rclpy.time import Time

        if not frame_id:
            raise PoseUnavailable("image header has an empty frame_id, so its pose cannot be looked up in tf")
        try:
            msg = self.buffer.lookup_transform(self.ground_frame, frame_id, Time.from_msg(stamp),
                                               timeout=Duration(seconds=self.timeout))
        except self._tf2.TransformException as exc:
            raise PoseUnavailable(f"no transform {self.ground_frame} <- {frame_id} at "
                                  f"{stamp.sec}.{stamp.nanosec:09d}: {exc}") from exc
        t, q = msg.transform.translation, msg.transform.rotation
        try:
            T = pose_from_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
            check_ground_pose(T)
        except PoseError as exc:
            raise PoseUnavailable(f"transform {self.ground_frame} <- {frame_id} is unusable: {exc}") from exc
        with self._lock:
            self.last_summary = str(summarize_pose(T))
        return T


def make_pose_source(node, settings: PoseSettings):
    """TfPoseSource when use_tf and tf2_ros imports; StaticPoseSource (saying why) otherwise."""
    if not settings.use_tf:
        return StaticPoseSource(settings, "use_tf is false")
    tf2_ros = import_tf2()
    if tf2_ros is None:
        return StaticPoseSource(settings, "use_tf is true but tf2_ros is not installed")
    return TfPoseSource(node, settings, tf2_ros)
