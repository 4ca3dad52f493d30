"""Metric depth for one camera: one depth_node in the camera's namespace, RViz optional.

    ros2 launch depth_prior_ros depth_prior.launch.py                        # /camera/image_raw -> /camera/depth
    ros2 launch depth_prior_ros depth_prior.launch.py camera:=cam_front config:=nuscenes_cam_front
    ros2 launch depth_prior_ros depth_prior.launch.py camera:=front image:=image_rect \
        params_file:=/etc/vehicle/front_depth.yaml backend:=onnx weights:=/models/ssd_student.onnx rviz:=true

Parameters come, later ones winning, from: the node's defaults, config/<config>.yaml in the package,
params_file (your own file), then the non-empty launch arguments named in PARAMETER_ARGS.
"""
from __future__ import annotations

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "depth_prior_ros"
DEFAULT_CONFIG = "default.yaml"
RVIZ_CONFIG = "depth_prior.rviz"
# The RViz file is written for this namespace and fixed frame; the launch rewrites both for yours.
RVIZ_NAMESPACE = "/camera/"
RVIZ_FIXED_FRAME = "base_footprint"

# Launch arguments that override the node parameter of the same name when given (non-empty).
PARAMETER_ARGS = ("backend", "weights", "device", "dtype", "ground_frame")


def config_path(name: str) -> str:
    """A file in the package's config/ by name ('kitti', 'kitti.yaml') or any path to a YAML file."""
    if os.sep in name or os.path.isabs(name):
        return name
    if not name.endswith(".yaml"):
        name += ".yaml"
    return os.path.join(get_package_share_directory(PACKAGE), "config", name)


def _arg(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context).strip()


def _rviz_config_for(namespace: str, image_topic: str, fixed_frame: str) -> str:
    """Copy of config/depth_prior.rviz pointed at this camera's topics and fixed frame (a temp file)."""
    template = os.path.join(get_package_share_directory(PACKAGE), "config", RVIZ_CONFIG)
    with open(template, encoding="utf-8") as handle:
        text = handle.read()
    prefix = "/" + namespace.strip("/") + "/" if namespace.strip("/") else "/"
    if not image_topic.startswith("/"):
        text = text.replace(RVIZ_NAMESPACE + "image_raw", RVIZ_NAMESPACE + image_topic)
    text = text.replace(RVIZ_NAMESPACE, prefix)
    text = text.replace("Fixed Frame: " + RVIZ_FIXED_FRAME, "Fixed Frame: " + fixed_frame)
    handle = tempfile.NamedTemporaryFile("w", prefix="depth_prior_", suffix=".rviz", delete=False)
    with handle:
        handle.write(text)
    return handle.name


def _launch_setup(context, *args, **kwargs):
    namespace = _arg(context, "camera").strip("/")
    parameters = [config_path(_arg(context, "config") or DEFAULT_CONFIG)]
    if _arg(context, "params_file"):
        parameters.append(_arg(context, "params_file"))
    overrides = {
        name: ParameterValue(_arg(context, name), value_type=str)
        for name in PARAMETER_ARGS
        if _arg(context, name)
    }
    if overrides:
        parameters.append(overrides)

    actions = [
        Node(
            package=PACKAGE,
            executable="depth_node",
            name="depth_node",
            namespace=namespace,
            parameters=parameters,
            remappings=[
                ("image", _arg(context, "image")),
                ("camera_info", _arg(context, "camera_info")),
                ("road_mask", _arg(context, "road_mask")),
            ],
            output="screen",
            emulate_tty=True,
        )
    ]
    if _arg(context, "rviz").lower() in ("true", "1", "yes"):
        rviz_file = _rviz_config_for(namespace, _arg(context, "image"), _arg(context, "fixed_frame"))
        actions.append(
            Node(package="rviz2", executable="rviz2", name="depth_prior_rviz", arguments=["-d", rviz_file],
                 output="log")
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="camera",
                              description="namespace of the camera: topics are read and written under it"),
        DeclareLaunchArgument("config", default_value=DEFAULT_CONFIG,
                              description="parameter file in the package's config/ (default, "
                                          "nuscenes_cam_front, kitti, robotcar) or a path"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="your own parameter file, applied after config"),
        DeclareLaunchArgument("backend", default_value="",
                              description="override: prior_only | ssd_student | jasmine | onnx"),
        DeclareLaunchArgument("weights", default_value="", description="override: weights file or folder"),
        DeclareLaunchArgument("device", default_value="", description="override: auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("dtype", default_value="", description="override: fp32 | fp16 | bf16"),
        DeclareLaunchArgument("ground_frame", default_value="",
                              description="override: tf frame whose z=0 plane is the road"),
        DeclareLaunchArgument("image", default_value="image_raw",
                              description="image topic, relative to the namespace (rgb8 | bgr8 | mono8)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera_info topic, relative to the namespace"),
        DeclareLaunchArgument("road_mask", default_value="road_mask",
                              description="road mask topic (used when use_road_mask is true)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with depth_prior.rviz"),
        DeclareLaunchArgument("fixed_frame", default_value=RVIZ_FIXED_FRAME,
                              description="RViz fixed frame; the camera's own frame when no tf is published"),
        OpaqueFunction(function=_launch_setup),
    ])
