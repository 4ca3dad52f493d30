"""``onnx``, ``tflite``, ``openvino``: an exported depth network run through its graph runtime.

One backend per runtime (graph_runtime.py chooses it by the file type): ONNX Runtime for ``M.onnx``
(providers TensorRT, CUDA, CPU, whichever are installed; the ``providers`` option overrides), LiteRT for
``M.tflite``, OpenVINO for ``M.xml`` + ``M.bin``. The card comes from ``backend_options["card"]`` when
given, else ``M.card.json`` beside the graph, else the card that ``depth-prior export`` embeds in an
ONNX file. When a card beside the graph and the embedded one disagree, the one beside it wins and a
warning names both values. A graph with a fixed input size gets exactly that size; a dynamic one follows
the card's keep-aspect rule. The card says the layout (NCHW | NHWC), channel order, scale and
normalisation; integer (quantised) tensors use the graph's own scale and zero point; ``output_index``
and ``output_channel`` pick the depth map among the outputs.

``GraphModel`` (a graph file with its card: camera images -> input tensor, raw outputs -> the card's
output) is shared with the road segmenter (segmentation.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .base import BackendBase, BackendError, Prediction
from .card import ModelCard, card_from_dict, find_card, read_card
from .graph_runtime import GraphRuntime, dequantize, open_runtime, quantize
from .preprocess import network_size, postprocess, predict_by_size, preprocess
from .registry import register_backend

log = logging.getLogger(__name__)

BACKEND_SUFFIX = {"onnx": ".onnx", "tflite": ".tflite", "openvino": ".xml"}
# Card keys that change what the graph computes (provenance fields such as source may differ freely).
BEHAVIOUR_KEYS = ("input_size", "short_side", "multiple_of", "layout", "channel_order", "scale", "normalization",
                  "output_kind", "output_index", "output_channel", "road_classes", "drivable_classes",
                  "object_classes")


def card_disagreements(beside: ModelCard, embedded: ModelCard) -> list[str]:
    """One sentence per behaviour key on which two cards of the same graph differ (beside: wins)."""
    a, b = beside.to_dict(), embedded.to_dict()
    return [f"{key}: {a.get(key)!r} in {beside.path} (used) but {b.get(key)!r} in the card embedded in the graph"
            for key in BEHAVIOUR_KEYS if a.get(key) != b.get(key)]


def graph_card(path: Path, runtime: GraphRuntime, card_path: str = "") -> tuple[ModelCard, list[str]]:
    """(card, disagreements): the named card, else the one beside the graph, else the embedded one."""
    beside = read_card(card_path) if card_path else find_card(path)
    data = runtime.embedded_card()
    embedded = None
    if data is not None:
        embedded = card_from_dict(data, where=f"{path} (embedded card)")
        embedded.path = f"{path} (embedded)"
    if beside is None and embedded is None:
        raise BackendError(f"{path} has no model card ({path.with_suffix('.card.json').name} beside it, a 'card' "
                           f"option, or one embedded by depth-prior export)")
    if beside is None:
        return embedded, []
    conflicts = card_disagreements(beside, embedded) if embedded is not None else []
    for conflict in conflicts:
        log.warning("%s: the model cards disagree on %s", path.name, conflict)
    return beside, conflicts


class GraphModel:
    """A graph file, its runtime and its card: the tensor the graph takes, the output the card names.

    The graph's own static input size wins over the card's (it cannot run another one); layout NCHW puts
    (h, w) at shape[2:4], NHWC at shape[1:3], and the channel dimension must hold 3.
    """

    def __init__(self, path: Path, runtime: GraphRuntime, card: ModelCard):
        self.path, self.runtime, self.card = path, runtime, card
        shape, nhwc = runtime.input.shape, card.layout == "NHWC"
        channels = shape[3] if nhwc and len(shape) == 4 else (shape[1] if len(shape) == 4 else None)
        if len(shape) != 4 or channels not in (3, None):
            expected = "(B, H, W, 3)" if nhwc else "(B, 3, H, W)"
            raise BackendError(f"{path.name}: input '{runtime.input.name}' has shape {list(shape)}, but the card's "
                               f"layout {card.layout} expects {expected}")
        hw = shape[1:3] if nhwc else shape[2:4]
        spec = card.input_spec
        if all(isinstance(s, int) for s in hw):
            if card.input_size is not None and tuple(card.input_size) != tuple(hw):
                log.warning("%s: the graph's input is %sx%s, the card says %s; using the graph's", path.name, hw[1],
                            hw[0], list(card.input_size))
            spec = replace(spec, input_size=(int(hw[0]), int(hw[1])))
        self.spec = spec
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        if card.output_index >= len(runtime.outputs):
            raise BackendError(f"{path.name} has {len(runtime.outputs)} output(s); the card's output_index "
                               f"{card.output_index} does not exist")
        self.output_info = runtime.outputs[card.output_index]

    def input_tensor(self, images: list[np.ndarray]) -> np.ndarray:
        """Same-size uint8 RGB camera images -> the graph's input: resized, scaled, normalised, in the
        card's channel order and layout, quantised for an integer input."""
        pixels = preprocess(images, self.spec, "cpu").numpy()
        if self.card.layout == "NHWC":
            pixels = pixels.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(quantize(pixels, self.runtime.input))

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Input tensor -> the raw output the card names (before dequantisation)."""
        return self.runtime.run(tensor)[self.card.output_index]

    def output(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> float32 real values (dequantised)."""
        return dequantize(raw, self.output_info)

    def chunks(self, images: list[np.ndarray]):
        """The images in runs of the graph's fixed batch (all at once when the batch is dynamic)."""
        step = self.fixed_batch or len(images)
        for start in range(0, len(images), step):
            yield images[start:start + step]


def load_graph(path: Path, device: str = "auto", dtype: str = "fp32", card: str = "", threads: int = 0,
               providers: list[str] | None = None, segmentation: bool = False) -> tuple[GraphModel, list[str]]:
    """(GraphModel, card disagreements) for a graph file; its card must be a segmenter's iff ``segmentation``."""
    runtime = open_runtime(path, device, dtype, threads, providers)
    model_card, conflicts = graph_card(path, runtime, card)
    if model_card.is_segmentation != segmentation:
        want = "a road segmenter's (architecture 'segmentation')" if segmentation else "a depth network's"
        raise BackendError(f"{path.name}: its card {model_card.path} is for architecture '{model_card.architecture}', "
                           f"but {want} is needed here")
    return GraphModel(path, runtime, model_card), conflicts


class GraphDepthBackend(BackendBase):
    """A depth network in a graph file; ``name`` is the backend (onnx | tflite | openvino)."""

    def __init__(self, name: str, weights: str, device: str = "auto", dtype: str = "fp32", card: str = "",
                 threads: int = 0, providers: list[str] | None = None):
        suffix = BACKEND_SUFFIX[name]
        path = Path(weights)
        if not weights or not path.is_file() or path.suffix.lower() != suffix:
            raise BackendError(f"backend '{name}' needs an existing {suffix} file, got '{weights}'")
        self.name = name
        self.model, self.card_conflicts = load_graph(path, device, dtype, card, threads, providers)
        self.card = self.model.card
        self.output_kind = self.card.output_kind
        self.weights = str(path)
        self.spec = self.model.spec

    @property
    def runtime(self) -> GraphRuntime:
        return self.model.runtime

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return network_size(height, width, self.spec)

    def input_tensor(self, images: list[np.ndarray]) -> np.ndarray:
        return self.model.input_tensor(images)

    def run_network(self, tensor: np.ndarray) -> np.ndarray:
        """The graph's input tensor -> the raw output the card names (what a direct runtime call returns)."""
        return self.model.run(tensor)

    def depth_map(self, raw: np.ndarray) -> np.ndarray:
        """Raw output -> float32 (B, h, w): dequantised, the card's channel of a 4-D output."""
        values = self.model.output(raw)
        channel = self.card.output_channel
        if values.ndim == 4:
            axis = 3 if self.card.layout == "NHWC" else 1
            if channel >= values.shape[axis]:
                raise BackendError(f"{Path(self.weights).name}: output of shape {list(values.shape)} has no channel "
                                   f"{channel} (card output_channel)")
            return np.take(values, channel, axis=axis)
        if values.ndim == 3 and channel == 0:
            return values
        raise BackendError(f"{Path(self.weights).name}: output of shape {list(values.shape)} is not a depth map "
                           f"for output_channel {channel}")

    def predict(self, image: np.ndarray) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[Prediction]:
        return predict_by_size(images, self._predict_same_size, self.output_kind, self.card.disparity_offset)

    def _predict_same_size(self, images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        """Same-size images, in chunks of the graph's fixed batch -> float32 (B, H, W) at the camera size."""
        import torch

        out = []
        for chunk in self.model.chunks(images):
            values = self.depth_map(self.run_network(self.input_tensor(chunk)))
            out.append(postprocess(torch.from_numpy(np.ascontiguousarray(values)), size))
        return np.concatenate(out)

    def parameter_count(self) -> int:
        if self.runtime.name != "onnxruntime":
            return 0
        try:
            import onnx

            graph = onnx.load(self.weights, load_external_data=False).graph
            return sum(int(np.prod(init.dims)) for init in graph.initializer)
        except Exception:  # noqa: BLE001 - a count is only for the log
            return 0

    def describe(self) -> dict[str, Any]:
        info = {"name": self.name, "output_kind": self.output_kind, "weights": self.weights,
                **self.runtime.describe(), "input_size": list(self.spec.input_size or []) or "dynamic",
                "card": self.card.to_dict(), "card_path": self.card.path}
        if self.card_conflicts:
            info["card_conflicts"] = self.card_conflicts
        return info


@dataclass
class GraphOptions:
    """Options of ``create_backend("tflite" | "openvino", ...)``: card (a card path; "" = beside the
    graph) and threads (CPU threads, 0: the runtime's default)."""

    weights: str = ""
    device: str = "auto"
    dtype: str = "fp32"
    card: str = ""
    threads: int = 0


@dataclass
class OnnxOptions(GraphOptions):
    """Options of ``create_backend("onnx", ...)``: those of every graph backend, and providers (a list
    that replaces the TensorRT, CUDA, CPU preference order)."""

    providers: list[str] | None = None


@register_backend("onnx", OnnxOptions)
def create_onnx(o: OnnxOptions) -> GraphDepthBackend:
    return GraphDepthBackend("onnx", o.weights, o.device, o.dtype, o.card, o.threads, o.providers)


@register_backend("tflite", GraphOptions)
def create_tflite(o: GraphOptions) -> GraphDepthBackend:
    return GraphDepthBackend("tflite", o.weights, o.device, o.dtype, o.card, o.threads)


@register_backend("openvino", GraphOptions)
def create_openvino(o: GraphOptions) -> GraphDepthBackend:
    return GraphDepthBackend("openvino", o.weights, o.device, o.dtype, o.card, o.threads)


__all__ = ["BACKEND_SUFFIX", "GraphDepthBackend", "GraphModel", "GraphOptions", "OnnxOptions", "card_disagreements",
           "graph_card", "load_graph"]
