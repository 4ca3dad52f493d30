"""Metric depth from one camera: embodied ground-plane prior + relative depth networks, for ROS 2."""

__version__ = "0.1.0"
