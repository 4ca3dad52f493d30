"""Live-node harness shared by the transport benchmark, the soak and the node fuzz test.

- ``configure_ros_environment``: loopback discovery and a per-run ROS_DOMAIN_ID for this process and
  its children (must run before rclpy starts).
- ``NodeProcess``: a node in its own process (``python -m module --ros-args ...``) with its log in a
  file, its resident memory from /proc, and a clean stop.
- ``Driver``: an rclpy node in the calling process that publishes image + camera_info frames at a
  rate (header stamp = send time), receives an output topic (latency = receive time - stamp) and
  keeps the latest /diagnostics status of the node under test.
rclpy is imported inside functions, so importing this module costs nothing.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..processes import stop_gently

# Domain ids this project's benchmark runs use unless told otherwise (tests use their own ranges).
BENCH_DOMAIN_RANGE = (40, 59)
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # .../src, so children import this checkout


# Fast DDS profile of the benchmark and soak runs: user data between processes through shared memory
# (as between nodes on one vehicle computer); discovery and any UDP stay on 127.0.0.1 (no multicast,
# nothing on eth0: checked with tcpdump). Why not UDP loopback only (config/fastdds_localhost.xml)? A
# 1600x900 rgb8 image is ~70 UDP fragments; with best-effort (sensor-data) QoS one lost fragment loses
# the frame, and with default kernel socket buffers most frames are lost (1 of 30 arrived at 10 Hz):
# that measures a socket buffer, not the node.
SHM_LOOPBACK_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>bench_shm</transport_id>
        <type>SHM</type>
        <segment_size>33554432</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>bench_udp_loopback</transport_id>
        <type>UDPv4</type>
        <maxInitialPeersRange>32</maxInitialPeersRange>
        <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="depth_prior_bench_participant" is_default_profile="true">
      <rtps>
        <useBuiltinTransports>false</useBuiltinTransports>
        <userTransports>
          <transport_id>bench_shm</transport_id>
          <transport_id>bench_udp_loopback</transport_id>
        </userTransports>
        <builtin>
          <metatrafficUnicastLocatorList>
            <locator><udpv4><address>127.0.0.1</address></udpv4></locator>
          </metatrafficUnicastLocatorList>
          <initialPeersList>
            <locator><udpv4><address>127.0.0.1</address></udpv4></locator>
          </initialPeersList>
        </builtin>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


class HarnessError(RuntimeError):
    """The live-node harness could not do its job (node did not start, no connection...): one sentence."""


def pick_domain_id(explicit: int | None = None, domain_range: tuple[int, int] = BENCH_DOMAIN_RANGE) -> int:
    """An explicit id, else DEPTH_PRIOR_ROS_DOMAIN_ID, else a random id in the range."""
    if explicit is not None:
        return int(explicit)
    pinned = os.environ.get("DEPTH_PRIOR_ROS_DOMAIN_ID")
    if pinned:
        return int(pinned)
    return random.randint(*domain_range)


def configure_ros_environment(domain_id: int, fastdds_profile: str | None = "shm") -> dict[str, str]:
    """Keep DDS on this host in ``domain_id`` for this process and every child; returns the settings.

    Discovery is restricted to localhost (no multicast leaves the machine). ``fastdds_profile``:
    "shm" writes and uses SHM_LOOPBACK_PROFILE; a path uses that file; None or "" keeps whatever
    FASTDDS_DEFAULT_PROFILES_FILE the environment has.
    """
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(int(domain_id))
    if fastdds_profile == "shm":
        path = Path(tempfile.gettempdir()) / "depth_prior_bench_fastdds_shm_loopback.xml"
        if not path.is_file() or path.read_text() != SHM_LOOPBACK_PROFILE:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(SHM_LOOPBACK_PROFILE)
            tmp.replace(path)
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    elif fastdds_profile:
        if not Path(fastdds_profile).is_file():
            raise HarnessError(f"Fast DDS profile {fastdds_profile} does not exist")
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(fastdds_profile).resolve())
    return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(int(domain_id)),
            "FASTDDS_DEFAULT_PROFILES_FILE": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")}


_ROS_VARIABLES = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE")


@contextlib.contextmanager
def ros_environment(domain_id: int, fastdds_profile: str | None = "shm"):
    """configure_ros_environment for a ``with`` block, restoring the previous variables afterwards
    (tests share one process; the next test must not inherit this one's domain)."""
    saved = {name: os.environ.get(name) for name in _ROS_VARIABLES}
    try:
        yield configure_ros_environment(domain_id, fastdds_profile)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def child_environment() -> dict[str, str]:
    """This process's environment (with its ROS settings) plus this checkout on PYTHONPATH."""
    env = dict(os.environ)
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env or "ROS_DOMAIN_ID" not in env:
        raise HarnessError("call configure_ros_environment() before starting node processes")
    paths = [str(_PACKAGE_PARENT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    return env


def ros_param_args(params: dict) -> list[str]:
    """{'use_tf': False, 'camera_height': 1.5} -> ['-p', 'use_tf:=false', '-p', 'camera_height:=1.5']."""
    out = []
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = str(value)
        out += ["-p", f"{name}:={text}"]
    return out


# ----------------------------------------------------------------------------- node process
def read_rss_mb(pid: int) -> float | None:
    """Resident memory (VmRSS) of a process in MiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, so a killed benchmark or test run never
    leaves a node behind that would answer the next run's messages."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def unique_namespace(prefix: str) -> str:
    """A ROS namespace no other run on this host uses (topics and /diagnostics names stay apart even
    when two runs share a domain id)."""
    return f"/{prefix}_{os.getpid()}_{random.randint(0, 99999)}"


class NodeProcess:
    """``python -m module --ros-args -r __node:=name -r __ns:=ns -p ...``, stdout+stderr in ``log_path``."""

    def __init__(self, module: str, params: dict, log_path: Path, node_name: str | None = None,
                 namespace: str | None = None, extra_args: list[str] | None = None):
        self.module, self.params, self.log_path = module, dict(params), Path(log_path)
        self.node_name, self.namespace = node_name, namespace
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> "NodeProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w", encoding="utf-8")
        cmd = [sys.executable, "-m", self.module, *self.extra_args, "--ros-args"]
        if self.node_name:
            cmd += ["-r", f"__node:={self.node_name}"]
        if self.namespace:
            cmd += ["-r", f"__ns:={self.namespace}"]
        cmd += ros_param_args(self.params)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=child_environment(),
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float | None:
        return read_rss_mb(self.pid) if self.alive() else None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (the nodes shut down cleanly on it), then SIGTERM, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        stop_gently(self.proc, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def log_problems(text: str) -> list[str]:
    """Lines of a node log that show a crash or an unexpected error (tracebacks, ERROR/FATAL lines)."""
    problems = []
    for line in text.splitlines():
        if "Traceback (most recent call last)" in line or "[ERROR]" in line or "[FATAL]" in line \
                or "Segmentation fault" in line or "core dumped" in line:
            problems.append(line.strip())
    return problems


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


def _qos(reliable: bool, depth: int):
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=max(int(depth), 1),
                      reliability=QoSReliabilityPolicy.RELIABLE if reliable else QoSReliabilityPolicy.BEST_EFFORT,
                      durability=QoSDurabilityPolicy.VOLATILE)


class Driver:
    """Publishes ``image`` + ``camera_info`` and listens to ``output_topic`` and /diagnostics.

    Topics are relative to ``namespace``. Use as a context manager; it owns its rclpy context.
    """

    def __init__(self, width: int, height: int, K: np.ndarray, namespace: str = "/bench",
                 output_topic: str = "depth", reliable: bool = False, qos_depth: int = 1,
                 diagnostics_name: str | None = None, encoding: str = "rgb8"):
        self.width, self.height, self.K = int(width), int(height), np.asarray(K, dtype=np.float64)
        self.namespace, self.output_topic = namespace, output_topic
        self.reliable, self.qos_depth = reliable, qos_depth
        self.diagnostics_name = diagnostics_name
        self.encoding = encoding
        self._lock = threading.Lock()
        self._window_start_ns: int | None = None
        self._latencies: list[float] = []
        self._outputs = 0
        self._outputs_total = 0
        self._diagnostics: list[dict] = []
        self._last_diag: dict | None = None
        self._last_output = None
        self.context = None

    # --------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> "Driver":
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import CameraInfo, Image

        self.context = rclpy.Context()
        # The domain is passed explicitly too: a test process may have started rclpy before with another.
        rclpy.init(context=self.context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "0")))
        self.node = Node("bench_driver", namespace=self.namespace, context=self.context)
        pub_qos = _qos(self.reliable, self.qos_depth)
        self.pub_image = self.node.create_publisher(Image, "image", pub_qos)
        self.pub_info = self.node.create_publisher(CameraInfo, "camera_info", pub_qos)
        # The receiver is reliable keep-last: it measures the node, not loss in the receiving socket.
        self.node.create_subscription(Image, self.output_topic, self._on_output, _qos(True, 10))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, _qos(True, 10))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_forever, name="bench_driver_spin", daemon=True)
        self._spin.start()
        self.image_msg = self._make_image(test_image(self.width, self.height))
        self.info_msg = self._make_info()
        return self

    def _spin_forever(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races (ExternalShutdownException, invalid handle)
            pass

    def __exit__(self, *exc) -> None:
        import rclpy

        try:
            self.executor.shutdown(timeout_sec=1.0)
        except TypeError:  # older rclpy: no timeout argument
            self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context) if hasattr(rclpy, "try_shutdown") else rclpy.shutdown(
            context=self.context)
        self._spin.join(2.0)

    # --------------------------------------------------------------------------- messages
    def _make_image(self, rgb: np.ndarray):
        import array

        from sensor_msgs.msg import Image

        msg = Image()
        msg.header.frame_id = "bench_camera_optical_frame"
        msg.height, msg.width = self.height, self.width
        if self.encoding == "mono8":
            pixels = np.ascontiguousarray(rgb[..., 1])
        elif self.encoding == "bgr8":
            pixels = np.ascontiguousarray(rgb[..., ::-1])
        else:
            pixels = rgb
        msg.encoding = self.encoding
        msg.step = int(pixels.strides[0])
        data = array.array("B")
        data.frombytes(pixels.tobytes())
        msg.data = data
        return msg

    def _make_info(self):
        from sensor_msgs.msg import CameraInfo

        msg = CameraInfo()
        msg.header.frame_id = self.image_msg.header.frame_id
        msg.width, msg.height = self.width, self.height
        msg.distortion_model = "plumb_bob"
        msg.d = [0.0] * 5
        msg.k = self.K.ravel().tolist()
        msg.r = np.eye(3).ravel().tolist()
        P = np.zeros((3, 4))
        P[:, :3] = self.K
        msg.p = P.ravel().tolist()
        return msg

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

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if self.diagnostics_name and self.diagnostics_name not in status.name:
                continue
            values = {kv.key: kv.value for kv in status.values}
            values["_level"] = int.from_bytes(status.level, "little") if isinstance(status.level, bytes) \
                else int(status.level)
            values["_message"] = status.message
            values["_time"] = time.monotonic()
            with self._lock:
                self._last_diag = values
                if self._window_start_ns is not None:
                    self._diagnostics.append(values)

    # --------------------------------------------------------------------------- queries
    @property
    def outputs_total(self) -> int:
        with self._lock:
            return self._outputs_total

    def last_diagnostics(self) -> dict | None:
        with self._lock:
            return None if self._last_diag is None else dict(self._last_diag)

    def wait_connected(self, timeout: float = 30.0, need_output: bool = True, need_info: bool = True) -> None:
        """Until the node subscribes to image (and camera_info) and publishes the output topic."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = self.pub_image.get_subscription_count() > 0
            if ok and need_info:
                ok = self.pub_info.get_subscription_count() > 0
            if ok and need_output:
                ok = self.node.count_publishers(self._resolved(self.output_topic)) > 0
            if ok:
                return
            time.sleep(0.05)
        raise HarnessError(f"no node connected to {self._resolved('image')} within {timeout:.0f} s")

    def _resolved(self, topic: str) -> str:
        return topic if topic.startswith("/") else f"{self.namespace.rstrip('/')}/{topic}"

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

    def wait_for_outputs(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outputs_total >= count:
                return True
            time.sleep(0.02)
        return False

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
            self._pace(rate_hz, duration_s=warmup_s)
        with self._lock:
            self._latencies, self._outputs, self._diagnostics = [], 0, []
            self._window_start_ns = time.time_ns()
        t0 = time.perf_counter()
        sent = self._pace(rate_hz, duration_s=duration_s, frames=frames, progress=progress)
        elapsed = time.perf_counter() - t0
        window = elapsed + (1.0 / rate_hz if rate_hz else 0.0)
        time.sleep(drain_s)
        with self._lock:
            stats = StreamStats(rate_hz, sent, window, self._outputs, list(self._latencies), list(self._diagnostics))
            self._window_start_ns = None
        return stats

    def _pace(self, rate_hz: float | None, duration_s: float | None = None, frames: int | None = None,
              progress=None) -> int:
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
            if period:
                next_at += period
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -period:  # fell behind by more than a frame: do not burst to catch up
                    next_at = time.perf_counter()
        return sent
