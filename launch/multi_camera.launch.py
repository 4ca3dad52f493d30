"""Metric depth for several cameras: one depth_node per camera namespace.

    ros2 launch depth_prior_ros multi_camera.launch.py cameras:="cam_front cam_back"
    ros2 launch depth_prior_ros multi_camera.launch.py \
        cameras:="cam_front:nuscenes_cam_front cam_left:/etc/vehicle/left.yaml" backend:=onnx weights:=/m/ssd.onnx

`cameras` is a list (spaces or commas) of NAMESPACE or NAMESPACE:CONFIG entries; CONFIG is a file in the
package's config/ by name, or a path. Parameters come, later ones winning, from: the node's defaults,
config (for every camera), the camera's own CONFIG, params_file (for every camera), then the non-empty
launch arguments named in PARAMETER_ARGS. Each node loads its own network: on one GPU, mind the memory.
"""
from __future__ import annotations

import os
import re

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "depth_prior_ros"
DEFAULT_CONFIG = "default.yaml"
DEFAULT_CAMERAS = "cam_front"

# Launch arguments that override the node parameter of the same name when given (non-empty).
PARAMETER_ARGS = ("backend", "weights", "device", "dtype", "ground_frame")


def config_path(name: str) -> str:
    """A file in the package's config/ by name ('kitti', 'kitti.yaml') or any path to a YAML file."""
    if os.sep in name or os.path.isabs(name):
        return name
    if not name.endswith(".yaml"):
        name += ".yaml"
    return os.path.join(get_package_share_directory(PACKAGE), "config", name)


def parse_cameras(text: str) -> list[tuple[str, str]]:
    """'cam_front:kitti, cam_back' -> [('cam_front', 'kitti'), ('cam_back', '')]; duplicates rejected."""
    entries = []
    for token in re.split(r"[,\s]+", text.strip()):
        if not token:
            continue
        namespace, _, config = token.partition(":")
        namespace = namespace.strip("/")
        if not namespace:
            raise ValueError(f"cameras entry '{token}' has no namespace")
        entries.append((namespace, config))
    names = [namespace for namespace, _ in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"cameras lists a namespace twice: {text!r}")
    if not entries:
        raise ValueError("cameras is empty: give at least one camera namespace")
    return entries


def _arg(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context).strip()


def _launch_setup(context, *args, **kwargs):
    shared_before = [config_path(_arg(context, "config") or DEFAULT_CONFIG)]
    shared_after = [_arg(context, "params_file")] if _arg(context, "params_file") else []
    overrides = {
        name: ParameterValue(_arg(context, name), value_type=str)
        for name in PARAMETER_ARGS
        if _arg(context, name)
    }
    nodes = []
    for namespace, camera_config in parse_cameras(_arg(context, "cameras")):
        own = [config_path(camera_config)] if camera_config else []
        parameters = shared_before + own + shared_after + ([overrides] if overrides else [])
        nodes.append(
            Node(
                package=PACKAGE,
                executable="depth_node",
                name="depth_node",
                namespace=namespace,
                parameters=parameters,
                remappings=[
                    ("image", _arg(context, "image")),
                    ("camera_info", _arg(context, "camera_info")),
                ],
                output="screen",
                emulate_tty=True,
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("cameras", default_value=DEFAULT_CAMERAS,
                              description="camera namespaces, each optionally NAMESPACE:CONFIG"),
        DeclareLaunchArgument("config", default_value=DEFAULT_CONFIG,
                              description="parameter file for every camera (config/ name or path)"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="your own parameter file for every camera, applied last"),
        DeclareLaunchArgument("backend", default_value="",
                              description="override: prior_only | ssd_student | jasmine | onnx"),
        DeclareLaunchArgument("weights", default_value="", description="override: weights file or folder"),
        DeclareLaunchArgument("device", default_value="", description="override: auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("dtype", default_value="", description="override: fp32 | fp16 | bf16"),
        DeclareLaunchArgument("ground_frame", default_value="",
                              description="override: tf frame whose z=0 plane is the road"),
        DeclareLaunchArgument("image", default_value="image_raw",
                              description="image topic, relative to each camera namespace"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera_info topic, relative to each camera namespace"),
        OpaqueFunction(function=_launch_setup),
    ])
