"""The repros of issue 13 items 3, 6 and 8 (those not in test_models_fetch_hostile / _check_hostile /
test_bag_integrity), each as it was run: one sentence and exit 2, and nothing of the user's deleted."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers_errors import assert_one_sentence
from helpers_replay import make_synth_bags

from depth_prior_ros.cli import main
from depth_prior_ros.geometry.camera import CameraModelError, PinholeCamera
from depth_prior_ros.replay import bag_io
from depth_prior_ros.replay.bag_io import BagError, BagWriter

K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 179.5], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def day_bag(tmp_path_factory):
    return make_synth_bags(tmp_path_factory.mktemp("repro"), frames=2, conditions=("day",))[0]


def _run(args, capsys):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip()


def _refused(args, capsys, expected):
    code, err = _run(args, capsys)
    assert code == 2 and expected in err, err
    assert_one_sentence(err, ignore_paths=True)


# --------------------------------------------------------------------------- item 3: nothing lost
def test_replaying_an_output_bag_into_its_own_report_folder_keeps_it(day_bag, tmp_path, capsys):
    ov = tmp_path / "ov"
    assert main(["replay", str(day_bag), "--out", str(ov), "--no-progress"]) == 0
    before = sorted(p.name for p in (ov / "output_bag").iterdir())
    _refused(["replay", ov / "output_bag", "--out", ov, "--no-progress"], capsys, "contains the input")
    _refused(["replay", ov / "output_bag", "--out", ov / "output_bag" / "r", "--no-progress"], capsys,
             "is inside the input")
    assert sorted(p.name for p in (ov / "output_bag").iterdir()) == before
    assert main(["replay", str(ov / "output_bag"), "--out", str(tmp_path / "elsewhere"), "--no-progress",
                 "--image-topic", "/input/image", "--gt-topic", "/ground_truth/depth", "--pose", "static"]) == 0


def test_a_folder_with_the_users_files_is_not_a_report_folder(day_bag, tmp_path, capsys):
    home = tmp_path / "home"
    (home / "previews").mkdir(parents=True)
    (home / "previews" / "holiday.png").write_bytes(b"not ours")
    (home / "report.md").write_text("my notes")
    _refused(["replay", day_bag, "--out", home, "--no-progress"], capsys, "holds files that no replay wrote")
    assert (home / "previews" / "holiday.png").read_bytes() == b"not ours"
    assert (home / "report.md").read_text() == "my notes"


def test_an_overwriting_bag_writer_replaces_only_bags_it_writes(tmp_path):
    precious = tmp_path / "output_bag"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(BagError, match="is not a bag this tool writes"):
        BagWriter(precious, overwrite=True).open()
    assert (precious / "thesis.tex").read_text() == "years of work"
    with BagWriter(tmp_path / "ours") as w:
        w.write("/s", bag_io.make_string("a"), bag_io.STRING, 1)
    with BagWriter(tmp_path / "ours", overwrite=True) as w:  # its own kind of folder is replaced
        w.write("/s", bag_io.make_string("b"), bag_io.STRING, 2)


# --------------------------------------------------------------------------- item 6: one sentence, exit 2
def test_replay_out_that_cannot_be_a_folder(day_bag, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    _refused(["replay", day_bag, "--out", a_file], capsys, "is a file, not a folder")
    _refused(["replay", day_bag, "--out", a_file / "sub"], capsys, "which is a file")
    _refused(["replay", day_bag, "--out", "/proc/depth_prior_report"], capsys, "under /proc")


@pytest.mark.parametrize("option, value, expected", [
    ("--sync-tolerance", "nan", "argument --sync-tolerance"),
    ("--max-frames", "0", "argument --max-frames: 0 is not an integer >= 1"),
    ("--max-frames", "-1", "argument --max-frames: -1 is not an integer >= 1"),
])
def test_replay_numbers_that_make_no_sense(day_bag, tmp_path, capsys, option, value, expected):
    _refused(["replay", day_bag, "--out", tmp_path / "o", option, value], capsys, expected)


def test_export_size_and_out_are_checked(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    base = ["export", "--backend", "ssd_student", "--weights", weights]
    _refused([*base, "--out", tmp_path / "m.onnx", "--height", "-14", "--width", "28"], capsys,
             "argument --height: -14 is not an integer >= 1")
    _refused([*base, "--out", tmp_path / "m.onnx", "--height", "0", "--width", "28"], capsys,
             "argument --height: 0 is not an integer >= 1")
    _refused([*base, "--out", a_file / "m.onnx"], capsys, "is a file, not a folder")
    _refused([*base, "--out", tmp_path], capsys, "is a folder, not a file")


def _node(*ros_args, timeout=60):
    from depth_prior_ros.processes import child_environment, choose_domain_id, isolated_ros

    with isolated_ros(choose_domain_id()):
        cmd = [sys.executable, "-m", "depth_prior_ros.ros.depth_node", "--ros-args", *ros_args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=child_environment())
    return done.returncode, (done.stdout + done.stderr).strip()


@pytest.mark.ros
@pytest.mark.parametrize("override, expected", [
    ("diagnostics_period:=1.0e10", "parameter 'diagnostics_period' must be >= 0.1 and <= 3600, got 1"),
    ("diagnostics_period:=1e-9", "parameter 'diagnostics_period' must be >= 0.1 and <= 3600, got 1e-09"),
    ("backend_options:={bad", "parameter 'backend_options': the value '{bad' is not YAML"),
])
def test_depth_node_refuses_hostile_overrides_at_start(override, expected):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    code, output = _node("-p", override)
    assert code == 2 and expected in output, output
    assert output.count("\n") == 0 and "Traceback" not in output, output


# --------------------------------------------------------------------------- item 8: checks that say ok too easily
@pytest.mark.parametrize("k, d, expected", [
    ([[1e-3, 0, 319.5], [0, 1e-3, 179.5], [0, 0, 1]], [], "implausible focal length fx=0.001"),
    ([[1e9, 0, 319.5], [0, 1e9, 179.5], [0, 0, 1]], [], "implausible focal length"),
    (K, [1e10, 0, 0, 0, 0], "distortion coefficient 1e+10 is not plausible"),
    ([[500, 0, 1e6], [0, 500, 179.5], [0, 0, 1]], [], "principal point"),
])
def test_implausible_calibrations_are_rejected_like_a_zero_k(k, d, expected):
    with pytest.raises(CameraModelError, match="zero|non-positive"):
        PinholeCamera(np.zeros((3, 3)), 640, 360)
    with pytest.raises(CameraModelError) as info:
        PinholeCamera(np.asarray(k, float), 640, 360, np.asarray(d, float))
    assert expected in str(info.value)
    assert_one_sentence(info.value)
    # The same through both message paths: the node's conversion and the bag reader's.
    msg = bag_io.make_camera_info(np.asarray(k, float), 640, 360, 0, "cam", d or None)
    with pytest.raises(CameraModelError):
        bag_io.camera_from_info(msg)
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    from sensor_msgs.msg import CameraInfo

    from depth_prior_ros.ros.conversions import ConversionError, camera_from_info

    ros_msg = CameraInfo(width=640, height=360, distortion_model="plumb_bob", k=list(np.ravel(k)), d=list(d))
    with pytest.raises((CameraModelError, ConversionError)):
        camera_from_info(ros_msg)


def test_a_good_calibration_still_passes():
    cam = PinholeCamera(K, 640, 360, np.array([-0.3, 0.1, 0.0, 0.0, 0.0]))
    assert cam.is_distorted and cam.fx == 500.0
