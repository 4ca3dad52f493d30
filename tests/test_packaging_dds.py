"""rclpy still talks between processes under the loopback-only Fast DDS profile that scripts/test.sh,
the demo and the benchmarks set: two real processes, a publisher and a subscriber, on one topic."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from helpers_packaging import REPO

from depth_prior_ros.processes import child_environment, choose_domain_id, isolated_ros

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent("""
    import sys, time
    import rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node("dds_smoke_publisher")
    publisher = node.create_publisher(String, "dds_smoke", 10)
    deadline = time.monotonic() + float(sys.argv[1])
    count = 0
    while time.monotonic() < deadline:
        count += 1
        publisher.publish(String(data=f"ping {count}"))
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
""")

SUBSCRIBER = textwrap.dedent("""
    import sys, time
    import rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node("dds_smoke_subscriber")
    received = []
    node.create_subscription(String, "dds_smoke", lambda msg: received.append(msg.data), 10)
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline and len(received) < 5:
        rclpy.spin_once(node, timeout_sec=0.05)
    print("received", len(received), received[:1])
    node.destroy_node()
    rclpy.shutdown()
    sys.exit(0 if len(received) >= 5 else 1)
""")


def _loopback_env() -> dict[str, str]:
    """Loopback discovery, the run's domain and the project's loopback-only Fast DDS profile."""
    with isolated_ros(choose_domain_id(), str(REPO / "config" / "fastdds_localhost.xml")):
        return child_environment()


def test_two_processes_exchange_messages_over_the_loopback_profile():
    pytest.importorskip("rclpy", reason="the ROS 2 wheels (requirements.txt) are not installed")
    env = _loopback_env()
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, "30"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        subscriber = subprocess.run([sys.executable, "-c", SUBSCRIBER, "25"], env=env,
                                    capture_output=True, text=True, timeout=60)
    finally:
        publisher.terminate()
        try:
            publisher_output = publisher.communicate(timeout=10)[0]
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher_output = publisher.communicate()[0]
    assert subscriber.returncode == 0, (
        f"no messages across processes with the loopback profile\nsubscriber: {subscriber.stdout}"
        f"{subscriber.stderr}\npublisher: {publisher_output}")
    assert "ping" in subscriber.stdout
