"""ONNX export with parity against PyTorch, and the onnx backend (ONNX Runtime sessions)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from depth_prior_ros.cli import main as cli_main
from depth_prior_ros.models import BackendError, create_backend
from depth_prior_ros.models.export import export_onnx, parity
from depth_prior_ros.models.graph_runtime import PROVIDER_ORDER, choose_providers

from helpers_models import random_image, real_image, tiny_depth_anything, write_hf_folder, write_jasmine_folder

TOLERANCE = 1e-4  # acceptance: ONNX Runtime vs PyTorch, max relative error on CPU


@pytest.fixture(scope="module")
def student_folder(tmp_path_factory):
    return write_hf_folder(tiny_depth_anything(seed=4), tmp_path_factory.mktemp("student") / "hf")


@pytest.fixture(scope="module")
def student_onnx(student_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "student.onnx"
    return export_onnx("ssd_student", str(student_folder), out, height=56, width=98)


def test_provider_order_filtered_by_availability():
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]) == \
        list(PROVIDER_ORDER)
    assert choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], device="cpu") == ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="no GPU provider"):
        choose_providers(["CPUExecutionProvider"], device="cuda")
    with pytest.raises(BackendError, match="has no TensorrtExecutionProvider"):
        choose_providers(["CPUExecutionProvider"], requested=["TensorrtExecutionProvider"])


def test_parity_measure():
    ref = np.array([0.0, 10.0, -20.0])
    assert parity(ref, ref + np.array([0.0, 0.002, 0.0])) == pytest.approx((0.002, 0.002 / 20))


def test_student_export_parity_and_card(student_onnx):
    report = student_onnx
    assert report.max_rel_error <= TOLERANCE, report.summary()
    card = json.loads(report.card_path.read_text())
    assert report.card_path.name == "student.card.json"
    assert card["input_size"] == [56, 98] and card["output_kind"] == "affine_disparity"
    assert card["options"]["onnx"]["exported_from"] == "ssd_student"


def test_onnx_backend_matches_torch_backend_on_real_image(student_folder, student_onnx):
    image = real_image(160)
    if image is None:
        image = random_image(48, 160)
    onnx_backend = create_backend("onnx", weights=str(student_onnx.onnx_path), device="cpu")
    assert onnx_backend.describe()["providers"] == ["CPUExecutionProvider"]
    torch_backend = create_backend("ssd_student", weights=str(student_folder), device="cpu", input_size=[56, 98])
    got, ref = onnx_backend.predict(image), torch_backend.predict(image)
    assert got.kind == ref.kind == "affine_disparity" and got.values.shape == image.shape[:2]
    assert parity(ref.values, got.values)[1] <= TOLERANCE
    # a batch of cameras on a batch-1 graph runs in chunks, results in order
    small = random_image(40, 80, 7)
    batch = onnx_backend.predict_batch([image, small])
    assert batch[1].values.shape == (40, 80) and np.allclose(batch[0].values, got.values)


def test_embedded_card_is_used_when_the_card_file_is_missing(student_onnx, tmp_path):
    copy = tmp_path / "lonely.onnx"
    copy.write_bytes(student_onnx.onnx_path.read_bytes())
    backend = create_backend("onnx", weights=str(copy), device="cpu")
    assert backend.card.input_size == (56, 98) and "embedded" in backend.describe()["card_path"]


def test_onnx_backend_errors(tmp_path):
    with pytest.raises(BackendError, match="existing .onnx"):
        create_backend("onnx", weights=str(tmp_path / "missing.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    (tmp_path / "junk.card.json").write_text(json.dumps({"architecture": "depth_anything"}))
    with pytest.raises(BackendError, match="cannot load"):
        create_backend("onnx", weights=str(junk), device="cpu")


def test_jasmine_export_parity(tmp_path):
    folder = write_jasmine_folder(tmp_path / "Jasmine", seed=5)
    report = export_onnx("jasmine", str(folder), tmp_path / "jasmine.onnx")
    assert report.max_rel_error <= TOLERANCE, report.summary()
    assert report.input_size == (32, 64)
    backend = create_backend("onnx", weights=str(report.onnx_path), device="cpu")
    assert backend.output_kind == "scale_depth"
    pred = backend.predict(random_image(40, 90, 3))
    assert pred.values.shape == (40, 90) and 0 <= pred.values.min() and pred.values.max() <= 3


def test_export_cli_prints_errors(student_folder, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    code = cli_main(["export", "--backend", "ssd_student", "--weights", str(student_folder), "--out", str(out),
                     "--height", "56", "--width", "70"])
    text = capsys.readouterr().out
    assert code == 0 and out.is_file() and (tmp_path / "cli.card.json").is_file()
    assert "max abs error" in text and "max relative error" in text
    code = cli_main(["export", "--backend", "ssd_student", "--weights", str(student_folder), "--out", str(out),
                     "--height", "50", "--width", "70"])
    assert code == 2 and "multiple of 14" in capsys.readouterr().err
