"""Metric depth for several cameras: one depth_node per camera namespace.

    ros2 launch depth_prior_ros multi_camera.launch.py cameras:="cam_front cam_back"
    ros2 launch depth_prior_ros multi_camera.launch.py \
        cameras:="cam_front:nuscenes_cam_front cam_left:/etc/vehicle/left.yaml" backend:=onnx weights:=/m/ssd.onnx

`cameras` is a list (spaces or commas) of NAMESPACE or NAMESPACE:CONFIG entries; CONFIG is a file in the
package's config/ by name, or a path. Parameters come, later ones winning, from: the node's defaults,
config (for every camera), the camera's own CONFIG, params_file (for every camera), then the non-empty
launch arguments named in PARAMETER_ARGS and use_sim_time. An unknown config (shared or a camera's), a
missing params_file or a malformed argument stops the launch with one sentence before anything starts.
Each node loads its own network: on one GPU, mind the memory.
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

from depth_prior_ros.launch_support import IMAGE_TRANSPORTS, choice, config_path, flag, params_file, ros_arguments

PACKAGE = "depth_prior_ros"
DEFAULT_CONFIG = "default.yaml"
DEFAULT_CAMERAS = "cam_front"

# Launch arguments that override the node parameter of the same name when given (non-empty).
PARAMETER_ARGS = ("backend", "weights", "device", "dtype", "ground_frame", "image_transport")


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
    config_dir = os.path.join(get_package_share_directory(PACKAGE), "config")
    cameras = parse_cameras(_arg(context, "cameras"))
    shared_before = [config_path(_arg(context, "config") or DEFAULT_CONFIG, config_dir)]
    own = params_file(_arg(context, "params_file"), config_dir)
    shared_after = [own] if own else []
    choice("image_transport", _arg(context, "image_transport"), IMAGE_TRANSPORTS)
    overrides = {
        name: ParameterValue(_arg(context, name), value_type=str)
        for name in PARAMETER_ARGS
        if _arg(context, name)
    }
    overrides["use_sim_time"] = flag("use_sim_time", _arg(context, "use_sim_time"))
    arguments = ros_arguments(_arg(context, "log_level"))
    nodes = []
    for namespace, camera_config in cameras:
        camera_own = [config_path(camera_config, config_dir)] if camera_config else []
        parameters = shared_before + camera_own + shared_after + [overrides]
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
                arguments=arguments,
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
                              description="override: prior_only | ssd_student | jasmine | onnx | tflite | openvino"),
        DeclareLaunchArgument("weights", default_value="", description="override: weights file or folder"),
        DeclareLaunchArgument("device", default_value="", description="override: auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("dtype", default_value="", description="override: fp32 | fp16 | bf16"),
        DeclareLaunchArgument("ground_frame", default_value="",
                              description="override: tf frame whose z=0 plane is the road"),
        DeclareLaunchArgument("image_transport", default_value="",
                              description="override: raw | compressed (subscribes <image>/compressed)"),
        DeclareLaunchArgument("image", default_value="image_raw",
                              description="image topic, relative to each camera namespace"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera_info topic, relative to each camera namespace"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (replaying a bag with ros2 bag play --clock)"),
        DeclareLaunchArgument("log_level", default_value="",
                              description="debug | info | warn | error | fatal ('' = info)"),
        OpaqueFunction(function=_launch_setup),
    ])
