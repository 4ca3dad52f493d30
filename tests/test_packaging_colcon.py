"""`colcon build` of ros2_ws (whose src/ links to this repository) works, plain and --symlink-install, and
installs what `ros2 run` / `ros2 launch` look for. Build, install and log go to a temporary folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers_packaging import PACKAGE, REPO, console_scripts


def _colcon() -> str:
    beside_python = Path(sys.executable).parent / "colcon"
    found = str(beside_python) if beside_python.is_file() else shutil.which("colcon")
    if not found:
        pytest.skip("colcon is not installed (colcon-common-extensions in requirements.txt)")
    return found


def _source_tree_snapshot() -> set[str]:
    # What a build could leave behind in the checkout: egg-info, build/, install/, log/ folders.
    roots = [REPO, REPO / "src", REPO / "ros2_ws"]
    return {str(path.relative_to(REPO)) for root in roots if root.is_dir() for path in root.iterdir()}


def _build(tmp_path: Path, *flags: str) -> Path:
    base = tmp_path / "colcon"
    before = _source_tree_snapshot()
    result = subprocess.run(
        [_colcon(), "--log-base", str(base / "log"), "build", *flags,
         "--build-base", str(base / "build"), "--install-base", str(base / "install"),
         "--event-handlers", "console_direct+"],
        cwd=REPO / "ros2_ws", capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, f"colcon build {' '.join(flags)} failed:\n{result.stdout}\n{result.stderr}"
    assert _source_tree_snapshot() == before, "the build wrote into the checkout"
    return base / "install"


def _check_install(install: Path) -> Path:
    prefix = install / PACKAGE
    scripts = prefix / "lib" / PACKAGE
    for name in console_scripts():
        assert os.access(scripts / name, os.X_OK), f"{name} not installed in lib/{PACKAGE} (ros2 run looks there)"
    share = prefix / "share" / PACKAGE
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    assert (share / "package.xml").is_file()
    for relative in ("launch/depth_prior.launch.py", "launch/multi_camera.launch.py",
                     "config/default.yaml", "config/depth_prior.rviz"):
        assert (share / relative).is_file(), f"share/{PACKAGE}/{relative} missing"
    # Built as ros.ament_python (not a plain Python package): sourcing sets AMENT_PREFIX_PATH.
    assert (share / "hook" / "ament_prefix_path.dsv").is_file()
    site_packages = list((prefix / "lib").glob("python3*/site-packages"))
    assert len(site_packages) == 1
    return site_packages[0]


def test_colcon_build_installs_scripts_launch_and_config(tmp_path):
    install = _build(tmp_path)
    site_packages = _check_install(install)
    assert (site_packages / PACKAGE / "cli.py").is_file(), "the package itself was not installed"

    # The installed CLI runs from the install space alone (what `ros2 run depth_prior_ros depth-prior` does).
    env = {**os.environ, "PYTHONPATH": str(site_packages)}
    run = subprocess.run([str(install / PACKAGE / "lib" / PACKAGE / "depth-prior"), "--help"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage: depth-prior" in run.stdout


def test_colcon_symlink_install_points_back_to_the_sources(tmp_path):
    install = _build(tmp_path, "--symlink-install")
    _check_install(install)
    share = install / PACKAGE / "share" / PACKAGE
    # Editing a config file in the checkout takes effect without a rebuild.
    installed_config = share / "config" / "default.yaml"
    assert installed_config.is_symlink()
    assert installed_config.resolve() == (REPO / "config" / "default.yaml").resolve()
