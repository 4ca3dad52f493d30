"""QoS profiles of the nodes (rclpy imported inside the functions).

Subscriptions default to the sensor-data profile (best effort, keep last 1, volatile) so a slow node
never back-pressures a camera driver; ``qos_reliability`` / ``qos_depth`` override it. Publishers are
reliable, which every subscriber can match: a best-effort subscriber (sensor-data tools) and a
reliable one (RViz's default) both connect, and keep-last history means a slow reader never blocks
the node.
"""
from __future__ import annotations

import copy

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


# tf: the profiles tf2_ros uses (tf2_ros/qos.py of Humble, Jazzy and Kilted), so this node's /tf and
# /tf_static endpoints match any tf2 broadcaster or listener of a robot.
def tf_listener_qos(static: bool):
    """tf2_ros DynamicListenerQoS / StaticListenerQoS: reliable, keep last 100, volatile / transient local
    (a late joiner still gets every static transform the broadcasters latched)."""
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=100, reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.TRANSIENT_LOCAL if static else QoSDurabilityPolicy.VOLATILE)


def tf_broadcaster_qos(static: bool):
    """tf2_ros DynamicBroadcasterQoS (keep last 100, volatile) / StaticBroadcasterQoS (keep last 1, transient
    local: a static broadcaster latches one TFMessage with all its transforms)."""
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1 if static else 100,
                      reliability=QoSReliabilityPolicy.RELIABLE,
                      durability=QoSDurabilityPolicy.TRANSIENT_LOCAL if static else QoSDurabilityPolicy.VOLATILE)


# qos_overrides: rclpy's QoSOverridingOptions declares read-only parameters
# qos_overrides.<resolved topic>.subscription.{history,depth,reliability} that a params file or -p sets at
# start, e.g. qos_overrides./camera/image.subscription.reliability: reliable. Checked in ros2/rclpy's humble
# (3.3.x) and jazzy (7.1.x) branches and the Kilted wheel here (9.1.2): QoSOverridingOptions.
# with_default_policies(), Node.create_subscription(..., qos_overriding_options=...), and a re-declared
# override parameter (a lifecycle node subscribing again on re-activation) taken as already declared.
def input_qos_overrides():
    from rclpy.qos_overriding_options import QoSOverridingOptions

    return QoSOverridingOptions.with_default_policies()


class InputQosOverrides:
    """Node mixin: each subscription on a relative topic (the camera inputs: image, camera_info,
    road_mask, ...) accepts qos_overrides; absolute ones (/tf, /tf_static) keep tf2's QoS."""

    def create_subscription(self, msg_type, topic, callback, qos_profile, **kwargs):
        if not str(topic).startswith("/"):
            kwargs.setdefault("qos_overriding_options", input_qos_overrides())
            # rclpy applies the overrides to the profile object itself: one copy per topic, so an override
            # of camera_info does not leak into image, which was given the same profile.
            qos_profile = copy.copy(qos_profile)
        return super().create_subscription(msg_type, topic, callback, qos_profile, **kwargs)
