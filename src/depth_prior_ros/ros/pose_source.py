"""Where the camera pose above the road comes from: tf on a vehicle, static parameters otherwise.

``make_pose_source`` picks one at start and says which (and why) in ``description``; the nodes log
it and put it in /diagnostics. With ``use_tf``:
- tf2_ros imports (a ROS 2 distribution): its Buffer and TransformListener (TfPoseSource);
- else (the PyPI wheels, this test suite) the node subscribes /tf and /tf_static itself, with tf2's QoS,
  into the project's TfTree (TreePoseSource); tf2_msgs then comes from scripts/build_tf2_msgs.py;
- else (no tf2_msgs either) the static parameters, with a WARN on /diagnostics.
Both tf sources look up ground_frame <- image frame at the image stamp, waiting up to tf_timeout
seconds for it, and report WARN on /diagnostics while lookups fail, ERROR once they have failed
for TF_ERROR_AFTER_S in a row.

A source's ``lookup(frame_id, stamp)`` returns T_ground_from_camera (4, 4), or raises
:class:`PoseUnavailable` (one sentence), a FrameDropped, so that frame is dropped and counted.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from ..geometry.extrinsics import PoseError, check_ground_pose, pose_from_transform, summarize_pose
from ..geometry.tf_tree import TfLookupError, TfTree, stamp_to_ns
from ..parameters import ParameterError, PoseSettings
from .diagnostics import ERROR, WARN, DiagnosticReport
from .worker import FrameDropped

TF_ERROR_AFTER_S = 5.0   # lookups failing this long in a row: ERROR instead of WARN
TF_CACHE_S = 10.0        # tf2_ros.Buffer's default cache_time


class PoseUnavailable(FrameDropped):
    """No usable pose for this frame (tf lookup failed or gave a pose that cannot see the road)."""

    def __init__(self, message: str):
        super().__init__("no_pose", message)


def report_pose(source, report: DiagnosticReport) -> None:
    """Which pose source is in use, why, and the last pose it gave (diagnostics of both nodes)."""
    report.add("pose_source", source.kind)
    report.add("pose_source_detail", source.description)
    report.add("pose", source.last_summary)
    source.report(report)


def import_tf_message():
    """tf2_msgs.msg.TFMessage, or None where neither a distribution nor the set-up's build provides it."""
    try:
        from tf2_msgs.msg import TFMessage
    except (ImportError, OSError):
        return None
    return TFMessage


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

    def __init__(self, settings: PoseSettings, why: str = "", warning: str = ""):
        self.warning = warning  # use_tf asked for but impossible: WARN on every report
        self.why = why
        self.apply(settings)

    def apply(self, settings: PoseSettings) -> None:
        """New static parameters (a runtime parameter change); ParameterError when unusable."""
        T = settings.static_pose()
        try:
            check_ground_pose(T)
        except PoseError as exc:  # only reachable through odd parameters; name them
            raise ParameterError(f"static camera pose parameters are unusable: {exc}") from exc
        self.T = T
        self.last_summary = str(summarize_pose(T))
        self.description = f"static parameters ({self.last_summary})" + (f"; {self.why}" if self.why else "")

    def lookup(self, frame_id: str, stamp) -> np.ndarray:
        return self.T

    def report(self, report: DiagnosticReport) -> None:
        if self.warning:
            report.escalate(WARN, self.warning)


class _TfLookups:
    """What both tf sources share: the ground pose from a transform, timeout, and the lookup streak
    that /diagnostics reports (WARN while failing, ERROR after TF_ERROR_AFTER_S of failures)."""

    kind = "tf"

    def __init__(self, settings: PoseSettings, how: str):
        self.ground_frame = settings.ground_frame
        self.timeout = float(settings.tf_timeout)
        self.description = f"tf via {how} ({self.ground_frame} <- image frame at the image stamp)"
        self.last_summary = "no transform yet"
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._failing_since: float | None = None  # first failed lookup of the current streak
        self._failed_at = 0.0                       # the latest failed lookup
        self._failure = ""
        self._ok = 0

    def apply(self, settings: PoseSettings) -> None:
        """Runtime parameters: only tf_timeout matters to a tf source."""
        self.timeout = float(settings.tf_timeout)

    def _check(self, frame_id: str, stamp) -> None:
        if not frame_id:
            self._failed("image header has an empty frame_id, so its pose cannot be looked up in tf")

    def _pose(self, frame_id: str, T: np.ndarray) -> np.ndarray:
        """T_ground_from_camera (4, 4) checked (the camera must see the road), recorded as the last pose."""
        try:
            check_ground_pose(T)
        except PoseError as exc:
            self._failed(f"transform {self.ground_frame} <- {frame_id} is unusable: {exc}")
        with self._lock:
            self.last_summary, self._failing_since, self._ok = str(summarize_pose(T)), None, self._ok + 1
        return T

    def _failed(self, message: str):
        with self._lock:
            self._failed_at = time.monotonic()
            if self._failing_since is None:
                self._failing_since = self._failed_at
            self._failure = message
        raise PoseUnavailable(message)

    def report(self, report: DiagnosticReport) -> None:
        with self._lock:
            since, last, failure, ok = self._failing_since, self._failed_at, self._failure, self._ok
        report.add("tf_lookups_ok", ok)
        now = time.monotonic()
        if since is not None and now - last < TF_ERROR_AFTER_S:  # (an old streak: images stopped coming)
            persisted = last - since
            level = ERROR if persisted >= TF_ERROR_AFTER_S else WARN
            report.escalate(level, f"use_tf: no camera pose from tf for {persisted:.1f} s: {failure}")
        elif ok == 0 and self.silent() and time.monotonic() - self._started >= TF_ERROR_AFTER_S:
            report.escalate(WARN, f"use_tf: nothing received on /tf or /tf_static in "
                                  f"{time.monotonic() - self._started:.0f} s")

    def silent(self) -> bool:
        """True when no tf message has arrived at all (only the node's own subscriptions can tell)."""
        return False


class TfPoseSource(_TfLookups):
    """ground_frame <- image frame from tf2_ros at the image stamp (waits up to tf_timeout seconds).

    Call ``lookup`` from a worker thread, never from a subscription callback: while it waits, the
    executor must stay free to deliver the /tf messages it waits for.
    """

    def __init__(self, node, settings: PoseSettings, tf2_ros):
        super().__init__(settings, "tf2_ros")
        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)

    def lookup(self, frame_id: str, stamp) -> np.ndarray:
        from rclpy.duration import Duration
        from rclpy.time import Time

        self._check(frame_id, stamp)
        try:
            msg = self.buffer.lookup_transform(self.ground_frame, frame_id, Time.from_msg(stamp),
                                               timeout=Duration(seconds=self.timeout))
        except self._tf2.TransformException as exc:
            self._failed(f"no transform {self.ground_frame} <- {frame_id} at "
                         f"{stamp.sec}.{stamp.nanosec:09d}: {exc}")
        t, q = msg.transform.translation, msg.transform.rotation
        try:
            T = pose_from_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        except PoseError as exc:
            self._failed(f"transform {self.ground_frame} <- {frame_id} is unusable: {exc}")
        return self._pose(frame_id, T)


class TreePoseSource(_TfLookups):
    """ground_frame <- image frame without tf2_ros: this node's own /tf and /tf_static subscriptions
    (tf2's QoS) fill a TfTree with tf2's rules (no extrapolation, interpolation between samples,
    TF_CACHE_S of history, newest parent wins); ``lookup`` waits up to tf_timeout for a transform
    at the stamp, like tf2_ros.Buffer.lookup_transform(timeout=...). Stamp 0 means the latest.

    Call ``lookup`` from a worker thread (see TfPoseSource).
    """

    def __init__(self, node, settings: PoseSettings, tf_message):
        from .qos import tf_listener_qos

        super().__init__(settings, "this node's /tf and /tf_static subscriptions (no tf2_ros)")
        self.tree = TfTree("interpolate", max_extrapolation=0.0, cache_time=TF_CACHE_S)
        self._cond = threading.Condition()
        self.received = self.rejected = 0
        self.subscriptions = [
            node.create_subscription(tf_message, "/tf", lambda m: self._on_tf(m, False), tf_listener_qos(False)),
            node.create_subscription(tf_message, "/tf_static", lambda m: self._on_tf(m, True), tf_listener_qos(True))]

    def _on_tf(self, msg, static: bool) -> None:
        with self._cond:
            self.received += 1
            for ts in msg.transforms:
                try:
                    self.tree.add_transform_stamped(ts, static)
                except ValueError:  # a loop, a NaN, a nameless frame: tf2 refuses those too
                    self.rejected += 1
            self._cond.notify_all()

    def lookup(self, frame_id: str, stamp) -> np.ndarray:
        self._check(frame_id, stamp)
        stamp_ns = stamp_to_ns(stamp) or None  # 0: the latest, as in tf2
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                try:
                    T = self.tree.lookup(self.ground_frame, frame_id, stamp_ns)
                    break
                except TfLookupError as exc:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._failed(f"no transform {self.ground_frame} <- {frame_id} at {stamp.sec}."
                                     f"{stamp.nanosec:09d} within {self.timeout:g} s: {exc}")
                    self._cond.wait(left)  # a /tf message wakes it
        return self._pose(frame_id, T)

    def report(self, report: DiagnosticReport) -> None:
        with self._cond:
            report.add("tf_messages_received", self.received)
            report.add("tf_transforms_rejected", self.rejected)
        super().report(report)

    def silent(self) -> bool:
        return self.received == 0


def checked(settings):
    """A node's parsed settings, after checking that its static pose (when it uses one) sees the road:
    a runtime change must be refused in the parameter callback, not fail later in the worker."""
    if not settings.pose.use_tf:
        StaticPoseSource(settings.pose)  # ParameterError (one sentence) when unusable
    return settings


def make_pose_source(node, settings: PoseSettings):
    """With use_tf: TfPoseSource where tf2_ros imports, else TreePoseSource where tf2_msgs does, else
    StaticPoseSource with a WARN; without use_tf, StaticPoseSource saying why."""
    if not settings.use_tf:
        return StaticPoseSource(settings, "use_tf is false")
    tf2_ros = import_tf2()
    if tf2_ros is not None:
        return TfPoseSource(node, settings, tf2_ros)
    tf_message = import_tf_message()
    if tf_message is not None:
        return TreePoseSource(node, settings, tf_message)
    why = "use_tf is true but neither tf2_ros nor tf2_msgs is installed (scripts/build_tf2_msgs.py builds tf2_msgs)"
    return StaticPoseSource(settings, why, warning=why)
