"""The issue-14 report's node stage: which backends it replays and with which node parameters."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from depth_prior_ros.replay.config import ReplayConfig, node_settings  # noqa: E402
from depth_prior_training.kitti_report import node_backends, teacher_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEGMENTATION_KEYS = {"segmentation_weights", "segmentation_card"}


def test_without_a_segmenter_both_networks_run_on_the_node_defaults(tmp_path):
    specs = node_backends(tmp_path / "teacher.onnx", tmp_path / "student.safetensors", None)
    assert [(s.display, s.name) for s in specs] == [("teacher", "onnx"), ("student", "ssd_student")]
    config = ReplayConfig(backends=specs)
    for spec in specs:
        assert spec.params == {}  # the shipped defaults: nothing but the backend and its weights
        settings = node_settings(config, spec, check_files=False)
        assert settings.segmentation_weights == ""
        assert settings.pipeline.fusion == "confidence"


def test_with_the_configs_segmenter_the_same_networks_run_again_with_only_the_segmenter_set(tmp_path):
    segmenter = teacher_config(tmp_path / "drive", tmp_path)["data"]["road_segmenter"]
    assert Path(segmenter["card"]).is_file()  # the card ships in the repository; the weights live in ../shared
    specs = node_backends(tmp_path / "teacher.onnx", tmp_path / "student.safetensors", segmenter)
    assert [s.display for s in specs] == ["teacher", "student", "teacher_segmenter", "student_segmenter"]
    config = ReplayConfig(backends=specs)
    defaults = {s.display: node_settings(config, s, check_files=False) for s in specs}
    by_label = {s.display: s for s in specs}
    for name in ("teacher", "student"):
        plain, segmented = by_label[name], by_label[name + "_segmenter"]
        assert plain.name == segmented.name and plain.weights == segmented.weights
        assert set(segmented.params) == SEGMENTATION_KEYS
        assert defaults[name + "_segmenter"].segmentation_weights == segmenter["weights"]
        # every other node setting is the shipped default
        assert defaults[name + "_segmenter"].pipeline == defaults[name].pipeline


def test_the_segmenter_variant_loads_the_real_segmenter(tmp_path):
    segmenter = teacher_config(tmp_path / "drive", tmp_path)["data"]["road_segmenter"]
    if not Path(segmenter["weights"]).is_file():
        pytest.skip(f"road segmenter weights {segmenter['weights']} are absent (they live beside the repository)")
    spec = node_backends(tmp_path / "teacher.onnx", tmp_path / "student.safetensors", segmenter)[2]
    settings = node_settings(ReplayConfig(backends=[spec]), spec, check_files=False)
    road = settings.segmenter().segment(np.zeros((375, 1242, 3), np.uint8)).road
    assert road.shape == (375, 1242) and road.dtype == bool
