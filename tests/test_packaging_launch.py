"""Launch files, parameter files and the RViz config agree with the nodes.

`launch`/`launch_ros` do not install from PyPI, so the launch files are read with `ast`: every executable
they start is a console script of this package, every parameter they set is declared by the node, every
config file they name exists. Parameter files must use declared names with the types the node declares
(ROS 2 refuses 1 for a double parameter). Where launch_ros is installed, the launch descriptions are also
built for real."""
from __future__ import annotations

import ast
import importlib.util
import re

import pytest
import yaml

from helpers_packaging import (CONFIG_DIR, LAUNCH_DIR, PACKAGE, call_name, console_scripts,
                               declared_node_defaults, keyword, load_params_file, module_constants,
                               resolve_str, same_ros_type)

LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))
PARAM_FILES = sorted(CONFIG_DIR.glob("*.yaml"))
NODE_DEFAULTS = declared_node_defaults()
NO_PARAMS_MODULE = "depth_prior_ros/parameters.py (the parameter spec) is not written yet"


def _parse(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _nodes(tree):
    """Every Node(...) call: (package, executable, the parameters= expression)."""
    constants = module_constants(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) == "Node":
            found.append((resolve_str(keyword(node, "package"), constants),
                          resolve_str(keyword(node, "executable"), constants),
                          keyword(node, "parameters")))
    return found


def _parameter_names(tree, parameters_expr) -> set[str]:
    """Names a launch file sets: keys of dict literals in parameters=[...] plus its PARAMETER_ARGS."""
    names = set(module_constants(tree).get("PARAMETER_ARGS", ()))
    if parameters_expr is not None:
        for node in ast.walk(parameters_expr):
            if isinstance(node, ast.Dict):
                names.update(key.value for key in node.keys if isinstance(key, ast.Constant))
    return names


def _config_names(tree) -> set[str]:
    """Config files a launch file names: string literals ending in .yaml/.rviz, and default_value of the
    `config` argument (a name in config/, '.yaml' optional)."""
    constants = module_constants(tree)
    names = {node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and re.fullmatch(r"[\w.\-]+\.(yaml|rviz)", node.value)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) == "DeclareLaunchArgument" and node.args:
            if resolve_str(node.args[0], constants) == "config":
                default = resolve_str(keyword(node, "default_value"), constants)
                assert default, "the config argument needs a default"
                names.add(default if default.endswith(".yaml") else default + ".yaml")
    return names


def test_there_are_two_launch_files_and_they_compile():
    assert {path.name for path in LAUNCH_FILES} == {"depth_prior.launch.py", "multi_camera.launch.py"}
    for path in LAUNCH_FILES:
        tree = _parse(path)
        compile(tree, str(path), "exec")
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "generate_launch_description" in functions, path.name


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_starts_only_console_scripts_of_this_package(path):
    nodes = _nodes(_parse(path))
    ours = [executable for package, executable, _ in nodes if package == PACKAGE]
    assert ours, f"{path.name} starts no node of {PACKAGE}"
    scripts = console_scripts()
    for executable in ours:
        assert executable in scripts, f"{path.name} starts '{executable}', not a console script in setup.py"
    others = {package for package, _, _ in nodes if package != PACKAGE}
    assert others <= {"rviz2"}, f"{path.name} starts nodes of unexpected packages: {others}"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_existing_config_files(path):
    names = _config_names(_parse(path))
    assert "default.yaml" in names
    for name in names:
        assert (CONFIG_DIR / name).is_file(), f"{path.name} names config/{name}, which does not exist"


@pytest.mark.skipif(NODE_DEFAULTS is None, reason=NO_PARAMS_MODULE)
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_sets_only_declared_parameters(path):
    depth_defaults, prior_defaults = NODE_DEFAULTS
    declared = {"depth_node": depth_defaults, "prior_node": prior_defaults}
    tree = _parse(path)
    for package, executable, parameters_expr in _nodes(tree):
        if package != PACKAGE:
            continue
        names = _parameter_names(tree, parameters_expr)
        undeclared = names - set(declared[executable])
        assert not undeclared, f"{path.name} sets parameters {executable} does not declare: {sorted(undeclared)}"
        # Launch argument overrides are passed as strings: only string parameters may be overridden.
        for name in module_constants(tree).get("PARAMETER_ARGS", ()):
            assert isinstance(declared[executable][name], str), f"{name} override is passed as a string"


def test_parameter_files_have_the_ros2_layout_and_float_literals():
    assert {path.name for path in PARAM_FILES} >= {
        "default.yaml", "nuscenes_cam_front.yaml", "kitti.yaml", "robotcar.yaml"}
    reference = load_params_file(CONFIG_DIR / "default.yaml")
    for path in PARAM_FILES:
        params = load_params_file(path)
        unknown = set(params) - set(reference)
        assert not unknown, f"{path.name} sets parameters that default.yaml does not know: {sorted(unknown)}"
        for name, value in params.items():
            assert same_ros_type(value, reference[name]), (
                f"{path.name}: {name}={value!r} has another type than default.yaml's {reference[name]!r}")


@pytest.mark.skipif(NODE_DEFAULTS is None, reason=NO_PARAMS_MODULE)
def test_default_yaml_is_exactly_the_node_defaults():
    depth_defaults, _ = NODE_DEFAULTS
    written = load_params_file(CONFIG_DIR / "default.yaml")
    assert set(written) == set(depth_defaults), (
        f"default.yaml vs the depth_node defaults: only in yaml {sorted(set(written) - set(depth_defaults))}, "
        f"only in node {sorted(set(depth_defaults) - set(written))}")
    for name, value in written.items():
        assert value == depth_defaults[name], f"default.yaml {name}={value!r}, node default {depth_defaults[name]!r}"


@pytest.mark.skipif(NODE_DEFAULTS is None, reason=NO_PARAMS_MODULE)
@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_file_uses_declared_names_with_declared_types(path):
    depth_defaults, _ = NODE_DEFAULTS
    for name, value in load_params_file(path).items():
        assert name in depth_defaults, f"{path.name}: depth_node declares no parameter {name}"
        assert same_ros_type(value, depth_defaults[name]), (
            f"{path.name}: {name}={value!r} but depth_node declares {type(depth_defaults[name]).__name__}")


def test_dataset_configs_carry_the_published_camera_heights():
    expected = {"nuscenes_cam_front.yaml": (1.51, 80.0), "kitti.yaml": (1.65, 80.0), "robotcar.yaml": (1.6, 50.0)}
    for name, (height, max_depth) in expected.items():
        params = load_params_file(CONFIG_DIR / name)
        assert params["camera_height"] == pytest.approx(height)
        assert params["max_depth"] == pytest.approx(max_depth)
        assert params["use_tf"] is False, "dataset bags carry no road-level tf frame"


def test_rviz_config_shows_image_colored_depth_and_cloud_for_the_launch_rewrite():
    tree = _parse(LAUNCH_DIR / "depth_prior.launch.py")
    constants = module_constants(tree)
    config = yaml.safe_load((CONFIG_DIR / constants["RVIZ_CONFIG"]).read_text(encoding="utf-8"))
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == constants["RVIZ_FIXED_FRAME"]
    topics = {display["Class"].split("/")[-1] + " " + display["Topic"]["Value"]
              for display in manager["Displays"] if "Topic" in display}
    namespace = constants["RVIZ_NAMESPACE"]
    assert {f"Image {namespace}image_raw", f"Image {namespace}depth/colored",
            f"PointCloud2 {namespace}depth/points"} <= topics
    # The node publishes with sensor-data QoS: RViz must subscribe best effort to receive anything.
    for display in manager["Displays"]:
        if "Topic" in display:
            assert display["Topic"]["Reliability Policy"] == "Best Effort", display["Name"]


def _function_from(path, name, namespace):
    """Compile one pure helper function out of a launch file (the file itself imports launch)."""
    tree = _parse(path)
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)
    module = ast.Module(body=[ast.ImportFrom(module="__future__", names=[ast.alias("annotations")], level=0),
                              function], type_ignores=[])
    exec(compile(ast.fix_missing_locations(module), str(path), "exec"), namespace)
    return namespace[name]


def test_multi_camera_parses_camera_lists():
    parse_cameras = _function_from(LAUNCH_DIR / "multi_camera.launch.py", "parse_cameras", {"re": re})
    assert parse_cameras("cam_front") == [("cam_front", "")]
    assert parse_cameras(" /cam_front:nuscenes_cam_front, cam_back  cam_left:/etc/l.yaml") == [
        ("cam_front", "nuscenes_cam_front"), ("cam_back", ""), ("cam_left", "/etc/l.yaml")]
    for bad in ("", "cam_a cam_a", ":kitti"):
        with pytest.raises(ValueError):
            parse_cameras(bad)


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installed (no PyPI wheel); only the static checks ran")
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_builds_with_launch_ros(path):
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert description.entities
