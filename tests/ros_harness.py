"""Helpers for the ROS node tests: node processes, a test-side rclpy client, message builders.

Loopback only: every process gets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a ROS_DOMAIN_ID from
180-229 chosen per test process, so parallel test runs do not see each other.
Nothing here asserts timings; waits are generous deadlines that end as soon as the condition holds.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOMAIN_ID = 180 + os.getpid() % 50
RECEIVE_TIMEOUT = 30.0


def ros_env(domain_id: int = DOMAIN_ID) -> dict:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PYTHONUNBUFFERED"] = "1"
    env["RCUTILS_COLORIZED_OUTPUT"] = "0"
    return env


def ros_arg_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value in ("", "{}") or value.startswith("{") else value
    return repr(value)


class NodeProcess:
    """A node run as its own process: ``python -m <module> --ros-args -r __ns:=... -p k:=v``."""

    def __init__(self, module: str, namespace: str, params: dict, log_path: Path, domain_id: int = DOMAIN_ID):
        self.log_path = Path(log_path)
        args = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={namespace}"]
        for key, value in params.items():
            args += ["-p", f"{key}:={ros_arg_value(value)}"]
        self.args = args
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, env=ros_env(domain_id), stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=REPO)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT (Ctrl-C) and wait; kill only if it hangs."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def run_node_expecting_exit(module: str, params: dict, timeout: float = 60.0, domain_id: int = DOMAIN_ID):
    """Run a node that should refuse to start; returns (exit code, combined output)."""
    args = [sys.executable, "-m", module, "--ros-args"]
    for key, value in params.items():
        args += ["-p", f"{key}:={ros_arg_value(value)}"]
    done = subprocess.run(args, env=ros_env(domain_id), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return done.returncode, done.stdout + done.stderr


class Inbox:
    """Messages received on one topic, with waiting on a condition."""

    def __init__(self):
        self.messages: list = []
        self._cond = threading.Condition()

    def __call__(self, msg) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = RECEIVE_TIMEOUT):
        """First message (newest first) matching predicate, waiting up to timeout; None if none."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in reversed(self.messages):
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))


class RosClient:
    """The test's own rclpy context, node and executor thread (no signal handlers: pytest keeps Ctrl-C)."""

    def __init__(self, name: str = "test_client", domain_id: int = DOMAIN_ID):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # read by the middleware at init
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = Context()
        kwargs = {"context": self.context, "domain_id": domain_id}
        try:
            from rclpy.signals import SignalHandlerOptions
            kwargs["signal_handler_options"] = SignalHandlerOptions.NO
        except ImportError:
            pass
        rclpy.init(**kwargs)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - context shut down at close()
            pass

    def qos(self, depth: int = 10):
        from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

        return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=depth, reliability=QoSReliabilityPolicy.RELIABLE)

    def publisher(self, msg_type, topic: str, depth: int = 10):
        return self.node.create_publisher(msg_type, topic, self.qos(depth))

    def subscribe(self, msg_type, topic: str, depth: int = 10) -> Inbox:
        inbox = Inbox()
        self.node.create_subscription(msg_type, topic, inbox, self.qos(depth))
        return inbox

    def add_node(self, node) -> None:
        self.executor.add_node(node)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self._thread.join(5)


def publish_reliably(publisher, msg, timeout: float = RECEIVE_TIMEOUT) -> None:
    """Publish, retrying while the middleware refuses (a reliable writer whose history is full of
    unacknowledged large samples fails after its blocking time instead of waiting longer)."""
    from rclpy._rclpy_pybind11 import RCLError

    deadline = time.monotonic() + timeout
    while True:
        try:
            publisher.publish(msg)
            return
        except RCLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_until(condition, timeout: float = RECEIVE_TIMEOUT, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def wait_for_subscribers(publishers, timeout: float = RECEIVE_TIMEOUT) -> bool:
    return wait_until(lambda: all(p.get_subscription_count() > 0 for p in publishers), timeout)


# --------------------------------------------------------------------------- messages
def stamp(sec: int, nanosec: int = 0):
    from builtin_interfaces.msg import Time

    return Time(sec=sec, nanosec=nanosec)


def header(sec: int, frame_id: str = "cam_front_optical", nanosec: int = 0):
    from std_msgs.msg import Header

    return Header(stamp=stamp(sec, nanosec), frame_id=frame_id)


def same_stamp(a, b) -> bool:
    return a.sec == b.sec and a.nanosec == b.nanosec


def synthetic_gray(width: int = 640, height: int = 360) -> np.ndarray:
    """A grey gradient with some texture, uint8 RGB (H, W, 3)."""
    u = np.linspace(0, 1, width)[None, :]
    v = np.linspace(0, 1, height)[:, None]
    grey = (100 + 60 * v + 20 * np.sin(40 * u) * v).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def make_camera(width: int = 640, height: int = 360):
    from depth_prior_ros.geometry import PinholeCamera

    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    return PinholeCamera(K, width, height)


def diagnostics_for(inbox: Inbox, name_suffix: str, predicate=lambda values: True, timeout: float = RECEIVE_TIMEOUT):
    """Values dict of the newest DiagnosticStatus whose name ends with name_suffix and satisfies predicate."""
    from depth_prior_ros.ros.diagnostics import status_values

    found = {}

    def match(array) -> bool:
        for status in array.status:
            if status.name.endswith(name_suffix):
                values = status_values(status)
                values["__level__"] = status.level[0] if isinstance(status.level, bytes) else int(status.level)
                values["__message__"] = status.message
                if predicate(values):
                    found["values"] = values
                    return True
        return False

    return found["values"] if inbox.wait_for(match, timeout) is not None else None


def counts_add_up(values: dict) -> bool:
    """received == processed + dropped + pending, and dropped == sum of the per-reason counters."""
    received, processed = int(values["frames_received"]), int(values["frames_processed"])
    dropped, pending = int(values["frames_dropped"]), int(values["frames_pending"])
    by_reason = sum(int(v) for k, v in values.items() if k.startswith("dropped_"))
    return received == processed + dropped + pending and dropped == by_reason
