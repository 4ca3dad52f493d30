"""Helpers for the ROS node tests: message builders and checks on top of ``depth_prior_ros.processes``.

Loopback only: importing this module isolates the test run (``isolate_ros``: loopback discovery, the run's
ROS_DOMAIN_ID from DEPTH_PRIOR_ROS_DOMAIN_ID or 150-229); node processes and clients inherit it.
Nothing here asserts timings; waits are generous deadlines that end as soon as the condition holds.
"""
from __future__ import annotations

import time

import numpy as np

from depth_prior_ros.processes import NodeProcess, choose_domain_id, isolate_ros, status_values, wait_until

DOMAIN_ID = choose_domain_id()
isolate_ros(DOMAIN_ID)
RECEIVE_TIMEOUT = 30.0


def run_node_expecting_exit(module: str, params: dict, timeout: float = 60.0):
    """Run a node that should refuse to start; returns (exit code, combined output)."""
    return NodeProcess(module, params).run_until_exit(timeout)


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


def wait_for_subscribers(publishers, timeout: float = RECEIVE_TIMEOUT) -> bool:
    return wait_until(lambda: all(p.get_subscription_count() > 0 for p in publishers), timeout)


# --------------------------------------------------------------------------- messages
def stamp(sec: int, nanosec: int = 0):
    from builtin_interfaces.msg import Time

    return Time(sec=sec, nanosec=nanosec)


def header(sec: int, frame_id: str = "cam_front_optical", nanosec: int = 0):
    from std_msgs.msg import Header

    return Header(stamp=stamp(sec, nanosec), frame_id=frame_id)


def transform_msg(T_parent_from_child: np.ndarray, sec: int, parent: str = "base_footprint",
                  child: str = "cam_front_optical"):
    """geometry_msgs/TransformStamped of a (4, 4) transform, stamped ``sec``."""
    from geometry_msgs.msg import TransformStamped

    from depth_prior_ros.geometry.extrinsics import matrix_to_quaternion

    ts = TransformStamped(header=header(sec, parent), child_frame_id=child)
    t, r = ts.transform.translation, ts.transform.rotation
    t.x, t.y, t.z = (float(v) for v in T_parent_from_child[:3, 3])
    r.x, r.y, r.z, r.w = (float(v) for v in matrix_to_quaternion(T_parent_from_child[:3, :3]))
    return ts


def latch_static_tf(client, T_ground_from_camera: np.ndarray, child: str = "cam_front_optical",
                    parent: str = "base_footprint"):
    """Latch ``parent -> child`` on /tf_static as a robot_state_publisher does (tf2's static broadcaster
    QoS: a node that starts later still gets it), so a node with the shipped ``use_tf: true`` has its
    camera pose. Returns the publisher (keep it alive while the node runs)."""
    from tf2_msgs.msg import TFMessage

    from depth_prior_ros.ros.qos import tf_broadcaster_qos

    publisher = client.node.create_publisher(TFMessage, "/tf_static", tf_broadcaster_qos(True))
    publisher.publish(TFMessage(transforms=[transform_msg(T_ground_from_camera, 0, parent, child)]))
    return publisher


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


def diagnostics_for(inbox, name_suffix: str, predicate=lambda values: True, timeout: float = RECEIVE_TIMEOUT):
    """Values dict of the newest DiagnosticStatus whose name ends with name_suffix and satisfies predicate."""
    found = {}

    def match(array) -> bool:
        for status in array.status:
            if status.name.endswith(name_suffix):
                values = status_values(status)
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
