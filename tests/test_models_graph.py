"""The graph runtimes on the real networks of ../shared/models: LiteRT (PyDNet, FastDepth int8) and
OpenVINO (road segmentation), each backend's raw output against a direct runtime call, the
preprocessing against the card on a known image, and the runtime chosen by file type."""
from __future__ import annotations

import json

import numpy as np
import pytest

from depth_prior_ros.models import BackendError, create_backend
from depth_prior_ros.models.graph_runtime import dequantize, open_runtime, quantize, runtime_name
from depth_prior_ros.models.segmentation import load_segmenter

from helpers_models import REPO, real_image

SHARED_MODELS = REPO.parent / "shared" / "models"
CARDS = REPO / "tests" / "cards"
PYDNET = SHARED_MODELS / "pydnet_kitti_tflite" / "pydnet_model.tflite"
FASTDEPTH = SHARED_MODELS / "fastdepth_nyu_int8_tflite" / "fast_depth_224.tflite"
ROAD = SHARED_MODELS / "road_segmentation_adas_0001" / "road-segmentation-adas-0001.xml"
NETWORKS = {  # backend, weights, card
    "pydnet": ("tflite", PYDNET, CARDS / "pydnet_model.card.json"),
    "fastdepth": ("tflite", FASTDEPTH, CARDS / "fast_depth_224.card.json"),
}

needs_models = pytest.mark.skipif(not SHARED_MODELS.is_dir(),
                                  reason=f"real networks not found at {SHARED_MODELS} (they live beside the repo)")


@pytest.fixture(scope="module")
def backends():
    return {name: create_backend(backend, weights=str(weights), card=str(card), device="cpu", threads=2)
            for name, (backend, weights, card) in NETWORKS.items()}


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter(str(ROAD), str(CARDS / "road-segmentation-adas-0001.card.json"), threads=2)


def direct_litert(path, tensor: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def direct_openvino(path, tensor: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.array(compiled(tensor)[compiled.outputs[0]])


@needs_models
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_raw_output_equals_a_direct_litert_call(backends, name):
    backend, image = backends[name], real_image(320)
    tensor = backend.input_tensor([image])
    ours, theirs = backend.run_network(tensor), direct_litert(NETWORKS[name][1], tensor)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert np.max(np.abs(ours.astype(np.float64) - theirs)) <= 1e-5
    prediction = backend.predict(image)
    assert prediction.values.shape == image.shape[:2] and np.isfinite(prediction.values).all()


@needs_models
def test_raw_output_equals_a_direct_openvino_call(segmenter):
    image = real_image(320)
    tensor = segmenter.model.input_tensor([image])
    ours, theirs = segmenter.model.run(tensor), direct_openvino(ROAD, tensor)
    assert ours.shape == theirs.shape == (1, 4, 512, 896)
    assert np.max(np.abs(ours - theirs)) <= 1e-5


def known_image(height: int, width: int) -> np.ndarray:
    """Channels that differ (R = column ramp, G = row ramp, B = constant 200): any swap or transpose shows."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols * 255 // max(width - 1, 1), rows * 255 // max(height - 1, 1),
                     np.full((height, width), 200)], axis=-1).astype(np.uint8)


@needs_models
def test_preprocessing_follows_each_card(backends, segmenter):
    # At the network's own size no resize happens: every value is the card's arithmetic on the pixels.
    pydnet = backends["pydnet"]  # NHWC, RGB, scale 1/255, float
    image = known_image(512, 512)
    tensor = pydnet.input_tensor([image])
    assert tensor.shape == (1, 512, 512, 3) and tensor.dtype == np.float32
    assert np.allclose(tensor[0], image / 255.0, atol=1e-6)
    fast = backends["fastdepth"]  # NHWC, RGB, uint8 input quantised with the graph's (1/255, 0)
    image = known_image(224, 224)
    tensor = fast.input_tensor([image])
    assert tensor.dtype == np.uint8 and np.array_equal(tensor[0], image)
    image = known_image(512, 896)  # NCHW, BGR, scale 1, no normalisation
    tensor = segmenter.model.input_tensor([image])
    assert tensor.shape == (1, 3, 512, 896) and np.allclose(tensor[0], image[..., ::-1].transpose(2, 0, 1))
    # A camera-sized image is squashed to the card's size, keeping left-right and top-bottom.
    tensor = pydnet.input_tensor([known_image(375, 1242)])[0]
    assert tensor.shape == (512, 512, 3)
    assert tensor[:, 0, 0].mean() < 0.01 and tensor[:, -1, 0].mean() > 0.99  # red ramps left to right
    assert tensor[0, :, 1].mean() < 0.01 and tensor[-1, :, 1].mean() > 0.99  # green ramps top to bottom
    assert np.allclose(tensor[..., 2], 200 / 255, atol=1e-5)


@needs_models
def test_fastdepth_output_is_dequantised_to_metres(backends):
    fast = backends["fastdepth"]
    info = fast.runtime.outputs[0]
    assert info.dtype == np.uint8 and info.quantization == pytest.approx((0.0717, 0), abs=1e-4)
    raw = fast.run_network(fast.input_tensor([real_image(320)]))
    assert np.allclose(fast.depth_map(raw)[0], raw[0, ..., 0] * info.quantization[0])
    assert fast.output_kind == "metric_depth"


def test_quantisation_round_trip():
    from depth_prior_ros.models.graph_runtime import TensorInfo

    info = TensorInfo("x", (1, 4), np.dtype(np.uint8), (0.5, 10))
    q = quantize(np.array([[-10.0, 0.0, 1.0, 200.0]]), info)
    assert q.dtype == np.uint8 and q.tolist() == [[0, 10, 12, 255]]  # clipped at both ends
    assert dequantize(q, info).tolist() == [[-5.0, 0.0, 1.0, 122.5]]


def test_runtime_by_file_type_and_one_sentence_errors(tmp_path):
    assert runtime_name("m.onnx") == "onnxruntime" and runtime_name("m.tflite") == "litert"
    assert runtime_name("m.xml") == "openvino"
    with pytest.raises(BackendError, match="not a graph file"):
        runtime_name("m.pth")
    lonely = tmp_path / "m.xml"
    lonely.write_text("<net/>")
    with pytest.raises(BackendError, match=r"needs its weights file m\.bin"):
        open_runtime(lonely)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    with pytest.raises(BackendError, match="LiteRT cannot load") as err:
        open_runtime(junk)
    assert "\n" not in str(err.value)
    with pytest.raises(BackendError, match=r"needs an existing \.tflite file"):
        create_backend("tflite", weights=str(tmp_path / "m.onnx"))
    with pytest.raises(BackendError, match="providers"):
        open_runtime(junk, providers=["CPUExecutionProvider"])


def test_missing_runtime_package_is_one_sentence(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError("No module named 'ai_edge_litert'")
        return real_import(name, *args, **kwargs)

    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    monkeypatch.setattr(builtins, "__import__", no_litert)
    with pytest.raises(BackendError, match=r"runs through litert, which is not installed \(pip install ai-edge-litert"):
        open_runtime(model)


@needs_models
def test_card_option_wins_and_a_segmentation_card_is_refused_for_depth(tmp_path):
    card = json.loads((CARDS / "pydnet_model.card.json").read_text())
    named = tmp_path / "elsewhere.json"
    named.write_text(json.dumps(dict(card, output_channel=1)))
    backend = create_backend("tflite", weights=str(PYDNET), card=str(named), device="cpu")
    assert backend.card.output_channel == 1 and backend.card.path == str(named)
    with pytest.raises(BackendError, match="architecture 'segmentation'"):
        create_backend("openvino", weights=str(ROAD), card=str(CARDS / "road-segmentation-adas-0001.card.json"))
    with pytest.raises(BackendError, match="has no model card"):
        create_backend("tflite", weights=str(PYDNET))
