"""Metric depth for one camera: one depth_node in the camera's namespace, RViz optional.

    ros2 launch depth_prior_ros depth_prior.launch.py                        # /camera/image_raw -> /camera/depth
    ros2 launch depth_prior_ros depth_prior.launch.py camera:=cam_front config:=nuscenes_cam_front
    ros2 launch depth_prior_ros depth_prior.launch.py camera:=front image:=image_rect image_transport:=compressed \
        params_file:=/etc/vehicle/front_depth.yaml backend:=onnx weights:=/models/ssd_student.onnx rviz:=true
    ros2 launch depth_prior_ros depth_prior.launch.py lifecycle:=true autostart:=false   # for a lifecycle manager

Parameters come, later ones winning, from: the node's defaults, config/<config>.yaml in the package,
params_file (your own file), then the non-empty launch arguments named in PARAMETER_ARGS and
use_sim_time. An unknown config, a missing params_file or a malformed argument stops the launch with
one sentence (depth_prior_ros.launch_support) before anything starts. RViz starts only where rviz2 is
installed (else a warning; the node runs). lifecycle:=true starts depth_lifecycle_node, configured and
activated by this launch when autostart is true (nav2-style bringup), left unconfigured otherwise.
"""
from __future__ import annotations

import os
import tempfile

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

from depth_prior_ros.launch_support import (IMAGE_TRANSPORTS, LIFECYCLE_EXECUTABLE, LaunchArgumentError, choice,
                                            config_path, flag, full_namespace, params_file, ros_arguments,
                                            rviz_config_text)

PACKAGE = "depth_prior_ros"
DEFAULT_CONFIG = "default.yaml"
RVIZ_CONFIG = "depth_prior.rviz"
# The RViz file is written for this namespace and fixed frame; the launch rewrites both for yours.
RVIZ_NAMESPACE = "/camera/"
RVIZ_FIXED_FRAME = "base_footprint"

# Launch arguments that override the node parameter of the same name when given (non-empty).
PARAMETER_ARGS = ("backend", "weights", "device", "dtype", "ground_frame", "image_transport")


def _arg(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context).strip()


def _rviz(context, namespace: str) -> list:
    """RViz on this camera's topics (the pushed namespace included), or a warning without rviz2."""
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return [LogInfo(msg="WARNING: rviz:=true but rviz2 is not installed (ros-$ROS_DISTRO-rviz2); "
                            "depth_node runs without RViz")]
    full = full_namespace(context.launch_configurations.get("ros_namespace"), namespace)
    template = os.path.join(get_package_share_directory(PACKAGE), "config", RVIZ_CONFIG)
    with open(template, encoding="utf-8") as handle:
        text = rviz_config_text(handle.read(), full, _arg(context, "image"), _arg(context, "fixed_frame"),
                                RVIZ_NAMESPACE, RVIZ_FIXED_FRAME)
    handle = tempfile.NamedTemporaryFile("w", prefix="depth_prior_", suffix=".rviz", delete=False)
    with handle:
        handle.write(text)
    # Absolute topics in the file: RViz's own namespace does not matter.
    return [Node(package="rviz2", executable="rviz2", name="depth_prior_rviz", arguments=["-d", handle.name],
                 output="log")]


def _lifecycle_steps(node) -> list:
    """configure now, activate once inactive: what a nav2 lifecycle manager with autostart does."""
    def change(transition):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition))

    return [RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, goal_state="inactive",
                                                   entities=[change(Transition.TRANSITION_ACTIVATE)])),
            change(Transition.TRANSITION_CONFIGURE)]


def _launch_setup(context, *args, **kwargs):
    config_dir = os.path.join(get_package_share_directory(PACKAGE), "config")
    namespace = _arg(context, "camera").strip("/")
    parameters = [config_path(_arg(context, "config") or DEFAULT_CONFIG, config_dir)]
    own = params_file(_arg(context, "params_file"), config_dir)
    if own:
        parameters.append(own)
    choice("image_transport", _arg(context, "image_transport"), IMAGE_TRANSPORTS)
    overrides = {name: ParameterValue(_arg(context, name), value_type=str) for name in PARAMETER_ARGS
                 if _arg(context, name)}
    overrides["use_sim_time"] = flag("use_sim_time", _arg(context, "use_sim_time"))
    parameters.append(overrides)
    lifecycle, autostart = flag("lifecycle", _arg(context, "lifecycle")), flag("autostart", _arg(context, "autostart"))
    if not lifecycle and not autostart:
        raise LaunchArgumentError("autostart:=false needs lifecycle:=true (the plain depth_node is active from the "
                                  "start)")
    remappings = [("image", _arg(context, "image")), ("camera_info", _arg(context, "camera_info")),
                  ("road_mask", _arg(context, "road_mask"))]
    # The compressed topic follows image's remapping (as image_transport's does): image:=image_raw
    # subscribes image_raw/compressed.
    arguments = ros_arguments(_arg(context, "log_level"))
    if lifecycle:
        node = LifecycleNode(package=PACKAGE, executable=LIFECYCLE_EXECUTABLE, name="depth_node", namespace=namespace,
                             parameters=parameters, remappings=remappings, arguments=arguments, output="screen",
                             emulate_tty=True)
        actions = [node] + (_lifecycle_steps(node) if autostart else [])
    else:
        actions = [Node(package=PACKAGE, executable="depth_node", name="depth_node", namespace=namespace,
                        parameters=parameters, remappings=remappings, arguments=arguments, output="screen",
                        emulate_tty=True)]
    if flag("rviz", _arg(context, "rviz")):
        actions += _rviz(context, namespace)
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="camera",
                              description="namespace of the camera: topics are read and written under it"),
        DeclareLaunchArgument("config", default_value=DEFAULT_CONFIG,
                              description="parameter preset in the package's config/ (default, "
                                          "nuscenes_cam_front, kitti, robotcar) or a path"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="your own parameter file, applied after config"),
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
                              description="image topic, relative to the namespace (or absolute)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera_info topic, relative to the namespace"),
        DeclareLaunchArgument("road_mask", default_value="road_mask",
                              description="road mask topic (used when use_road_mask is true)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (replaying a bag with ros2 bag play --clock)"),
        DeclareLaunchArgument("log_level", default_value="",
                              description="debug | info | warn | error | fatal ('' = info)"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="start the lifecycle variant depth_lifecycle_node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="with lifecycle:=true, configure and activate it at launch"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="start RViz with depth_prior.rviz (when rviz2 is installed)"),
        DeclareLaunchArgument("fixed_frame", default_value=RVIZ_FIXED_FRAME,
                              description="RViz fixed frame; the camera's own frame when no tf is published"),
        OpaqueFunction(function=_launch_setup),
    ])
