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

from depth_prior_ros import launch_support
from depth_prior_ros.launch_support import LaunchArgumentError
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
    """Every Node(...) / LifecycleNode(...) call: (package, executable, the parameters= expression)."""
    constants = dict(vars(launch_support), **module_constants(tree))  # names the launch files import from it
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) in ("Node", "LifecycleNode"):
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
        # depth_lifecycle_node is the contract name of the lifecycle variant (issue 10), which comes with
        # the lifecycle node itself; wherever setup.py declares it, it is checked like the others.
        if executable == launch_support.LIFECYCLE_EXECUTABLE and executable not in scripts:
            continue
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
    declared = {"depth_node": depth_defaults, "prior_node": prior_defaults,
                launch_support.LIFECYCLE_EXECUTABLE: depth_defaults}  # depth_node in lifecycle steps
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


# --------------------------------------------------------------------------- launch that fails loudly
def _declared_arguments(tree) -> dict[str, str]:
    constants = module_constants(tree)
    return {resolve_str(node.args[0], constants): resolve_str(keyword(node, "default_value"), constants)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and call_name(node) == "DeclareLaunchArgument" and node.args}


def _called(tree, function: str) -> set[str]:
    """Names called inside one top-level function of a launch file."""
    body = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function)
    return {call_name(node) for node in ast.walk(body) if isinstance(node, ast.Call)}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_files_declare_the_vehicle_arguments_and_check_them_before_starting(path):
    tree = _parse(path)
    arguments = _declared_arguments(tree)
    assert {"use_sim_time": "false", "log_level": "", "image_transport": ""}.items() <= arguments.items()
    assert "image_transport" in module_constants(tree)["PARAMETER_ARGS"]
    assert {"config_path", "params_file", "choice", "flag", "ros_arguments"} <= _called(tree, "_launch_setup")
    source = path.read_text(encoding="utf-8")
    assert 'overrides["use_sim_time"] = flag("use_sim_time"' in source


def test_the_camera_launch_has_lifecycle_autostart_and_rviz_only_with_rviz2():
    tree = _parse(LAUNCH_DIR / "depth_prior.launch.py")
    arguments = _declared_arguments(tree)
    assert arguments["autostart"] == "true" and arguments["lifecycle"] == "false" and arguments["rviz"] == "false"
    executables = {executable for _, executable, _ in _nodes(tree)}
    assert {"depth_node", "depth_lifecycle_node", "rviz2"} <= executables
    rviz = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "_rviz")
    checks = [node for node in ast.walk(rviz) if isinstance(node, ast.Try)
              and any(call_name(c) == "get_package_prefix" and c.args and c.args[0].value == "rviz2"
                      for c in ast.walk(node) if isinstance(c, ast.Call))]
    assert checks and any(getattr(h.type, "id", "") == "PackageNotFoundError" for h in checks[0].handlers)
    assert "full_namespace" in _called(tree, "_rviz")  # RViz topics follow a pushed namespace


def test_an_unknown_config_or_missing_params_file_is_one_sentence_listing_the_presets(tmp_path):
    assert {"default", "kitti", "nuscenes_cam_front", "robotcar"} <= set(launch_support.presets(CONFIG_DIR))
    assert launch_support.config_path("kitti", CONFIG_DIR) == str(CONFIG_DIR / "kitti.yaml")
    assert launch_support.config_path("kitti.yaml", CONFIG_DIR) == str(CONFIG_DIR / "kitti.yaml")
    for call, fragment in [(lambda: launch_support.config_path("kiti", CONFIG_DIR), "config:=kiti is not a preset"),
                           (lambda: launch_support.config_path("/etc/nope.yaml", CONFIG_DIR), "does not exist"),
                           (lambda: launch_support.params_file(str(tmp_path / "mine.yaml"), CONFIG_DIR),
                            "params_file:=")]:
        with pytest.raises(LaunchArgumentError) as info:
            call()
        text = str(info.value)
        assert fragment in text and "default, kitti, nuscenes_cam_front, robotcar" in text and "\n" not in text
    assert launch_support.params_file("", CONFIG_DIR) is None
    mine = tmp_path / "mine.yaml"
    mine.write_text("/**: {ros__parameters: {}}\n")
    assert launch_support.params_file(str(mine), CONFIG_DIR) == str(mine)


def test_launch_argument_values_are_checked():
    assert launch_support.flag("rviz", "True") and not launch_support.flag("rviz", "0")
    assert launch_support.ros_arguments("debug") == ["--ros-args", "--log-level", "debug"]
    assert launch_support.ros_arguments("") == []
    assert launch_support.choice("image_transport", "compressed", launch_support.IMAGE_TRANSPORTS) == "compressed"
    for call, fragment in [(lambda: launch_support.flag("use_sim_time", "maybe"), "use_sim_time:='maybe' must be"),
                           (lambda: launch_support.ros_arguments("loud"), "log_level:='loud' must be one of debug"),
                           (lambda: launch_support.choice("image_transport", "theora", ("raw", "compressed")),
                            "must be one of raw, compressed")]:
        with pytest.raises(LaunchArgumentError, match=re.escape(fragment)):
            call()


def test_rviz_topics_follow_the_pushed_namespace_and_an_absolute_image_topic():
    assert launch_support.full_namespace("/robot1", "cam_front") == "/robot1/cam_front"
    assert launch_support.full_namespace("robot1/", "/cam_front") == "/cam_front"  # absolute stays
    assert launch_support.full_namespace(None, "") == "/"
    template = (CONFIG_DIR / "depth_prior.rviz").read_text(encoding="utf-8")
    text = launch_support.rviz_config_text(template, "/robot1/cam_front", "image_rect", "odom")
    assert "Value: /robot1/cam_front/image_rect" in text and "Value: /robot1/cam_front/depth/points" in text
    assert "Fixed Frame: odom" in text and "/camera/" not in text
    text = launch_support.rviz_config_text(template, "/robot1/cam_front", "/sensors/front/image_raw", "odom")
    assert "Value: /sensors/front/image_raw" in text and "Value: /robot1/cam_front/depth/colored" in text
    root = launch_support.rviz_config_text(template, "/", "image_raw", "base_footprint")
    assert "Value: /depth/colored" in root and "Value: //" not in root
