"""Node parameters: the defaults of the interface spec, parsing into typed settings, one-sentence errors."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depth_prior_ros.geometry import pose_from_static
from depth_prior_ros.parameters import (DEPTH_NODE, PRIOR_NODE, SPEC as PARAM_SPEC, ParameterError, node_defaults,
                                        parse_depth_params, parse_prior_params)

DEPTH_NODE_DEFAULTS, PRIOR_NODE_DEFAULTS = node_defaults(DEPTH_NODE), node_defaults(PRIOR_NODE)
PARAMETER_DESCRIPTIONS = {p.name: p.description for p in PARAM_SPEC}

# The node interface as first shipped, written out: renaming or removing one of these, or changing its
# default, must be deliberate (new parameters are added to depth_prior_ros.parameters alone).
SPEC = {
    "backend": "prior_only", "weights": "", "device": "auto", "dtype": "fp16", "backend_options": "{}",
    "ground_frame": "base_footprint", "use_tf": True, "tf_timeout": 0.05, "camera_height": 1.5,
    "camera_pitch_deg": 0.0, "camera_roll_deg": 0.0, "camera_yaw_deg": 0.0, "min_depth": 0.5,
    "max_depth": 80.0, "prior_mode": "scene", "use_road_mask": False, "inpaint": True,
    "align_inlier_threshold": 0.1, "align_max_samples": 4000, "temporal_filter": True, "filter_alpha": 0.3,
    "filter_gate": 0.25, "filter_reset_after": 5, "output_encoding": "32FC1", "publish_colored": True,
    "publish_points": True, "points_decimation": 4, "publish_prior": True, "qos_reliability": "best_effort",
    "qos_depth": 1, "diagnostics_period": 1.0,
}


def test_defaults_follow_the_interface_spec():
    assert {k: DEPTH_NODE_DEFAULTS.get(k) for k in SPEC} == SPEC
    assert all(type(DEPTH_NODE_DEFAULTS[k]) is type(v) for k, v in SPEC.items())  # 1.0 stays a float
    assert set(PRIOR_NODE_DEFAULTS) < set(DEPTH_NODE_DEFAULTS)
    assert all(PRIOR_NODE_DEFAULTS[k] == DEPTH_NODE_DEFAULTS[k] for k in PRIOR_NODE_DEFAULTS)
    assert not {"backend", "weights", "output_encoding", "publish_points"} & set(PRIOR_NODE_DEFAULTS)
    assert set(PARAMETER_DESCRIPTIONS) == set(DEPTH_NODE_DEFAULTS)


def test_params_import_without_rclpy():
    code = ("import sys; import depth_prior_ros.parameters as p, depth_prior_ros.ros.params; "
            "assert 'rclpy' not in sys.modules and 'torch' not in sys.modules; print(len(p.node_defaults(p.DEPTH_NODE)))")
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=src))
    assert out.stdout.strip() == str(len(DEPTH_NODE_DEFAULTS))


def test_defaults_parse_into_the_pipeline_config():
    s = parse_depth_params({})
    cfg = s.pipeline
    assert (cfg.min_depth, cfg.max_depth, cfg.prior_mode, cfg.inpaint) == (0.5, 80.0, "scene", True)
    assert (cfg.align.inlier_threshold, cfg.align.max_samples) == (0.1, 4000)
    assert (cfg.align.min_depth, cfg.align.max_depth) == (0.5, 80.0)
    assert (cfg.temporal_filter, cfg.filter_alpha, cfg.filter_gate, cfg.filter_reset_after) == (True, 0.3, 0.25, 5)
    assert s.backend_kwargs() == {"weights": "", "device": "auto", "dtype": "fp16"}
    assert (s.qos.reliability, s.qos.depth, s.diagnostics_period) == ("best_effort", 1, 1.0)
    assert (s.output_encoding, s.points_decimation, s.publish_prior) == ("32FC1", 4, True)
    np.testing.assert_allclose(s.pose.static_pose(), pose_from_static(1.5))
    prior = parse_prior_params({"prior_mode": "ground", "inpaint": False})
    assert (prior.pipeline.prior_mode, prior.pipeline.inpaint) == ("ground", False)


def test_values_are_parsed_and_integers_accepted_for_floats():
    s = parse_depth_params({"camera_pitch_deg": 2, "camera_height": 2, "max_depth": 50, "filter_reset_after": 3.0,
                            "backend_options": '{"input_width": 784}', "output_encoding": "16UC1",
                            "qos_reliability": "reliable", "qos_depth": 5, "device": "cuda:1", "dtype": "bf16"},
                           check_files=False)  # prior_only refuses input_width at start (test_safety_params)
    assert isinstance(s.pose.camera_pitch_deg, float) and s.pose.camera_height == 2.0
    assert s.pipeline.max_depth == 50.0 and s.pipeline.filter_reset_after == 3
    assert s.backend_kwargs() == {"weights": "", "device": "cuda:1", "dtype": "bf16", "input_width": 784}
    T = s.pose.static_pose()
    np.testing.assert_allclose(T, pose_from_static(2.0, math.radians(2.0)))


def test_weights_path_must_exist_and_is_expanded(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"0")
    assert parse_depth_params({"backend": "ssd_student", "weights": str(weights)}).weights == str(weights)
    with pytest.raises(ParameterError, match=r"parameter 'weights': '.*missing.onnx' does not exist"):
        parse_depth_params({"weights": str(tmp_path / "missing.onnx")})
    assert parse_depth_params({"weights": str(tmp_path / "missing.onnx")}, check_files=False)


@pytest.mark.parametrize("values, name", [
    ({"backend": "midas_xxl"}, "backend"),
    ({"backend_options": "{not json"}, "backend_options"),
    ({"backend_options": "[1, 2]"}, "backend_options"),
    ({"backend_options": '{"device": "cpu"}'}, "backend_options"),
    ({"device": "gpu"}, "device"),
    ({"dtype": "int8"}, "dtype"),
    ({"min_depth": 90.0}, "min_depth"),
    ({"min_depth": 0.0}, "min_depth"),
    ({"camera_height": -1.0}, "camera_height"),
    ({"camera_pitch_deg": float("nan")}, "camera_pitch_deg"),
    ({"camera_pitch_deg": "2"}, "camera_pitch_deg"),
    ({"use_tf": 1}, "use_tf"),
    ({"qos_depth": 1.5}, "qos_depth"),
    ({"qos_depth": 0}, "qos_depth"),
    ({"qos_reliability": "fast"}, "qos_reliability"),
    ({"prior_mode": "sky"}, "prior_mode"),
    ({"output_encoding": "16UC3"}, "output_encoding"),
    ({"points_decimation": 0}, "points_decimation"),
    ({"filter_alpha": 0.0}, "filter_alpha"),
    ({"align_max_samples": 10}, "align_max_samples"),
    ({"diagnostics_period": 0.0}, "diagnostics_period"),
    ({"ground_frame": " "}, "ground_frame"),
])
def test_bad_values_fail_with_one_sentence_naming_the_parameter(values, name):
    with pytest.raises(ParameterError) as info:
        parse_depth_params(values)
    text = str(info.value)
    assert f"'{name}'" in text and "\n" not in text


def test_prior_node_ignores_depth_only_parameters_and_checks_its_own():
    assert parse_prior_params({"backend": "anything"}).pipeline.prior_mode == "scene"
    with pytest.raises(ParameterError, match="'camera_height'"):
        parse_prior_params({"camera_height": 0.0})


def test_qos_profiles_follow_the_parameters():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from rclpy.qos import QoSHistoryPolicy, QoSReliabilityPolicy

    from depth_prior_ros.parameters import QosSettings
    from depth_prior_ros.ros.qos import publisher_qos, subscription_qos

    default = subscription_qos(parse_depth_params({}).qos)
    assert default.reliability == QoSReliabilityPolicy.BEST_EFFORT and default.depth == 1
    assert default.history == QoSHistoryPolicy.KEEP_LAST
    reliable = subscription_qos(QosSettings("reliable", 5))
    assert reliable.reliability == QoSReliabilityPolicy.RELIABLE and reliable.depth == 5
    assert publisher_qos().reliability == QoSReliabilityPolicy.RELIABLE


def test_pose_source_says_which_is_used_and_why():
    from depth_prior_ros.ros.diagnostics import WARN, DiagnosticReport
    from depth_prior_ros.ros.pose_source import StaticPoseSource, import_tf2, import_tf_message, make_pose_source

    pose = parse_prior_params({"use_tf": False, "camera_height": 1.2, "camera_pitch_deg": 3.0}).pose
    off = make_pose_source(None, pose)
    assert isinstance(off, StaticPoseSource) and off.kind == "static"
    assert "use_tf is false" in off.description and "height 1.200 m, pitch 3.00 deg" in off.description
    np.testing.assert_allclose(off.lookup("cam", None), pose_from_static(1.2, math.radians(3.0)))
    if import_tf2() is None and import_tf_message() is None:  # neither tf2_ros nor tf2_msgs: static, and says so
        fallback = make_pose_source(None, parse_prior_params({"use_tf": True}).pose)
        assert fallback.kind == "static" and "neither tf2_ros nor tf2_msgs" in fallback.description
    else:  # the same fallback as it would be built there
        fallback = StaticPoseSource(pose, "use_tf is true but no tf", warning="use_tf is true but no tf")
    report = DiagnosticReport()
    fallback.report(report)
    assert report.level == WARN  # use_tf asked for and impossible: never silent


def test_generated_files_follow_the_spec():
    from depth_prior_ros.parameters import generated_files

    stale = [path.name for path, text in generated_files(Path(__file__).resolve().parents[1]).items()
             if path.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} are stale: run python -m depth_prior_ros.parameters --write"


def test_core_config_defaults_equal_the_spec():
    from depth_prior_ros.align import AlignConfig
    from depth_prior_ros.pipeline import PipelineConfig

    core = {"pipeline": PipelineConfig(), "align": AlignConfig()}
    for p in PARAM_SPEC:
        section, field_name = p.target.split(".")
        if section in core:
            assert getattr(core[section], field_name) == p.default, f"{p.name}: core default differs from the spec"


def test_tf_lookups_warn_then_error_when_the_transform_stays_missing():
    """use_tf with no transform: WARN while lookups fail, ERROR once they have failed TF_ERROR_AFTER_S."""
    from depth_prior_ros.ros.diagnostics import ERROR, OK, WARN, DiagnosticReport
    from depth_prior_ros.ros.pose_source import TF_ERROR_AFTER_S, PoseUnavailable, _TfLookups

    source = _TfLookups(parse_prior_params({}).pose, "test")

    def level() -> int:
        report = DiagnosticReport()
        source.report(report)
        return report.level

    assert level() == OK  # started, no image asked for a pose yet
    with pytest.raises(PoseUnavailable, match="empty frame_id"):
        source._check("", None)
    assert level() == WARN
    source._failing_since -= TF_ERROR_AFTER_S + 1  # the failures have persisted that long
    assert level() == ERROR
    source._failed_at -= TF_ERROR_AFTER_S + 1  # ... but no frame asked since: nothing to report now
    assert level() == OK
    with pytest.raises(PoseUnavailable):
        source._check("", None)
    source._pose("cam", pose_from_static(1.5, 0.05))  # a transform arrives: healthy again
    assert level() == OK
