"""QoS profiles of the nodes (rclpy imported inside the functions).

Subscriptions default to the sensor-data profile (best effort, keep last 1, volatile) so a slow node
never back-pressures a camera driver; ``qos_reliability`` / ``qos_depth`` override it. Publishers are
reliable, which every subscriber can match: a best-effort subscriber (sensor-data tools) and a
reliable one (RViz's default) both connect, and keep-last history means a slow reader never blocks
the node.
"""
from __future__ import annotations

from ..parameters import QosSettings


def subscription_qos(settings: QosSettings):
    """Sensor-data QoS with the reliability and history depth from the parameters."""
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    reliability = (QoSReliabilityPolicy.RELIABLE if settings.reliability == "reliable"
                   else QoSReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=max(int(settings.depth), 1),
                      reliability=reliability, durability=QoSDurabilityPolicy.VOLATILE)


def publisher_qos(depth: int = 1):
    """Reliable, keep-last, volatile: compatible with best-effort and reliable subscribers."""
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=max(int(depth), 1),
                      reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)


def diagnostics_qos():
    """/diagnostics: reliable, a short history so an aggregator that lags a little misses nothing."""
    return publisher_qos(depth=10)
