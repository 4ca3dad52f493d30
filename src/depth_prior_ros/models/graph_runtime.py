"""One interface over the graph runtimes: ONNX Runtime (``.onnx``), LiteRT (``.tflite``), OpenVINO (``.xml``).

A :class:`GraphRuntime` runs one exported network: one input tensor in the layout and dtype the graph
declares, a list of raw output arrays back. The runtime is chosen by the file's type (``open_runtime``);
each runtime package is optional and imported only when a file of its type is opened, so a missing one
is a one-sentence :class:`BackendError` naming the package to install. Depth networks
(graph_backend.py) and the road segmenter (segmentation.py) share this layer.

Quantised graphs (uint8/int8 tensors, e.g. FastDepth int8) carry (scale, zero_point) per tensor:
``quantize`` turns a float input into the graph's integers (real = scale * (q - zero_point)) and
``dequantize`` turns an integer output back into real values; float tensors pass through.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import BackendError

log = logging.getLogger(__name__)

# file suffix -> (runtime name, the package that provides it, pinned as in requirements.txt)
GRAPH_TYPES = {".onnx": ("onnxruntime", "onnxruntime"), ".tflite": ("litert", "ai-edge-litert==2.3.0"),
               ".xml": ("openvino", "openvino==2026.4.1")}
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
CARD_METADATA_KEY = "depth_prior_ros.card"


@dataclass(frozen=True)
class TensorInfo:
    """One graph tensor: name, shape (None for a dynamic dimension), numpy dtype, and the (scale,
    zero_point) of a quantised tensor (None for float tensors)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    quantization: tuple[float, int] | None = None


def runtime_name(path: str | Path) -> str:
    """'onnxruntime' | 'litert' | 'openvino' for a graph file, or BackendError for another file type."""
    suffix = Path(path).suffix.lower()
    if suffix not in GRAPH_TYPES:
        raise BackendError(f"{Path(path).name} is not a graph file (.onnx, .tflite, or OpenVINO .xml + .bin)")
    return GRAPH_TYPES[suffix][0]


def quantize(values: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Float input -> the tensor's dtype: integers through (scale, zero_point), rounded and clipped."""
    if not np.issubdtype(info.dtype, np.integer):
        return values.astype(info.dtype, copy=False)
    scale, zero = info.quantization or (1.0, 0)
    limits = np.iinfo(info.dtype)
    q = np.rint(values / scale + zero) if scale > 0 else np.rint(values)
    return np.clip(q, limits.min, limits.max).astype(info.dtype)


def dequantize(values: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Raw output -> float32 real values (integer tensors through their (scale, zero_point))."""
    if np.issubdtype(values.dtype, np.integer) and info.quantization and info.quantization[0] > 0:
        scale, zero = info.quantization
        return ((values.astype(np.float32) - np.float32(zero)) * np.float32(scale)).astype(np.float32)
    return values.astype(np.float32, copy=False)


class GraphRuntime:
    """Base of the three runtimes: ``input`` and ``outputs`` describe the graph, ``run`` executes it."""

    name = "graph"

    def __init__(self, path: Path):
        self.path = path
        self.input: TensorInfo
        self.outputs: list[TensorInfo]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:  # pragma: no cover - abstract
        """The input tensor (already in the graph's layout and dtype) -> every output, raw."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name, "input": f"{self.input.name} {list(self.input.shape)} {self.input.dtype}",
                "outputs": [f"{o.name} {list(o.shape)} {o.dtype}" for o in self.outputs]}

    def embedded_card(self) -> dict | None:
        """A card stored inside the graph file (ONNX metadata), or None."""
        return None

    def _failed(self, exc: Exception, size: str) -> BackendError:
        return BackendError(f"{self.name} failed on a {size} input of {self.path.name}: "
                            f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}")


# --------------------------------------------------------------------------- ONNX Runtime
def choose_providers(available: list[str], device: str = "auto", requested: list[str] | None = None) -> list[str]:
    """ONNX Runtime providers to use, in preference order, restricted to ``available``.

    device "cpu" -> CPU only; "cuda"/"cuda:N"/"auto" -> TensorRT, CUDA, CPU (those installed).
    """
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise BackendError(f"onnxruntime here has no {', '.join(missing)} (available: {', '.join(available)})")
        return list(requested)
    wanted = ("CPUExecutionProvider",) if (device or "auto").lower() == "cpu" else PROVIDER_ORDER
    chosen = [p for p in wanted if p in available]
    if (device or "").lower().startswith("cuda") and not any(p != "CPUExecutionProvider" for p in chosen):
        raise BackendError(f"device '{device}' was requested but onnxruntime has no GPU provider "
                           f"(available: {', '.join(available)})")
    return chosen or ["CPUExecutionProvider"]


def _provider_options(providers: list[str], device: str, dtype: str, model_path: Path) -> list[dict]:
    index = int(device.split(":", 1)[1]) if (device or "").lower().startswith("cuda:") else 0
    options = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            # Engines take minutes to build: cache them beside the model (or skip caching if read-only).
            cache = model_path.parent / (model_path.stem + ".trt_cache")
            try:
                cache.mkdir(exist_ok=True)
                cache_ok = True
            except OSError:
                cache_ok = False
            options.append({"device_id": index, "trt_fp16_enable": dtype in ("fp16", "bf16"),
                            "trt_engine_cache_enable": cache_ok, "trt_engine_cache_path": str(cache)})
        elif p == "CUDAExecutionProvider":
            options.append({"device_id": index})
        else:
            options.append({})
    return options


_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
                "tensor(int8)": np.int8, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class OnnxRuntime(GraphRuntime):
    """ONNX Runtime session; providers TensorRT, CUDA, CPU (those installed; ``providers`` overrides)."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: str = "auto", dtype: str = "fp32", threads: int = 0,
                 providers: list[str] | None = None):
        super().__init__(path)
        import onnxruntime as ort

        self.providers = choose_providers(ort.get_available_providers(), device, providers)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=self.providers,
                                                provider_options=_provider_options(self.providers, device, dtype,
                                                                                   path))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BackendError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise BackendError(f"{path} has {len(inputs)} inputs; a network here takes one image tensor")
        self.input = self._info(inputs[0])
        self.outputs = [self._info(o) for o in self.session.get_outputs()]
        self.active_providers = self.session.get_providers()

    @staticmethod
    def _info(arg) -> TensorInfo:
        shape = tuple(s if isinstance(s, int) else None for s in arg.shape)
        return TensorInfo(arg.name, shape, np.dtype(_ONNX_DTYPES.get(arg.type, np.float32)))

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        try:
            return self.session.run(None, {self.input.name: tensor})
        except Exception as exc:  # onnxruntime's own exception types
            raise self._failed(exc, "x".join(map(str, tensor.shape))) from None

    def embedded_card(self) -> dict | None:
        """The card JSON that ``depth-prior export`` stores in the model metadata."""
        text = self.session.get_modelmeta().custom_metadata_map.get(CARD_METADATA_KEY)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            log.warning("%s: the card embedded in the metadata is not JSON; ignoring it", self.path)
            return None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "providers": self.active_providers}


# --------------------------------------------------------------------------- LiteRT (TFLite)
class LiteRtRuntime(GraphRuntime):
    """LiteRT interpreter (the TFLite runtime, XNNPACK on CPU) with ``threads`` CPU threads."""

    name = "litert"

    def __init__(self, path: Path, device: str = "auto", threads: int = 0):
        super().__init__(path)
        from ai_edge_litert.interpreter import Interpreter

        if (device or "auto").lower() not in ("auto", "cpu"):
            raise BackendError(f"device '{device}' was requested but LiteRT from PyPI runs on the CPU only")
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=int(threads) or None)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError with multi-line text
            raise BackendError(f"LiteRT cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise BackendError(f"{path} has {len(inputs)} inputs; a network here takes one image tensor")
        self._input_index = inputs[0]["index"]
        self._output_indices = [d["index"] for d in self.interpreter.get_output_details()]
        self.input = self._info(inputs[0])
        self.outputs = [self._info(d) for d in self.interpreter.get_output_details()]

    @staticmethod
    def _info(detail: dict) -> TensorInfo:
        scale, zero = detail.get("quantization", (0.0, 0))
        quant = (float(scale), int(zero)) if scale else None
        signature = detail.get("shape_signature", detail["shape"])
        shape = tuple(int(s) if s > 0 else None for s in signature)
        return TensorInfo(detail["name"], shape, np.dtype(detail["dtype"]), quant)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        try:
            self.interpreter.set_tensor(self._input_index, tensor)
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(i) for i in self._output_indices]
        except Exception as exc:  # noqa: BLE001 - LiteRT's ValueError/RuntimeError
            raise self._failed(exc, "x".join(map(str, tensor.shape))) from None


# --------------------------------------------------------------------------- OpenVINO
class OpenVinoRuntime(GraphRuntime):
    """OpenVINO compiled model from ``M.xml`` + ``M.bin``; on the CPU in fp32 (its default on CPUs
    with bf16 units is bf16, which would change the numbers)."""

    name = "openvino"

    def __init__(self, path: Path, device: str = "auto", threads: int = 0):
        super().__init__(path)
        import openvino as ov

        name = (device or "auto").lower()
        if name not in ("auto", "cpu"):
            raise BackendError(f"device '{device}' was requested but the OpenVINO backend runs on the CPU "
                               "(auto or cpu)")
        if not path.with_suffix(".bin").is_file():
            raise BackendError(f"OpenVINO model {path} needs its weights file {path.with_suffix('.bin').name} "
                               "beside it")
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            core = ov.Core()
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # openvino's RuntimeError with a long trace
            raise BackendError(f"OpenVINO cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
        if len(model.inputs) != 1:
            raise BackendError(f"{path} has {len(model.inputs)} inputs; a network here takes one image tensor")
        self.input = self._info(model.inputs[0])
        self.outputs = [self._info(o) for o in model.outputs]
        self.request = self.compiled.create_infer_request()

    @staticmethod
    def _info(port) -> TensorInfo:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        return TensorInfo(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()))

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        try:
            results = self.request.infer({0: tensor})
        except Exception as exc:  # noqa: BLE001 - openvino's RuntimeError
            raise self._failed(exc, "x".join(map(str, tensor.shape))) from None
        return [np.array(results[output]) for output in self.compiled.outputs]


# --------------------------------------------------------------------------- choosing one
def open_runtime(path: str | Path, device: str = "auto", dtype: str = "fp32", threads: int = 0,
                 providers: list[str] | None = None) -> GraphRuntime:
    """The runtime for a graph file, by its type: .onnx ONNX Runtime, .tflite LiteRT, .xml OpenVINO.

    ``providers`` applies to ONNX Runtime only. A missing runtime package is one sentence naming it.
    """
    p = Path(path)
    kind = runtime_name(p)
    if not p.is_file():
        raise BackendError(f"graph file {p} does not exist")
    if providers and kind != "onnxruntime":
        raise BackendError(f"option 'providers' is for ONNX Runtime; {p.name} runs through {kind}")
    package = GRAPH_TYPES[p.suffix.lower()][1]
    try:
        if kind == "onnxruntime":
            return OnnxRuntime(p, device, dtype, threads, providers)
        if kind == "litert":
            return LiteRtRuntime(p, device, threads)
        return OpenVinoRuntime(p, device, threads)
    except ImportError:
        raise BackendError(f"{p.name} runs through {kind}, which is not installed "
                           f"(pip install {package})") from None
