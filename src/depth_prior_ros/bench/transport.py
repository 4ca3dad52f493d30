"""ROS transport floor vs depth_node: same publisher, same rate, same receiver.

The floor is an echo node (below): it subscribes to ``image`` with depth_node's subscription QoS and
republishes each message unchanged on ``depth``. Everything the echo costs (DDS, serialisation, the
Python callback) depth_node pays too, so ``depth_node / echo`` isolates what the node adds.

Run the echo node alone:  python -m depth_prior_ros.bench.transport --ros-args -r __ns:=/bench
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..processes import NodeProcess, log_problems, unique_namespace
from .driver import Driver, StreamStats

ECHO_MODULE = "depth_prior_ros.bench.transport"
DEPTH_NODE_MODULE = "depth_prior_ros.ros.depth_node"


# ----------------------------------------------------------------------------- the echo node
def make_echo_node(reliability: str = "best_effort", depth: int = 1):
    """An rclpy node that republishes every ``image`` message on ``depth`` (same object, no copy)."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from ..parameters import QosSettings
    from ..ros.qos import publisher_qos, subscription_qos

    class EchoNode(Node):
        def __init__(self):
            super().__init__("echo_node")
            rel = self.declare_parameter("qos_reliability", reliability).value
            qos_depth = self.declare_parameter("qos_depth", depth).value
            self.pub = self.create_publisher(Image, "depth", publisher_qos(1))
            self.create_subscription(Image, "image", self.pub.publish, subscription_qos(QosSettings(rel, qos_depth)))

    return EchoNode()


def echo_main(args=None) -> int:
    import rclpy

    try:
        from rclpy.executors import ExternalShutdownException
    except ImportError:  # pragma: no cover - very old rclpy
        ExternalShutdownException = KeyboardInterrupt  # noqa: N806

    rclpy.init(args=args)
    node = make_echo_node()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# ----------------------------------------------------------------------------- benchmark
@dataclass
class TransportRun:
    """One target at one rate."""

    target: str            # "echo" | "depth_node" | "depth_node (+colored, points, prior)"
    rate_hz: float | None
    stats: StreamStats
    node_stages_ms: dict[str, float] = field(default_factory=dict)  # mean per stage from /diagnostics
    node_counts: dict[str, str] = field(default_factory=dict)       # last /diagnostics counters
    rss_mb: float | None = None
    problems: list[str] = field(default_factory=list)               # crash / error lines of its log


@dataclass
class TransportResults:
    width: int
    height: int
    encoding: str
    runs: list[TransportRun] = field(default_factory=list)
    dds: str = ""

    def find(self, target: str, rate_hz) -> TransportRun | None:
        for run in self.runs:
            if run.target == target and run.rate_hz == rate_hz:
                return run
        return None


def depth_node_params(reliability: str = "best_effort", qos_depth: int = 1, diagnostics_period: float = 1.0,
                      **extra) -> dict:
    """depth_node (prior_only) parameters for a bench: the shipped defaults (use_tf: the Driver latches the
    camera mount on /tf_static), with the given input QoS and diagnostics period."""
    params = {"backend": "prior_only", "qos_reliability": reliability, "qos_depth": qos_depth,
              "diagnostics_period": diagnostics_period}
    params.update(extra)
    return params


def stage_means(diagnostics: list[dict]) -> dict[str, float]:
    """Mean of each ``latency_<stage>_ms`` over the diagnostics windows of a run."""
    sums: dict[str, list[float]] = {}
    for values in diagnostics:
        for key, value in values.items():
            if key.startswith("latency_") and key.endswith("_ms") and not key.endswith("_max_ms"):
                try:
                    v = float(value)
                except ValueError:
                    continue
                if np.isfinite(v):
                    sums.setdefault(key[len("latency_"):-len("_ms")], []).append(v)
    return {stage: float(np.mean(v)) for stage, v in sums.items()}


def run_target(target: str, camera_K: np.ndarray, width: int, height: int, rate_hz: float | None,
               duration_s: float, log_dir: Path, extra_outputs: bool = False, warmup_s: float = 1.5,
               connect_timeout: float = 30.0) -> TransportRun:
    """Start the target node, stream frames at ``rate_hz`` from a Driver, stop it, collect everything."""
    namespace = unique_namespace("bench")
    rate = f"{rate_hz:g}hz" if rate_hz else "max"
    if target == "echo":
        proc = NodeProcess(ECHO_MODULE, {}, log_dir / f"echo_node_{rate}.log", namespace=namespace)
        diag_name = None
    else:
        suffix = "_extras" if extra_outputs else ""
        proc = NodeProcess(DEPTH_NODE_MODULE, depth_node_params(), log_dir / f"depth_node_{rate}{suffix}.log",
                           namespace=namespace)
        diag_name = f"{namespace}/depth_node:"
    label = target + (" (+colored, points, prior subscribed)" if extra_outputs else "")
    with proc, Driver(width, height, camera_K, namespace=namespace, diagnostics_name=diag_name) as driver:
        if extra_outputs:
            _subscribe_extras(driver)
        inputs = [driver.pub_image] + ([driver.pub_info] if target != "echo" else [])
        driver.wait_connected(inputs, ["depth"], connect_timeout)
        stats = driver.stream(rate_hz, duration_s=duration_s, warmup_s=warmup_s)
        rss = proc.rss_mb()
        last = driver.last_diagnostics() or {}
    problems = log_problems(proc.output())
    counts = {k: v for k, v in last.items() if k.startswith("frames_") or k.startswith("dropped_")}
    return TransportRun(label, rate_hz, stats, stage_means(stats.diagnostics), counts, rss, problems)


def _subscribe_extras(driver: Driver) -> None:
    """Listen to the optional outputs too (what RViz does), so the node has to build them."""
    from sensor_msgs.msg import Image, PointCloud2

    for msg_type, topic in ((Image, "depth/colored"), (PointCloud2, "depth/points"), (Image, "prior/depth")):
        driver.subscribe(msg_type, topic, lambda _msg: None, depth=1)


def run_transport(width: int = 1600, height: int = 900, rates=(10.0, 30.0), duration_s: float = 8.0,
                  quick: bool = False, extra_outputs: bool = True, log_dir: Path | None = None,
                  progress=None) -> TransportResults:
    """Echo floor vs depth_node (prior_only) at each rate; plus depth_node with RViz outputs at the last."""
    import os

    from .core import presets

    preset = next((p for p in presets().values() if (p.camera.width, p.camera.height) == (width, height)), None)
    camera = preset.camera if preset else presets()["1600x900"].camera.resized(width, height)
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="depth_prior_bench_"))
    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")
    dds = (f"Fast DDS profile {Path(profile).name}" if profile else "Fast DDS defaults (shared memory + UDP)") + \
        f", ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '?')}"
    results = TransportResults(width, height, "rgb8", dds=dds)
    plan = []
    for rate in rates:
        plan += [("echo", rate, False), ("depth_node", rate, False)]
    if extra_outputs and not quick:
        plan.append(("depth_node", rates[-1], True))
    bar = progress(total=len(plan), desc="transport runs", unit="run") if progress else None
    for target, rate, extras in plan:
        results.runs.append(run_target(target, camera.K, camera.width, camera.height, rate, duration_s, log_dir,
                                       extra_outputs=extras, warmup_s=1.0 if quick else 1.5))
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return results


if __name__ == "__main__":
    sys.exit(echo_main())
