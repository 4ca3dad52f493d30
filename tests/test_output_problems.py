"""Nothing silently wrong (#13.1, #13.5): disagreeing cards, outputs with no valid pixel, networks that
disagree with the prior, and network inputs beyond the card's bounds.

#13.1 repro: a model whose card beside it says metric_depth while the card embedded in the ONNX says
affine_disparity published NaN everywhere with diagnostics OK and replay exit 0 without a word.
#13.5 repro: a 2000x2 image with a short_side 518 card made a 518x518000 network input (6.7 GB).
"""
from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from depth_prior_ros.geometry import pose_from_static
from depth_prior_ros.models import BackendError, create_backend
from depth_prior_ros.models.base import NetworkInputRejected
from depth_prior_ros.models.card import card_path_for
from depth_prior_ros.models.export import export_onnx
from depth_prior_ros.models.preprocess import InputSpec, network_size
from depth_prior_ros.pipeline import DepthPipeline, FrameError

from helpers_models import TINY_DA_CARD, random_image, real_image, tiny_depth_anything, write_card, write_hf_folder
from ros_harness import make_camera


@pytest.fixture(scope="module")
def student_onnx(tmp_path_factory):
    folder = write_hf_folder(tiny_depth_anything(seed=4), tmp_path_factory.mktemp("student") / "hf")
    return export_onnx("ssd_student", str(folder), tmp_path_factory.mktemp("onnx") / "student.onnx",
                       height=56, width=98).onnx_path


@pytest.fixture
def metric_sidecar(student_onnx, tmp_path):
    """The repro: the exported graph (embedded card: affine_disparity) with a card beside it saying metric."""
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(student_onnx.read_bytes())
    card = json.loads(card_path_for(student_onnx).read_text())
    write_card(card_path_for(onnx), dict(card, output_kind="metric_depth"))
    return onnx


def test_the_card_beside_the_graph_wins_and_a_warning_names_both_values(metric_sidecar, caplog):
    with caplog.at_level(logging.WARNING, logger="depth_prior_ros.models.graph_backend"):
        backend = create_backend("onnx", weights=str(metric_sidecar), device="cpu")
    assert backend.output_kind == "metric_depth"
    assert "'metric_depth'" in caplog.text and "'affine_disparity'" in caplog.text and "output_kind" in caplog.text
    assert backend.describe()["card_conflicts"] == backend.card_conflicts and len(backend.card_conflicts) == 1


def test_an_output_with_no_valid_pixel_is_a_problem_not_a_success(metric_sidecar):
    backend = create_backend("onnx", weights=str(metric_sidecar), device="cpu")
    camera = make_camera(160, 48)
    image = real_image(160)
    image = image if image is not None and image.shape[:2] == (48, 160) else random_image(48, 160)
    result = DepthPipeline(backend).process(image, camera, pose_from_static(1.5, math.radians(3.0)))
    assert not np.isfinite(result.depth).any()  # what the repro published...
    assert result.problem == "empty_output"     # ...now said out loud
    ok = DepthPipeline(None).process(image, camera, pose_from_static(1.5, math.radians(3.0)))
    assert ok.problem is None


def test_network_inputs_beyond_the_card_bounds_are_refused_before_anything_is_allocated():
    spec = InputSpec(short_side=518, multiple_of=14)
    with pytest.raises(NetworkInputRejected, match="aspect ratio 1e\\+03:1"):
        network_size(2, 2000, spec)
    with pytest.raises(NetworkInputRejected, match="max_input_pixels 200000"):
        network_size(900, 1600, InputSpec(short_side=518, multiple_of=14, max_input_pixels=200_000))
    assert network_size(375, 1242, spec) == (518, 1722)  # KITTI stays well inside the defaults
    assert issubclass(NetworkInputRejected, BackendError)


def test_pipeline_drops_such_a_frame_with_its_reason(tmp_path):
    folder = write_hf_folder(tiny_depth_anything(seed=1), tmp_path / "hf", card=dict(TINY_DA_CARD, short_side=518))
    backend = create_backend("ssd_student", weights=str(folder), device="cpu")
    pipeline = DepthPipeline(backend)
    with pytest.raises(FrameError) as err:
        pipeline.process(random_image(2, 2000), make_camera(2000, 2), pose_from_static(1.5, 0.0))
    assert err.value.reason == "network_input_rejected" and "max_aspect_ratio" in str(err.value)
    assert pipeline.backend_failures == 0  # the network is fine; the frame was not


@pytest.mark.parametrize("card, message", [
    ({"max_input_pixels": 0}, "max_input_pixels"), ({"max_aspect_ratio": -1}, "max_aspect_ratio"),
    ({"layout": "CHW"}, "layout"), ({"channel_order": "rgba"}, "channel_order"), ({"scale": float("nan")}, "scale"),
    ({"output_index": True}, "output_index")])
def test_bad_graph_card_fields_are_one_sentence(card, message, tmp_path):
    from depth_prior_ros.models.card import read_card

    path = write_card(tmp_path / "m.card.json", dict(TINY_DA_CARD, **card))
    with pytest.raises(BackendError, match=message) as err:
        read_card(path)
    assert "\n" not in str(err.value)


def test_torch_backends_take_a_card_option_too(tmp_path):
    folder = write_hf_folder(tiny_depth_anything(seed=2), tmp_path / "hf")
    elsewhere = write_card(tmp_path / "elsewhere.card.json", dict(TINY_DA_CARD, short_side=28))
    backend = create_backend("ssd_student", weights=str(folder), card=str(elsewhere), device="cpu")
    assert backend.card.path == str(elsewhere) and backend.spec.short_side == 28
