"""``onnx``: any exported depth network through ONNX Runtime.

Providers are tried in the order TensorRT, CUDA, CPU, keeping those this onnxruntime build has
(``device="cpu"`` keeps only CPU; the ``providers`` option overrides the list). The model card comes
from ``M.card.json`` beside ``M.onnx``, else from the card that ``depth-prior export`` embeds in the
model's metadata. Fixed-size models (static H/W in the graph) get exactly that size; dynamic ones follow
the card's keep-aspect rule. ``dtype="fp16"`` enables TensorRT's fp16 kernels (the graph stays fp32).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .base import BackendBase, BackendError, Prediction
from .card import card_from_dict, find_card
from .preprocess import network_size, postprocess, predict_by_size, preprocess
from .registry import register_backend

log = logging.getLogger(__name__)

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
CARD_METADATA_KEY = "depth_prior_ros.card"


def choose_providers(available: list[str], device: str = "auto", requested: list[str] | None = None) -> list[str]:
    """Providers to use, in preference order, restricted to ``available``.

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
    index = 0
    if (device or "").lower().startswith("cuda:"):
        index = int(device.split(":", 1)[1])
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


def embedded_card(model_path: Path) -> dict | None:
    """The card JSON stored in the ONNX metadata by ``depth-prior export`` (None if absent)."""
    try:
        import onnx

        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # a graph onnx cannot parse is reported by the session instead
        return None
    for prop in model.metadata_props:
        if prop.key == CARD_METADATA_KEY:
            try:
                return json.loads(prop.value)
            except ValueError:
                return None
    return None


class OnnxBackend(BackendBase):
    name = "onnx"

    def __init__(self, weights: str, device: str = "auto", dtype: str = "fp32", providers: list[str] | None = None,
                 threads: int = 0):
        path = Path(weights)
        if not weights or not path.is_file():
            raise BackendError(f"onnx backend needs an existing .onnx file, got '{weights}'")
        card = find_card(path)
        if card is None:
            data = embedded_card(path)
            if data is None:
                raise BackendError(f"{path} has no model card ({path.with_suffix('.card.json').name} beside it, "
                                   f"or one embedded by depth-prior export)")
            card = card_from_dict(data, where=f"{path} (embedded card)")
            card.path = f"{path} (embedded)"
        self.card = card
        self.output_kind = card.output_kind
        self.weights = str(path)
        self.providers = choose_providers(ort.get_available_providers(), device, providers)
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            session_options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options, providers=self.providers,
                                                provider_options=_provider_options(self.providers, device, dtype, path))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BackendError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise BackendError(f"{path} has {len(inputs)} inputs; a depth model takes one image tensor")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        shape = inputs[0].shape  # e.g. ['batch', 3, 'height', 'width'] or [1, 3, 320, 1024]
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise BackendError(f"{path}: input '{self.input_name}' has shape {shape}, expected (B, 3, H, W)")
        static_hw = all(isinstance(s, int) for s in shape[2:])
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        spec = card.input_spec
        if static_hw:
            from dataclasses import replace

            spec = replace(spec, input_size=(int(shape[2]), int(shape[3])))
        self.spec = spec
        self.input_type = np.float16 if "float16" in inputs[0].type else np.float32
        self.active_providers = self.session.get_providers()

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return network_size(height, width, self.spec)

    def run_network(self, pixels: np.ndarray) -> np.ndarray:
        """Normalised float (B, 3, h, w) -> raw output array."""
        return self.session.run([self.output_name], {self.input_name: pixels.astype(self.input_type, copy=False)})[0]

    def predict(self, image: np.ndarray) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[Prediction]:
        return predict_by_size(images, self._predict_same_size, self.output_kind)

    def _predict_same_size(self, images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """Same-size images in chunks of the graph's fixed batch (if it has one) -> (B, H, W)."""
        import torch

        step = self.fixed_batch or len(images)
        chunks = []
        for start in range(0, len(images), step):
            pixels = preprocess(images[start:start + step], self.spec, "cpu").numpy()
            try:
                out = self.run_network(pixels)
            except Exception as exc:  # onnxruntime's own exception types
                raise BackendError(f"onnxruntime failed on a {size[1]}x{size[0]} image: "
                                   f"{str(exc).splitlines()[0]}") from None
            chunks.append(postprocess(torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)), size))
        return np.concatenate(chunks)

    def parameter_count(self) -> int:
        try:
            import onnx

            graph = onnx.load(self.weights, load_external_data=False).graph
            return sum(int(np.prod(init.dims)) for init in graph.initializer)
        except Exception:  # noqa: BLE001 - a count is only for the log
            return 0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "output_kind": self.output_kind, "weights": self.weights,
                "providers": self.active_providers, "input_size": list(self.spec.input_size or []) or "dynamic",
                "card": self.card.to_dict(), "card_path": self.card.path}


@dataclass
class OnnxOptions:
    """Options of ``create_backend("onnx", ...)``: providers (list, replaces the preference order) and
    threads (CPU intra-op threads, 0: onnxruntime's default)."""

    weights: str = ""
    device: str = "auto"
    dtype: str = "fp32"
    providers: list[str] | None = None
    threads: int = 0


@register_backend("onnx", OnnxOptions)
def create_onnx(o: OnnxOptions) -> OnnxBackend:
    return OnnxBackend(o.weights, device=o.device, dtype=o.dtype, providers=o.providers, threads=o.threads)
