"""Camera model and camera pose above the road (no ROS imports)."""
from .camera import CameraModelError, PinholeCamera
from .extrinsics import (GroundPlane, PoseError, PoseSummary, check_ground_pose, fit_ground_plane,
                         invert_transform, pose_from_ground_plane, pose_from_static, pose_from_transform,
                         summarize_pose)

__all__ = ["CameraModelError", "PinholeCamera", "GroundPlane", "PoseError", "PoseSummary",
           "check_ground_pose", "fit_ground_plane", "invert_transform", "pose_from_ground_plane",
           "pose_from_static", "pose_from_transform", "summarize_pose"]
