"""Export a PyTorch backend to ONNX, write its card, and check ONNX Runtime against PyTorch.

The exported graph maps the normalised network input (B, 3, h, w) to the depth-like output (B, h, w);
resizing and normalisation stay outside (the card says how), so the same pre/post-processing code runs
for both runtimes. The graph has a fixed input size (batch 1): a camera's size does not change, TensorRT
builds its best engines for static shapes, and the TorchScript exporter bakes the shape arithmetic of
the DPT head anyway (the dynamo exporter's symbolic shapes did not survive the head's resize in our
tests). Export once per camera resolution. Parity: max |onnx - torch| and that divided by max |torch|
(the relative error the acceptance criterion bounds) on a random image.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import BackendError
from .card import card_path_for, write_card
from .graph_runtime import CARD_METADATA_KEY
from .preprocess import MAX_INPUT_PIXELS

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17


@dataclass
class ExportReport:
    onnx_path: Path
    card_path: Path
    input_size: tuple[int, int]
    opset: int
    max_abs_error: float
    max_rel_error: float
    output_range: tuple[float, float]
    seconds: float

    def summary(self) -> str:
        h, w = self.input_size
        return (f"wrote {self.onnx_path} (input 1x3x{h}x{w}, opset {self.opset}) and {self.card_path} "
                f"in {self.seconds:.1f} s\n"
                f"parity onnxruntime vs torch on CPU: max abs error {self.max_abs_error:.3e}, "
                f"max relative error {self.max_rel_error:.3e} (torch output range {self.output_range[0]:.4g} .. "
                f"{self.output_range[1]:.4g})")


def parity(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(max abs error, max abs error / max |reference|): relative to the output's scale, so that the
    near-zero values a ReLU head emits don't make the ratio meaningless."""
    ref = np.asarray(reference, dtype=np.float64)
    diff = np.abs(ref - np.asarray(candidate, dtype=np.float64))
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def default_export_size(backend) -> tuple[int, int]:
    """Fixed card size, else a 16:9 camera through the card's keep-aspect rule (518x924 for Depth Anything)."""
    if backend.card.input_size is not None:
        return tuple(backend.card.input_size)  # type: ignore[return-value]
    return backend.network_size(900, 1600)


def _check_size(backend, height: int, width: int) -> tuple[int, int]:
    m = max(1, backend.card.multiple_of)
    if height < 1 or width < 1 or height % m or width % m:
        raise BackendError(f"export size {height}x{width} must be positive and a multiple of {m} on both sides")
    if height * width > MAX_INPUT_PIXELS:
        raise BackendError(f"export size {height}x{width} is more than {MAX_INPUT_PIXELS:,} pixels")
    return height, width


def export_onnx(backend: str, weights: str, out: str | Path, height: int | None = None,
                width: int | None = None, opset: int = DEFAULT_OPSET, options: dict | None = None,
                seed: int = 0) -> ExportReport:
    """Export backend ``backend`` loaded from ``weights`` to ``out`` (+ ``out``'s card); returns the parity.

    height/width: the network input size (a multiple of the card's multiple_of); default: the card's
    fixed size, or a 16:9 camera through the card's rule (518x924 for Depth Anything).
    """
    import torch

    from .registry import create_backend

    started = time.perf_counter()
    if opset < 17:
        raise BackendError(f"opset {opset} is too old; use 17 or newer")
    loaded = create_backend(backend, weights=weights, device="cpu", dtype="fp32", **(options or {}))
    if not hasattr(loaded, "export_module"):
        raise BackendError(f"backend '{backend}' has no PyTorch network to export")
    if (height is None) != (width is None):
        raise BackendError("give both --height and --width, or neither")
    size = _check_size(loaded, height, width) if height is not None else default_export_size(loaded)
    net = loaded.net  # already fp32 on CPU (export_module() would copy it: 5 GB for Jasmine)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    from .preprocess import preprocess

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)
    pixels = preprocess([image], loaded.spec, "cpu")
    with warnings.catch_warnings():
        # The tracer warns about Python ints taken from shapes; the parity check below is the real test.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(net, (pixels,), str(out_path), input_names=["pixels"], output_names=["depth"],
                              opset_version=opset, do_constant_folding=True,
                              dynamo=False)

    card = loaded.card.replace(path=None, input_size=tuple(size))
    opts = dict(card.options)
    opts["onnx"] = {"opset": opset, "exported_from": backend, "weights": str(weights or "random_init")}
    opts.pop("hf_config", None)  # the graph carries the architecture now
    card = card.replace(options=opts)
    card_path = write_card(card, card_path_for(out_path))
    _embed_card(out_path, card.to_dict())

    # Parity on CPU: a fresh random image, the same preprocessed tensor through both runtimes.
    from .graph_backend import GraphDepthBackend

    onnx_backend = GraphDepthBackend("onnx", str(out_path), device="cpu")
    check = preprocess([rng.integers(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)], loaded.spec, "cpu")
    with torch.no_grad():
        ref = net(check).numpy()
    got = onnx_backend.run_network(check.numpy())
    if got.shape != ref.shape:
        raise BackendError(f"ONNX output shape {got.shape} differs from torch {ref.shape}")
    max_abs, max_rel = parity(ref, got)
    return ExportReport(onnx_path=out_path, card_path=card_path, input_size=tuple(size), opset=opset,
                        max_abs_error=max_abs, max_rel_error=max_rel,
                        output_range=(float(ref.min()), float(ref.max())), seconds=time.perf_counter() - started)


def _embed_card(path: Path, card: dict) -> None:
    """Store the card in the model's metadata too, so an .onnx copied without its card still runs."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in list(model.metadata_props):
        if prop.key == CARD_METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(card)
    onnx.save(model, str(path))
