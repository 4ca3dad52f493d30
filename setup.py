"""ament_python package depth_prior_ros: code in src/depth_prior_ros, ROS files in launch/ and config/.

Installed three ways, all from this file:
  * colcon (a ROS 2 workspace, see ros2_ws/): console scripts land in lib/depth_prior_ros (setup.cfg), so
    `ros2 run depth_prior_ros depth_node` and `ros2 launch depth_prior_ros depth_prior.launch.py` work;
  * `pip install -e . --no-deps` (scripts/setup_env.sh): console scripts land in the venv's bin/;
  * `python -m depth_prior_ros.cli` with PYTHONPATH=src, for a quick look.
Runtime dependencies come from rosdep (package.xml) or requirements.txt, not install_requires: a
vehicle's apt packages (python3-opencv, ...) do not register the PyPI distribution names, and a
requirement listed here would make the generated console scripts refuse to start.
"""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = "depth_prior_ros"
HERE = os.path.dirname(os.path.abspath(__file__))


def _version() -> str:
    # Single source of truth: src/depth_prior_ros/__init__.py (package.xml carries the same number).
    with open(os.path.join(HERE, "src", PACKAGE, "__init__.py"), encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError("src/depth_prior_ros/__init__.py has no __version__ line")


def _files(pattern: str) -> list[str]:
    # Relative paths, as colcon and setuptools expect for data_files.
    return sorted(path for path in glob(pattern) if os.path.isfile(path))


setup(
    name=PACKAGE,
    version=_version(),
    description="Metric monocular depth for ROS 2: embodied ground-plane prior aligned with depth networks",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages(where="src"),
    include_package_data=False,
    # The committed demo student (weights + model card) ships inside the package.
    package_data={PACKAGE: ["data/demo_student/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", _files("config/*.yaml") + _files("config/*.rviz") + _files("config/*.xml")),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "depth_node = depth_prior_ros.ros.depth_node:main",
            "prior_node = depth_prior_ros.ros.prior_node:main",
            "depth_lifecycle_node = depth_prior_ros.ros.depth_lifecycle_node:main",
            "depth-prior = depth_prior_ros.cli:main",
        ],
    },
)
