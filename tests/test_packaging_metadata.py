"""The package's metadata agrees with itself: package.xml, setup.py/setup.cfg, requirements, scripts,
the colcon workspace link and the loopback-only DDS profile."""
from __future__ import annotations

import ast
import configparser
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from helpers_packaging import PACKAGE, REPO, console_scripts, module_file

# rosdep keys every runtime dependency needs (rosdistro rosdep/base.yaml + python.yaml, ROS package names).
REQUIRED_EXEC_DEPENDS = {
    "rclpy", "rcl_interfaces", "sensor_msgs", "diagnostic_msgs", "tf2_msgs", "geometry_msgs", "tf2_ros_py", "launch",
    "launch_ros",
    "python3-numpy", "python3-opencv", "python3-yaml", "python3-tqdm", "python3-matplotlib",
    "python3-rosbags-pip", "python3-torch", "python3-transformers-pip", "python3-onnxruntime-pip",
}
# Imported module -> rosdep key, for the modules that are not ROS packages of the same name.
IMPORT_KEYS = {"tf2_ros": "tf2_ros_py", "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml",
               "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib", "rosbags": "python3-rosbags-pip",
               "torch": "python3-torch", "transformers": "python3-transformers-pip",
               "onnxruntime": "python3-onnxruntime-pip"}
# Imported, but no rosdep key exists: package.xml's comment must tell users to pip install them.
PIP_ONLY = {"diffusers": "diffusers", "safetensors": "safetensors", "onnx": "onnx", "onnxscript": "onnxscript",
            "ai_edge_litert": "ai-edge-litert", "openvino": "openvino"}
# Declared without an import, each for a reason.
NOT_IMPORTED = {"tf2_msgs": "the /tf and /tf_static type the pose lookup subscribes (through tf2_ros)",
                "geometry_msgs": "the TransformStamped of a tf lookup, read by the pose source and the TF tree",
                "ros2launch": "the `ros2 launch` verb that runs launch/*.launch.py"}
ROS_EXTRA = {"rclpy", "launch", "launch_ros", "ament_index_python"}  # ROS packages not named *_msgs / *_interfaces
REQUIRED_SCRIPTS = {
    "depth_node": "depth_prior_ros.ros.depth_node:main",
    "prior_node": "depth_prior_ros.ros.prior_node:main",
    "depth_lifecycle_node": "depth_prior_ros.ros.depth_lifecycle_node:main",  # issue #10 contract
    "depth-prior": "depth_prior_ros.cli:main",
}


def _package_xml() -> ET.Element:
    return ET.parse(REPO / "package.xml").getroot()


def _version_from_init() -> str:
    text = (REPO / "src" / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    assert match, "src/depth_prior_ros/__init__.py has no __version__"
    return match.group(1)


def test_package_xml_is_format_3_ament_python_with_rosdep_keys():
    root = _package_xml()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == PACKAGE
    assert root.findtext("version") == _version_from_init(), "package.xml and __init__ disagree on the version"
    assert root.findtext("export/build_type") == "ament_python"
    exec_depends = {element.text for element in root.findall("exec_depend")}
    missing = REQUIRED_EXEC_DEPENDS - exec_depends
    assert not missing, f"package.xml lacks exec_depend keys: {sorted(missing)}"
    assert "python3-pytest" in {element.text for element in root.findall("test_depend")}
    for element in root.findall("maintainer"):
        assert element.get("email") and element.text.strip()


def test_package_xml_is_valid_for_catkin_pkg_as_colcon_reads_it():
    # colcon-ros identifies the package through catkin_pkg; a parse error silently demotes it to a plain
    # Python package (no ament index hooks), so check with the same parser.
    catkin_package = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg comes with colcon")
    package = catkin_package.parse_package(str(REPO / "package.xml"))
    package.validate()
    assert package.get_build_type() == "ament_python"


def test_setup_py_console_scripts_point_at_existing_main_functions():
    scripts = console_scripts()
    assert scripts == REQUIRED_SCRIPTS
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        path = module_file(module)
        assert path is not None, f"console script {name}: module {module} has no file under src/"
        defined = {node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
                   if isinstance(node, ast.FunctionDef)}
        assert function in defined, f"console script {name}: {path.relative_to(REPO)} defines no {function}()"


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "setup.cfg")
    assert config.get("develop", "script_dir") == f"$base/lib/{PACKAGE}"
    assert config.get("install", "install_scripts") == f"$base/lib/{PACKAGE}"


def test_setup_py_ships_the_ament_marker_package_xml_launch_and_config(monkeypatch):
    # Evaluate setup() without building anything, to read what it would install.
    pytest.importorskip("setuptools")
    from distutils.core import run_setup  # setuptools' copy (distutils-precedence)

    monkeypatch.chdir(REPO)  # data_files globs are relative, as colcon runs setup.py
    dist = run_setup(str(REPO / "setup.py"), stop_after="init")
    assert dist.get_name() == PACKAGE and dist.get_version() == _version_from_init()
    assert dist.package_dir == {"": "src"}
    assert PACKAGE in dist.packages and f"{PACKAGE}.ros" in dist.packages
    data_files = {target: set(files) for target, files in dist.data_files}
    assert data_files["share/ament_index/resource_index/packages"] == {f"resource/{PACKAGE}"}
    assert data_files[f"share/{PACKAGE}"] == {"package.xml"}
    assert data_files[f"share/{PACKAGE}/launch"] == {
        f"launch/{path.name}" for path in (REPO / "launch").glob("*.launch.py")}
    shipped_config = data_files[f"share/{PACKAGE}/config"]
    for path in (REPO / "config").iterdir():
        if path.suffix in (".yaml", ".rviz", ".xml"):
            assert f"config/{path.name}" in shipped_config
    marker = REPO / "resource" / PACKAGE
    assert marker.is_file() and marker.stat().st_size == 0


def test_requirements_are_pinned_and_leave_torch_to_setup_env():
    lines = [line.split("#", 1)[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    names = set()
    for requirement in requirements:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+]+", requirement), f"not pinned: {requirement}"
        names.add(requirement.split("==")[0].lower().replace("_", "-"))
    assert "torch" not in names, "torch is installed by scripts/setup_env.sh so CUDA users keep their build"
    for needed in ("ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-sensor-msgs", "colcon-common-extensions",
                   "rosbags", "numpy", "opencv-python-headless", "pytest", "pytest-timeout"):
        assert needed in names, f"requirements.txt lacks {needed}"
    setup_env = (REPO / "scripts" / "setup_env.sh").read_text()
    assert "torch==2.13.0" in setup_env


def test_colcon_workspace_links_back_to_the_repository():
    link = REPO / "ros2_ws" / "src" / PACKAGE
    assert link.is_symlink(), "ros2_ws/src/depth_prior_ros must be a symlink to the repository root"
    assert os.readlink(link) == "../..", "a relative link keeps working in any clone"
    assert link.resolve() == REPO.resolve()


def test_local_ros_env_keeps_rclpy_on_loopback_in_a_private_domain():
    from depth_prior_ros.processes import DOMAIN_ENV, DOMAIN_RANGE

    def source(**variables) -> list[str]:
        env = {key: value for key, value in os.environ.items() if key != DOMAIN_ENV}
        env.update(ROS_DOMAIN_ID="0", **variables)  # 0: e.g. a robot's domain in the developer's shell
        command = (f'source "{REPO / "scripts" / "local_ros_env.sh"}" && echo "$ROS_AUTOMATIC_DISCOVERY_RANGE '
                   f'$ROS_DOMAIN_ID $FASTDDS_DEFAULT_PROFILES_FILE ${DOMAIN_ENV}"')
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True, env=env)
        return done.stdout.split()

    discovery_range, domain, profile, tools_domain = source()
    assert discovery_range == "LOCALHOST"
    first, last = DOMAIN_RANGE
    assert first <= int(domain) <= last, "the inherited ROS_DOMAIN_ID (maybe a robot's) must not be used"
    assert os.path.samefile(profile, REPO / "config" / "fastdds_localhost.xml")
    assert tools_domain == domain  # the demo, replay, bench and tests take the run's domain from it
    assert source(**{DOMAIN_ENV: "171"})[1] == "171"  # the one variable that pins it


def test_fastdds_profile_uses_only_loopback_unicast():
    namespace = {"dds": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(REPO / "config" / "fastdds_localhost.xml").getroot()
    participant = root.find("dds:profiles/dds:participant", namespace)
    assert participant is not None and participant.get("is_default_profile") == "true"
    assert participant.findtext("dds:rtps/dds:useBuiltinTransports", namespaces=namespace) == "false"
    transports = root.findall("dds:profiles/dds:transport_descriptors/dds:transport_descriptor", namespace)
    # Shared memory (host-local; best-effort large images arrive whole) and UDP restricted to loopback.
    kinds = {t.findtext("dds:type", namespaces=namespace): t for t in transports}
    assert sorted(kinds) == ["SHM", "UDPv4"]
    allowed = [a.text for a in kinds["UDPv4"].findall("dds:interfaceWhiteList/dds:address", namespace)]
    assert allowed == ["127.0.0.1"]
    addresses = [a.text for a in root.iter("{%s}address" % namespace["dds"])]
    assert addresses and set(addresses) == {"127.0.0.1"}
    assert not list(root.iter("{%s}metatrafficMulticastLocatorList" % namespace["dds"]))


def _imported_top_modules() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in the package and the launch files (function-local imports
    too) -> the files importing them; the standard library and the package itself left out."""
    import sys

    found: dict[str, set[str]] = {}
    files = sorted((REPO / "src" / PACKAGE).rglob("*.py")) + sorted((REPO / "launch").glob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != PACKAGE:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_package_xml_declares_exactly_what_the_code_imports():
    root = _package_xml()
    declared = {element.text for element in root.findall("exec_depend")}
    imports = _imported_top_modules()
    unknown = sorted(m for m in imports if m not in IMPORT_KEYS and m not in PIP_ONLY and m not in ROS_EXTRA
                     and not m.endswith(("_msgs", "_interfaces")))
    assert not unknown, f"imported modules with no rosdep key decided here: {unknown} ({[imports[m] for m in unknown]})"
    needed = {IMPORT_KEYS.get(m, m) for m in imports if m not in PIP_ONLY}
    missing = sorted(needed - declared)
    assert not missing, f"package.xml lacks exec_depend keys the code imports: {missing}"
    unused = sorted(declared - needed - set(NOT_IMPORTED))
    assert not unused, f"package.xml declares exec_depend keys nothing imports: {unused}"
    assert set(NOT_IMPORTED) <= declared
    comments = " ".join(node.text for node in ET.parse(REPO / "package.xml", ET.XMLParser(
        target=ET.TreeBuilder(insert_comments=True))).getroot().iter() if node.tag is ET.Comment)
    for module in set(PIP_ONLY) & set(imports):
        assert PIP_ONLY[module] in comments, f"package.xml does not tell users to pip install {PIP_ONLY[module]}"
