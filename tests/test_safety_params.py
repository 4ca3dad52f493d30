"""File-path parameters are checked before use: a missing file, a folder where a file is expected, a
file where a folder is expected, a device file or a FIFO, each refused with one clear sentence (and
never a hang or an open() on something that is not a regular file)."""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from depth_prior_ros.models import create_backend
from depth_prior_ros.models.base import BackendError
from depth_prior_ros.processes import choose_domain_id
from depth_prior_ros.parameters import ParameterError, parse_depth_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers_errors import assert_one_sentence as one_sentence  # noqa: E402

DOMAIN_ID = choose_domain_id()  # the run's domain; namespaces are unique per run on top of it


def assert_one_sentence(exc_or_text) -> None:
    one_sentence(exc_or_text, ignore_paths=True)


# --------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("weights", ["/nonexistent/model.pth", "relative/missing.safetensors", "~/no/such/folder"])
def test_missing_weights_path_is_a_configuration_error_naming_the_parameter(weights):
    with pytest.raises(ParameterError) as info:
        parse_depth_params({"backend": "ssd_student", "weights": weights})
    assert_one_sentence(info.value)
    assert "'weights'" in str(info.value) and "does not exist" in str(info.value)


def test_symlink_loop_is_treated_as_missing(tmp_path):
    loop = tmp_path / "loop.pth"
    os.symlink(loop, loop)
    with pytest.raises(ParameterError) as info:
        parse_depth_params({"backend": "ssd_student", "weights": str(loop)})
    assert_one_sentence(info.value)


def test_backend_options_cannot_smuggle_a_second_weights_path():
    with pytest.raises(ParameterError) as info:
        parse_depth_params({"backend": "onnx", "backend_options": '{"weights": "/tmp/other.onnx"}'})
    assert_one_sentence(info.value)
    assert "backend_options" in str(info.value)


def test_existing_paths_pass_the_parameter_check(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"")
    assert parse_depth_params({"backend": "onnx", "weights": str(f)}).weights == str(f)


# --------------------------------------------------------------------------------- loaders
def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("backend", ["onnx", "ssd_student"])
def test_a_folder_where_a_file_is_expected_is_one_sentence(tmp_path, backend):
    folder = tmp_path / ("model.onnx" if backend == "onnx" else "model.pth")
    folder.mkdir()
    with pytest.raises(BackendError) as info:
        create_backend(backend, weights=str(folder), device="cpu")
    assert_one_sentence(info.value)


def test_a_file_where_the_jasmine_folder_is_expected_is_one_sentence(tmp_path):
    f = tmp_path / "Jasmine.zip"
    f.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(BackendError) as info:
        create_backend("jasmine", weights=str(f), device="cpu")
    assert_one_sentence(info.value)
    assert "folder" in str(info.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["onnx", "ssd_student", "jasmine"])
@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_device_files_and_fifos_are_refused_without_reading_them(tmp_path, backend, special):
    """/dev/zero never ends and opening a FIFO blocks: both must be refused before any read."""
    path = _fifo(tmp_path, "weights.pth") if special == "fifo" else Path(special)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        create_backend(backend, weights=str(path), device="cpu")
    assert time.monotonic() - started < 30
    assert_one_sentence(info.value)


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"PK\x03\x04garbage", b"not a checkpoint at all"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".onnx"])
def test_truncated_or_garbage_weights_files_are_one_sentence(tmp_path, content, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    backend = "onnx" if suffix == ".onnx" else "ssd_student"
    if backend == "onnx":
        import helpers_models as hm

        hm.write_card(path.with_suffix(".card.json"), dict(hm.TINY_DA_CARD, input_size=[14, 14]))
    with pytest.raises(BackendError) as info:
        create_backend(backend, weights=str(path), device="cpu")
    assert_one_sentence(info.value)


@pytest.mark.parametrize("option", ["text_embedding", "tiny_vae"])
def test_jasmine_extra_file_options_are_checked(tmp_path, option):
    torch = pytest.importorskip("torch")  # noqa: F841
    import helpers_models as hm

    folder = hm.write_jasmine_folder(tmp_path / "Jasmine")
    with pytest.raises(BackendError) as info:
        create_backend("jasmine", weights=str(folder), device="cpu", **{option: str(tmp_path / "missing")})
    assert_one_sentence(info.value)


# --------------------------------------------------------------------------------- the live node
def _run_node_until_exit(params: dict, tmp_path: Path, timeout: float = 60.0):
    from depth_prior_ros.processes import NodeProcess, isolated_ros, unique_namespace

    with isolated_ros(DOMAIN_ID, "shm"):
        return NodeProcess("depth_prior_ros.ros.depth_node", params, tmp_path / "node.log",
                           unique_namespace("safety")).run_until_exit(timeout)


@pytest.mark.ros
def test_depth_node_with_missing_weights_exits_at_start_with_one_sentence(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    missing = tmp_path / "no_such_model.safetensors"
    code, log = _run_node_until_exit({"backend": "ssd_student", "weights": str(missing), "use_tf": False}, tmp_path)
    assert code == 2, log
    lines = [line for line in log.splitlines() if "configuration error" in line]
    assert len(lines) == 1 and str(missing) in lines[0] and "'weights'" in lines[0], log
    assert "Traceback" not in log


@pytest.mark.ros
def test_depth_node_with_a_folder_as_onnx_weights_never_crashes(tmp_path):
    """The path exists, so it passes the start-up check; loading it fails. The node must say so in one
    log line naming the path and keep running on the prior (or refuse to start): never a traceback."""
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    from depth_prior_ros.processes import NodeProcess, isolated_ros, log_problems, unique_namespace

    folder = tmp_path / "model.onnx"
    folder.mkdir()
    with isolated_ros(DOMAIN_ID, "shm"):
        proc = NodeProcess("depth_prior_ros.ros.depth_node", {"backend": "onnx", "weights": str(folder),
                                                              "use_tf": False}, tmp_path / "node.log",
                           unique_namespace("safety")).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.alive() and str(folder) not in proc.output():
            time.sleep(0.1)
        alive = proc.alive()
    finally:
        code = proc.stop()
    log = proc.output()
    assert "Traceback" not in log, log
    mentions = [line for line in log.splitlines() if str(folder) in line]
    assert mentions, log
    assert all(len(re.sub(r"/[^\s:,']+", "<path>", m)) < 300 for m in mentions), mentions
    if alive:  # degraded mode: the error is logged once, the node stopped cleanly on SIGINT
        assert code == 0 and any("[ERROR]" in m for m in mentions), log
    else:
        assert code == 2, log
    assert not [p for p in log_problems(log) if str(folder) not in p], log


# ------------------------------------------------------------ misconfiguration no retry can fix
@pytest.mark.parametrize("values, named", [
    ({"backend": "ssd_student"}, "needs weights"),
    ({"backend": "onnx"}, "needs weights"),
    ({"backend": "ssd_student", "backend_options": '{"random_init": true, "input_sise": [518, 518]}'},
     "does not know option(s) input_sise"),
    ({"backend": "prior_only", "backend_options": '{"variant": "vits"}'}, "does not know option(s) variant"),
])
def test_backend_errors_no_retry_can_fix_are_configuration_errors(values, named):
    with pytest.raises(ParameterError) as info:
        parse_depth_params(values)
    assert named in str(info.value)
    assert_one_sentence(info.value)


def test_unknown_parameter_names_are_refused_with_the_closest_name():
    from depth_prior_ros.parameters import check_known_names

    with pytest.raises(ParameterError, match=r"no parameter 'camera_heigth'; did you mean 'camera_height'\?"):
        check_known_names(["max_depth", "camera_heigth"], "depth_node")
    # what rclpy and the ROS tools set on every node stays allowed
    check_known_names(["use_sim_time", "start_type_description_service",
                       "qos_overrides./camera/image.subscription.reliability"], "depth_node")


def test_replay_param_with_an_unknown_name_is_one_sentence(tmp_path, capsys):
    from depth_prior_ros.cli import main

    code = main(["replay", str(tmp_path / "bag"), "--out", str(tmp_path / "out"), "--param", "camera_heigth=1.2"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'camera_height'" in err, err
    assert "Traceback" not in err


@pytest.mark.ros
def test_depth_node_with_a_misspelt_parameter_exits_at_start_with_the_closest_name(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    code, log = _run_node_until_exit({"camera_heigth": 1.2}, tmp_path)
    assert code == 2, log
    lines = [line for line in log.splitlines() if "configuration error" in line]
    assert len(lines) == 1 and "did you mean 'camera_height'" in lines[0], log
    assert "Traceback" not in log
