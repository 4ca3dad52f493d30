"""The launch files' decisions as plain functions (launch/*.launch.py call them; no launch import, so
they are tested where launch_ros has no wheel): presets, argument checks, namespaces, the RViz rewrite.

Every refusal is a :class:`LaunchArgumentError` with one sentence; raised inside a launch
OpaqueFunction it stops ``ros2 launch`` before any node starts.
"""
from __future__ import annotations

import os
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
IMAGE_TRANSPORTS = ("raw", "compressed")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
LIFECYCLE_EXECUTABLE = "depth_lifecycle_node"  # the lifecycle variant of depth_node (issue 10 contract)


class LaunchArgumentError(ValueError):
    """A launch argument the launch cannot go on with; the message is one sentence."""


def flag(name: str, text: str) -> bool:
    """A boolean launch argument (true/false, 1/0, yes/no, on/off)."""
    value = text.strip().lower()
    if value in TRUE or value in FALSE:
        return value in TRUE
    raise LaunchArgumentError(f"launch argument {name}:={text!r} must be true or false")


def choice(name: str, text: str, allowed: tuple[str, ...], empty_ok: bool = True) -> str:
    """``text`` when it is one of ``allowed`` (or empty, meaning "not given", with ``empty_ok``)."""
    value = text.strip()
    if (empty_ok and not value) or value in allowed:
        return value
    raise LaunchArgumentError(f"launch argument {name}:={value!r} must be one of {', '.join(allowed)}")


def presets(config_dir: str | os.PathLike) -> list[str]:
    """Names of the parameter presets in the package's config/ (default, kitti, ...)."""
    return sorted(path.stem for path in Path(config_dir).glob("*.yaml"))


def config_path(name: str, config_dir: str | os.PathLike) -> str:
    """A preset by name ('kitti', 'kitti.yaml') or a path to a YAML file, which must exist."""
    name = name.strip()
    if os.sep in name or os.path.isabs(name):
        if not os.path.isfile(name):
            raise LaunchArgumentError(f"config:={name} does not exist; give a YAML file or one of the presets "
                                      f"{', '.join(presets(config_dir))}")
        return name
    stem = name[:-5] if name.endswith(".yaml") else name
    path = os.path.join(os.fspath(config_dir), stem + ".yaml")
    if not os.path.isfile(path):
        raise LaunchArgumentError(f"config:={name} is not a preset; the presets are {', '.join(presets(config_dir))} "
                                  "(or give the path of a YAML file)")
    return path


def params_file(text: str, config_dir: str | os.PathLike) -> str | None:
    """The user's parameter file (None when not given), which must exist."""
    path = os.path.expanduser(text.strip())
    if not path:
        return None
    if not os.path.isfile(path):
        raise LaunchArgumentError(f"params_file:={path} does not exist; give your YAML file, or config:= one of "
                                  f"the presets {', '.join(presets(config_dir))}")
    return path


def full_namespace(pushed: str | None, namespace: str) -> str:
    """The namespace a node ends up in: ``namespace`` under a PushRosNamespace'd one (launch_ros's rule:
    an absolute namespace stays as it is). '/a/b' form, '/' for none."""
    namespace = namespace.strip()
    if not namespace.startswith("/") and pushed and pushed.strip("/"):
        namespace = pushed.strip("/") + "/" + namespace
    parts = [part for part in namespace.split("/") if part]
    return "/" + "/".join(parts)


def ros_arguments(log_level: str) -> list[str]:
    """Node command-line arguments for a log level ('' = the default); --ros-args works on every distro."""
    level = choice("log_level", log_level, LOG_LEVELS)
    return ["--ros-args", "--log-level", level] if level else []


def rviz_config_text(template: str, namespace: str, image_topic: str, fixed_frame: str,
                     template_namespace: str = "/camera/", template_frame: str = "base_footprint") -> str:
    """The RViz config (written for ``template_namespace`` and ``template_frame``) for a node in
    ``namespace`` (full, pushed namespaces included) reading ``image_topic`` (relative or absolute)."""
    prefix = full_namespace(None, namespace).rstrip("/") + "/"
    image_topic = image_topic.strip()
    image = image_topic if image_topic.startswith("/") else prefix + image_topic
    text = template.replace(template_namespace + "image_raw", "\0image\0")
    text = text.replace(template_namespace, prefix).replace("\0image\0", image)
    return text.replace("Fixed Frame: " + template_frame, "Fixed Frame: " + fixed_frame)
