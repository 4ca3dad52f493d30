#!/usr/bin/env python3
"""Build tf2_msgs/msg/TFMessage into a virtual environment that has the ROS 2 wheels but no tf2_msgs.

The PyPI wheels carry rclpy and the standard messages but not tf2_msgs, without which a node can
neither subscribe nor publish /tf. The message definition is one line (upstream geometry2's
TFMessage.msg), so this script generates it with the wheels' own rosidl generators, compiles it with
the system C/C++ compiler and installs it the way the wheels install their message packages:

    python scripts/build_tf2_msgs.py VENV        # a no-op when `import tf2_msgs.msg` already works

The type is the real one (name tf2_msgs/msg/TFMessage, type hash RIHS01_e369d0f0...), so nodes built
this way talk tf with any Humble/Jazzy/Kilted robot. Where a ROS 2 distribution provides tf2_msgs,
nothing is built. Takes a few seconds; needs gcc and g++.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

PACKAGE = "tf2_msgs"
MESSAGE = "TFMessage"
DEFINITION = "geometry_msgs/TransformStamped[] transforms\n"
PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.0.0</version>
  <description>tf2_msgs/msg/TFMessage, built from its definition by depth_prior_ros</description>
  <maintainer email="depth_prior_ros@localhost">depth_prior_ros</maintainer>
  <license>BSD-3-Clause</license>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
</package>
"""
# The libraries of the message, in link order, with their sources (relative to the generated tree)
# and the libraries each links against besides the ones built before it.
LIBRARIES = [
    ("rosidl_generator_c", ["c/msg/detail/tf_message__functions.c", "c/msg/detail/tf_message__type_support.c",
                            "c/msg/detail/tf_message__description.c"],
     ["geometry_msgs__rosidl_generator_c", "std_msgs__rosidl_generator_c",
      "builtin_interfaces__rosidl_generator_c", "rosidl_runtime_c", "rcutils"]),
    ("rosidl_typesupport_introspection_c", ["introspection_c/msg/detail/tf_message__type_support.c"],
     ["geometry_msgs__rosidl_typesupport_introspection_c", "rosidl_typesupport_introspection_c",
      "rosidl_runtime_c"]),
    ("rosidl_typesupport_fastrtps_c", ["fastrtps_c/msg/detail/tf_message__type_support_c.cpp"],
     ["geometry_msgs__rosidl_typesupport_fastrtps_c", "geometry_msgs__rosidl_generator_c",
      "rosidl_typesupport_fastrtps_c", "rosidl_typesupport_fastrtps_cpp", "fastcdr", "rmw",
      "rosidl_runtime_c", "rcutils"]),
    ("rosidl_typesupport_c", ["c/msg/tf_message__type_support.cpp"],
     ["rosidl_typesupport_c", "rosidl_runtime_c", "rcutils", "rcpputils"]),
    ("rosidl_generator_py", ["py/msg/_tf_message_s.c"],
     ["geometry_msgs__rosidl_generator_py", "geometry_msgs__rosidl_generator_c", "rosidl_runtime_c"]),
]
TYPESUPPORTS = ("rosidl_typesupport_c", "rosidl_typesupport_introspection_c", "rosidl_typesupport_fastrtps_c")


def say(message: str) -> None:
    print(f"[build_tf2_msgs] {message}", file=sys.stderr)


def already_importable(python: Path) -> bool:
    return subprocess.run([str(python), "-c", "import tf2_msgs.msg"], capture_output=True).returncode == 0


def generate(venv: Path, work: Path) -> Path:
    """Run rosidl generate (C, Python; C, introspection and Fast DDS typesupports) into work/out."""
    package_dir = work / PACKAGE
    (package_dir / "msg").mkdir(parents=True)
    (package_dir / "msg" / f"{MESSAGE}.msg").write_text(DEFINITION)
    (package_dir / "package.xml").write_text(PACKAGE_XML)
    out = work / "out"
    # The ros-* wheels ship both a dist-info and an egg-info with the same entry points, and rosidl_cli
    # refuses duplicates ("Found duplicate entry point"): hand it each (group, name) once.
    code = (
        "import importlib.metadata as md, sys\n"
        "def entry_points(**select):\n"
        "    seen, unique = set(), []\n"
        "    for dist in md.distributions():\n"
        "        for ep in dist.entry_points:\n"
        "            if (ep.group, ep.name) not in seen:\n"
        "                seen.add((ep.group, ep.name)); unique.append(ep)\n"
        "    found = md.EntryPoints(unique)\n"
        "    return found.select(**select) if select else found\n"
        "md.entry_points = entry_points\n"
        "from rosidl_cli.cli import main\n"
        "sys.exit(main())\n")
    args = ["generate", "-o", str(out), "-t", "c", "-t", "py", "-ts", "c", "-ts", "introspection_c",
            "-ts", "fastrtps_c", "-I", str(venv / "share"), PACKAGE, f"msg/{MESSAGE}.msg"]
    env = dict(os.environ, AMENT_PREFIX_PATH=str(venv))
    subprocess.run([str(venv / "bin" / "python"), "-c", code, *args], cwd=package_dir, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return out


def compile_libraries(venv: Path, python: Path, out: Path, work: Path) -> Path:
    """Compile the five message libraries and three Python extensions into work/lib."""
    include = work / "include"
    for kind in ("c", "introspection_c", "fastrtps_c"):  # one include root: tf2_msgs/msg/...
        shutil.copytree(out / kind, include / PACKAGE, dirs_exist_ok=True)
    numpy_include = subprocess.run([str(python), "-c", "import numpy; print(numpy.get_include())"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    flags = ["-shared", "-fPIC", "-O2", f"-I{include}", f"-I{venv / 'include'}",
             *[f"-I{d}" for d in sorted((venv / "include").iterdir()) if d.is_dir()],
             f"-I{sysconfig.get_paths()['include']}", f"-I{numpy_include}",
             f"-L{venv / 'lib'}", f"-Wl,-rpath,{venv / 'lib'}"]
    lib = work / "lib"
    lib.mkdir()
    built: list[str] = []
    for name, sources, links in LIBRARIES:
        target = lib / f"lib{PACKAGE}__{name}.so"
        compiler = "g++" if any(s.endswith(".cpp") for s in sources) else "gcc"
        std = ["-std=c++17"] if compiler == "g++" else []
        subprocess.run([compiler, *std, *flags, f"-L{lib}", *[str(out / s) for s in sources], "-o", str(target),
                        *[f"-l{PACKAGE}__{b}" for b in built], *[f"-l{x}" for x in links]], check=True)
        built.append(name)
    for support in TYPESUPPORTS:
        target = lib / f"{PACKAGE}_s__{support}.so"
        subprocess.run(["gcc", *flags, f"-L{lib}", str(out / "py" / f"_{PACKAGE}_s.ep.{support}.c"), "-o", str(target),
                        f"-l{PACKAGE}__rosidl_generator_py", f"-l{PACKAGE}__{support}",
                        f"-l{PACKAGE}__rosidl_generator_c", "-lrosidl_runtime_c"], check=True)
    return lib


def install(venv: Path, python: Path, out: Path, lib: Path) -> None:
    """Lay the files out as the wheels do: libraries in VENV/lib, the Python package in site-packages,
    definitions in share/, and the ament index entries that rosidl and ros2 tools look up."""
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for so in lib.glob(f"lib{PACKAGE}__*.so"):
        shutil.copy2(so, venv / "lib" / so.name)
    package = site / PACKAGE
    (package / "msg").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    for py in (out / "py" / "msg").glob("*.py"):
        shutil.copy2(py, package / "msg" / py.name)
    for so in lib.glob(f"{PACKAGE}_s__*.so"):
        shutil.copy2(so, package / so.name)
    share = venv / "share" / PACKAGE
    (share / "msg").mkdir(parents=True, exist_ok=True)
    (share / "package.xml").write_text(PACKAGE_XML)
    (share / "msg" / f"{MESSAGE}.msg").write_text(DEFINITION)
    shutil.copy2(out / "c" / "tmp" / "msg" / f"{MESSAGE}.idl", share / "msg" / f"{MESSAGE}.idl")
    shutil.copy2(out / "c" / "msg" / f"{MESSAGE}.json", share / "msg" / f"{MESSAGE}.json")
    index = venv / "share" / "ament_index" / "resource_index"
    entries = {"packages": "", "rosidl_interfaces": f"msg/{MESSAGE}.idl\nmsg/{MESSAGE}.msg\n",
               "package_run_dependencies": "geometry_msgs;rosidl_default_runtime"}
    for resource, content in entries.items():
        (index / resource).mkdir(parents=True, exist_ok=True)
        (index / resource / PACKAGE).write_text(content)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        say("usage: build_tf2_msgs.py VENV")
        return 2
    venv = Path(argv[0]).resolve()
    python = venv / "bin" / "python"
    if already_importable(python):
        return 0
    for tool in ("gcc", "g++"):
        if shutil.which(tool) is None:
            say(f"error: {tool} is not installed; it is needed to build tf2_msgs (apt install build-essential)")
            return 1
    with tempfile.TemporaryDirectory(prefix="depth_prior_tf2_msgs_") as tmp:
        work = Path(tmp)
        out = generate(venv, work)
        install(venv, python, out, compile_libraries(venv, python, out, work))
    if not already_importable(python):
        say("error: tf2_msgs was built but does not import")
        return 1
    say(f"built tf2_msgs/msg/{MESSAGE} into {venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
