"""Pre/post-processing helpers and model cards (no network weights involved)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from depth_prior_ros.models import BackendError
from depth_prior_ros.models.card import (ModelCard, card_path_for, default_card, find_card, load_card, read_card,
                                         write_card)
from depth_prior_ros.models.preprocess import (IMAGENET_MEAN, IMAGENET_STD, InputSpec, check_image, network_size,
                                               normalize, postprocess, preprocess, resolve_device, resolve_dtype)


@pytest.mark.parametrize("hw, spec, expected", [
    # nuScenes 1600x900 through Depth Anything's rule: shorter side 518, multiple of the 14 px patch.
    ((900, 1600), InputSpec(short_side=518, multiple_of=14), (518, 924)),
    # KITTI 1242x375: aspect kept, both sides multiples of 14.
    ((375, 1242), InputSpec(short_side=518, multiple_of=14), (518, 1722)),
    # native size rounded to the latent multiple
    ((101, 130), InputSpec(multiple_of=8), (104, 128)),
    # fixed size wins over everything
    ((375, 1242), InputSpec(input_size=(320, 1024), short_side=518, multiple_of=64), (320, 1024)),
])
def test_network_size_rules(hw, spec, expected):
    size = network_size(*hw, spec)
    assert size == expected
    assert size[0] % max(1, spec.multiple_of) == 0 and size[1] % max(1, spec.multiple_of) == 0


def test_keep_aspect_resize_preserves_aspect_within_one_patch():
    h, w = network_size(900, 1600, InputSpec(short_side=518, multiple_of=14))
    assert abs(w / h - 1600 / 900) < 14 / h


def test_normalisation_imagenet_and_symmetric():
    pixels = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    imagenet = normalize(pixels, IMAGENET_MEAN, IMAGENET_STD)
    expected = [(v - m) / s for v, m, s in zip([0.0, 0.5, 1.0], IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(imagenet[0, :, 0, 0], torch.tensor(expected))
    sym = normalize(pixels, (0.5,) * 3, (0.5,) * 3)
    assert torch.allclose(sym[0, :, 1, 1], torch.tensor([-1.0, 0.0, 1.0]))


def test_preprocess_shape_dtype_and_range():
    image = np.full((90, 160, 3), 255, dtype=np.uint8)
    out = preprocess([image, image], InputSpec(short_side=56, multiple_of=14, mean=(0.5,) * 3, std=(0.5,) * 3), "cpu")
    assert out.shape == (2, 3, 56, 98) and out.dtype == torch.float32
    assert torch.allclose(out, torch.ones_like(out))  # white -> +1 in [-1, 1] normalisation


def test_postprocess_back_to_input_size_is_bilinear():
    # A horizontal ramp stays a ramp (monotone, same range) after bilinear upsampling.
    ramp = torch.linspace(0, 1, 16).view(1, 1, 16).expand(2, 8, 16)
    out = postprocess(ramp, (24, 48))
    assert out.shape == (2, 24, 48) and out.dtype == np.float32
    assert np.all(np.diff(out[0, 5]) >= -1e-6)
    assert out.min() >= 0 and out.max() <= 1
    assert np.allclose(postprocess(torch.full((1, 1, 4, 4), 3.0), (9, 7)), 3.0)


def test_check_image_one_sentence_errors():
    with pytest.raises(BackendError, match="uint8"):
        check_image(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(BackendError, match=r"\(H, W, 3\)"):
        check_image(np.zeros((4, 4), dtype=np.uint8))


def test_device_and_dtype_selection(caplog):
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(BackendError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA"):
            resolve_device("cuda:0")
    with caplog.at_level(logging.INFO, logger="depth_prior_ros.models.preprocess"):
        assert resolve_dtype("fp16", torch.device("cpu")) == torch.float32
        assert resolve_dtype("bf16", torch.device("cpu")) == torch.float32
    assert "fp32" in caplog.text
    assert resolve_dtype("fp16", torch.device("cuda")) == torch.float16
    with pytest.raises(BackendError, match="unknown dtype"):
        resolve_dtype("int8", torch.device("cpu"))


# ------------------------------------------------------------------------------------------ cards

def test_card_roundtrip_and_lookup_rules(tmp_path):
    card = default_card("depth_anything", "vitb").replace(training_data="SSD day/night/rain", source="unit test")
    onnx = tmp_path / "student.onnx"
    onnx.write_bytes(b"")
    written = write_card(card, card_path_for(onnx))
    assert written.name == "student.card.json"  # M.onnx -> M.card.json
    again = find_card(onnx)
    assert again is not None and again.to_dict() == card.to_dict() and again.path == str(written)

    folder = tmp_path / "hf"
    folder.mkdir()
    assert card_path_for(folder) == folder / "card.json"
    (folder / "card.yaml").write_text("architecture: jasmine\ninput_size: [320, 1024]\noutput_kind: scale_depth\n"
                                      "normalization: {mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}\n")
    yaml_card = find_card(folder)
    assert yaml_card.architecture == "jasmine" and yaml_card.input_size == (320, 1024)
    assert yaml_card.input_spec.mean == (0.5, 0.5, 0.5)


def test_card_defaults_are_logged(tmp_path, caplog):
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="depth_prior_ros.models.card"):
        card = load_card(weights, "depth_anything")
    assert card.path is None and card.short_side == 518 and card.multiple_of == 14
    assert "no model card" in caplog.text
    jasmine = default_card("jasmine")
    assert jasmine.input_size == (320, 1024) and jasmine.output_kind == "scale_depth"


@pytest.mark.parametrize("field, value, message", [
    ("output_kind", "disparity", "output_kind"),
    ("input_size", [320], "input_size"),
    ("multiple_of", 0, "multiple_of"),
    ("normalization", {"mean": [0.5, 0.5], "std": [1, 1, 1]}, "normalization.mean"),
])
def test_bad_card_field_names_file_and_field(tmp_path, field, value, message):
    data = default_card("depth_anything").to_dict()
    data[field] = value
    path = tmp_path / "m.card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BackendError) as err:
        read_card(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind, offset, message", [
    ("affine_disparity", 0.01, "must be scale_depth or metric_depth"),
    ("scale_depth", 0.0, "options.disparity_offset must be a positive number"),
    ("scale_depth", "0.01", "options.disparity_offset must be a positive number"),
])
def test_bad_disparity_offset_is_refused_in_one_sentence(tmp_path, kind, offset, message):
    data = dict(default_card("depth_anything").to_dict(), output_kind=kind, options={"disparity_offset": offset})
    path = tmp_path / "m.card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BackendError) as err:
        read_card(path)
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


def test_disparity_offset_turns_disparity_into_depth():
    from depth_prior_ros.models.preprocess import disparity_to_depth, predict_by_size

    disparity = np.array([[0.0, 0.09, -1e-4, np.nan]], dtype=np.float32)
    depth = disparity_to_depth(disparity, 0.01)
    assert depth.dtype == np.float32
    assert np.allclose(depth[0, :3], [100.0, 10.0, 100.0]) and np.isnan(depth[0, 3])
    image = np.zeros((32, 32, 3), np.uint8)
    plain, inverted = (predict_by_size([image], lambda ims, size: disparity[None], "scale_depth", offset)[0]
                       for offset in (None, 0.01))
    assert np.array_equal(plain.values, disparity, equal_nan=True)
    assert np.allclose(inverted.values[0, :3], [100.0, 10.0, 100.0]) and not inverted.valid[0, 3]


def test_card_for_other_architecture_is_refused(tmp_path):
    weights = tmp_path / "m.safetensors"
    write_card(ModelCard(architecture="jasmine"), card_path_for(weights))
    with pytest.raises(BackendError, match="architecture 'jasmine'"):
        load_card(weights, "depth_anything")
