"""The real network backends (tiny random configurations) end to end through DepthPipeline on a KITTI frame."""
from __future__ import annotations

import json

import numpy as np
import pytest

from depth_prior_ros.geometry import PinholeCamera, pose_from_static
from depth_prior_ros.models import BackendError, available_backends, create_backend
from depth_prior_ros.models.export import export_onnx
from depth_prior_ros.models.registry import NO_NETWORK
from depth_prior_ros.pipeline import DepthPipeline, PipelineConfig

from helpers_errors import assert_one_sentence
from helpers_models import KITTI_IMAGE, tiny_depth_anything, write_hf_folder, write_jasmine_folder


@pytest.fixture(scope="module")
def kitti_frame(shared_data):
    """KITTI 000008 at a quarter of its size, its intrinsics scaled, camera 1.65 m up pitched 0.7 deg."""
    import cv2

    calib = json.loads((shared_data / "kitti_000008" / "calib.json").read_text())
    P = np.array(calib["projection_P2_3x4"])
    w, h = calib["image_size_wh"]
    camera = PinholeCamera(P[:, :3], w, h).resized(w // 4, h // 4)
    bgr = cv2.resize(cv2.imread(str(KITTI_IMAGE)), (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), camera, pose_from_static(1.65, np.radians(0.7))


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline_models")
    student = write_hf_folder(tiny_depth_anything(seed=8), root / "student")
    jasmine = write_jasmine_folder(root / "jasmine", seed=8)
    onnx = export_onnx("ssd_student", str(student), root / "student.onnx", height=28, width=98).onnx_path
    return {
        "ssd_student": create_backend("ssd_student", weights=str(student), device="cpu"),
        "jasmine": create_backend("jasmine", weights=str(jasmine), device="cpu"),
        "onnx": create_backend("onnx", weights=str(onnx), device="cpu"),
    }


@pytest.mark.parametrize("name", ["ssd_student", "jasmine", "onnx"])
def test_backend_runs_through_the_pipeline(name, backends, kitti_frame):
    image, camera, pose = kitti_frame
    backend = backends[name]
    backend.warmup(camera.width, camera.height)
    pipe = DepthPipeline(backend, PipelineConfig(max_depth=80.0))
    result = pipe.process(image, camera, pose)
    # The network ran on the real frame and handed the pipeline a full-size prediction of its kind.
    assert result.prediction is not None
    assert result.prediction.values.shape == image.shape[:2]
    assert result.prediction.kind == backend.output_kind
    assert result.backend_error is None or result.backend_error.startswith("alignment failed")
    assert result.timings_ms["network"] > 0
    # Whatever the (random) weights, the output is a metric depth image of the camera's size.
    assert result.depth.shape == image.shape[:2] and result.depth.dtype == np.float32
    finite = np.isfinite(result.depth)
    assert finite.any()
    assert np.all((result.depth[finite] >= 0.5) & (result.depth[finite] <= 80.0))
    assert result.source in ("network", "prior")


def test_no_network_is_the_absence_of_a_backend(backends):
    assert NO_NETWORK == "prior_only" and NO_NETWORK in available_backends()
    assert create_backend(NO_NETWORK) is None
    assert create_backend(NO_NETWORK, weights="", device="cpu", dtype="fp32") is None
    for options in ({"weights": "/models/x.pth"}, {"colour": "red"}):
        with pytest.raises(BackendError) as err:
            create_backend(NO_NETWORK, **options)
        assert_one_sentence(err.value)
    assert all(isinstance(b.output_kind, str) for b in backends.values())
