"""The benchmarks' publisher and receiver around a node under test (transport benchmark, soak, node fuzz test).

``Driver`` is a ``processes.RosClient`` that publishes image + camera_info frames at a rate (header stamp =
send time), receives an output topic (latency = receive time - stamp) and keeps the node's /diagnostics
statuses of the measured window. rclpy is imported inside functions, so importing this module costs nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..processes import RosClient


# ----------------------------------------------------------------------------- frames
def test_image(width: int, height: int) -> np.ndarray:
    """A deterministic RGB frame (gradients + a checker) of the given size: uint8 (H, W, 3)."""
    u = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    v = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    checker = ((np.arange(height)[:, None] // 16 + np.arange(width)[None, :] // 16) % 2) * 40.0
    r = np.broadcast_to(u, (height, width))
    g = np.broadcast_to(v, (height, width))
    b = (r + g) * 0.5 + checker
    return np.clip(np.stack([r, g, b], axis=2), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- driver
@dataclass
class StreamStats:
    """What one driver run saw. latencies_ms: per received output whose stamp is in the window."""

    rate_hz: float | None
    sent: int
    window_s: float
    outputs: int
    latencies_ms: list[float] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)  # node status values per diagnostics message

    @property
    def throughput_hz(self) -> float:
        return self.outputs / self.window_s if self.window_s > 0 else float("nan")

    def latency(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


BENCH_POSE = (1.51, 0.0)  # camera height (m) and pitch (deg) above the road: nuScenes CAM_FRONT-like
CAMERA_FRAME = "bench_camera_optical_frame"


class Driver(RosClient):
    """Publishes ``image`` + ``camera_info`` (QoS ``reliable`` / ``qos_depth``) and listens to
    ``output_topic`` and to the /diagnostics statuses whose name starts with ``diagnostics_name``.
    Like a vehicle's robot_state_publisher, it latches the camera mount ``camera_pose`` (height m, pitch
    deg) on /tf_static (base_footprint -> its camera frame), so a node runs its shipped ``use_tf: true``.

    Topics are relative to ``namespace``. Use as a context manager; it owns its rclpy context.
    """

    def __init__(self, width: int, height: int, K: np.ndarray, namespace: str = "/bench",
                 output_topic: str = "depth", reliable: bool = False, qos_depth: int = 1,
                 diagnostics_name: str | None = None, camera_pose: tuple[float, float] | None = BENCH_POSE):
        from sensor_msgs.msg import CameraInfo, Image

        from ..geometry.camera import PinholeCamera
        from ..ros.conversions import camera_info_msg, image_msg

        self._window_start_ns: int | None = None
        self._latencies: list[float] = []
        self._outputs = 0
        self._outputs_total = 0
        self._diagnostics: list[dict] = []
        self._last_output = None
        super().__init__("bench_driver", namespace)
        self.pub_image = self.publisher(Image, "image", qos_depth, reliable)
        self.pub_info = self.publisher(CameraInfo, "camera_info", qos_depth, reliable)
        self.subscribe(Image, output_topic, self._on_output)
        self.watch_diagnostics(diagnostics_name or "")
        self.image_msg = image_msg(test_image(width, height), "rgb8")
        self.info_msg = camera_info_msg(PinholeCamera(np.asarray(K, dtype=np.float64), width, height))
        self.image_msg.header.frame_id = self.info_msg.header.frame_id = CAMERA_FRAME
        self.pub_tf_static = None if camera_pose is None else self._latch_mount(*camera_pose)

    def _latch_mount(self, height_m: float, pitch_deg: float):
        import math

        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        from ..geometry.extrinsics import matrix_to_quaternion, pose_from_static
        from ..ros.qos import tf_broadcaster_qos

        T = pose_from_static(float(height_m), math.radians(float(pitch_deg)))
        ts = TransformStamped(child_frame_id=CAMERA_FRAME)
        ts.header.frame_id = "base_footprint"
        t, r = ts.transform.translation, ts.transform.rotation
        t.x, t.y, t.z = (float(v) for v in T[:3, 3])
        r.x, r.y, r.z, r.w = (float(v) for v in matrix_to_quaternion(T[:3, :3]))
        publisher = self.node.create_publisher(TFMessage, "/tf_static", tf_broadcaster_qos(True))
        publisher.publish(TFMessage(transforms=[ts]))
        return publisher

    def publish_frame(self, msg=None, info=True) -> int:
        """Stamp with the current system time (ns), publish camera_info then the image; returns the stamp."""
        msg = msg if msg is not None else self.image_msg
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        if info:
            self.info_msg.header.stamp = msg.header.stamp
            self.pub_info.publish(self.info_msg)
        self.pub_image.publish(msg)
        return now

    # --------------------------------------------------------------------------- callbacks
    def _on_output(self, msg) -> None:
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            self._outputs_total += 1
            self._last_output = msg
            if self._window_start_ns is not None and stamp >= self._window_start_ns:
                self._outputs += 1
                self._latencies.append((now - stamp) / 1e6)

    def on_status(self, values: dict) -> None:
        with self._lock:
            if self._window_start_ns is not None:
                self._diagnostics.append(values)

    # --------------------------------------------------------------------------- queries
    @property
    def outputs_total(self) -> int:
        with self._lock:
            return self._outputs_total

    def wait_for_output(self, stamp_ns: int, timeout: float):
        """The output message carrying ``stamp_ns`` once it arrives (outputs come in order), else None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                msg = self._last_output
            if msg is not None and msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == stamp_ns:
                return msg
            time.sleep(0.02)
        return None

    # --------------------------------------------------------------------------- runs
    def stream(self, rate_hz: float | None, duration_s: float | None = None, frames: int | None = None,
               warmup_s: float = 1.0, drain_s: float = 1.0, progress=None) -> StreamStats:
        """Publish at ``rate_hz`` (None: back to back) for ``duration_s`` or ``frames``, after a warm-up.

        Only outputs whose stamp is at or after the first measured frame count; the window is the
        measured publishing time plus one period.
        """
        if (duration_s is None) == (frames is None):
            raise ValueError("give exactly one of duration_s and frames")
        if warmup_s > 0:
            self.pace(rate_hz, duration_s=warmup_s)
        with self._lock:
            self._latencies, self._outputs, self._diagnostics = [], 0, []
            self._window_start_ns = time.time_ns()
        t0 = time.perf_counter()
        sent = self.pace(rate_hz, duration_s=duration_s, frames=frames, progress=progress)
        elapsed = time.perf_counter() - t0
        window = elapsed + (1.0 / rate_hz if rate_hz else 0.0)
        time.sleep(drain_s)
        with self._lock:
            stats = StreamStats(rate_hz, sent, window, self._outputs, list(self._latencies), list(self._diagnostics))
            self._window_start_ns = None
        return stats

    def pace(self, rate_hz: float | None, duration_s: float | None = None, frames: int | None = None,
             progress=None, after_each=None) -> int:
        """Publish frames at ``rate_hz`` (None: back to back) for ``duration_s`` or ``frames``, or until
        ``after_each(frames sent)`` returns False; returns how many were sent."""
        period = 1.0 / rate_hz if rate_hz else 0.0
        start = time.perf_counter()
        next_at = start
        sent = 0
        while True:
            if frames is not None and sent >= frames:
                break
            if duration_s is not None and time.perf_counter() - start >= duration_s:
                break
            self.publish_frame()
            sent += 1
            if progress is not None:
                progress.update(1)
            if after_each is not None and after_each(sent) is False:
                break
            if period:
                next_at += period
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -period:  # fell behind by more than a frame: do not burst to catch up
                    next_at = time.perf_counter()
        return sent
