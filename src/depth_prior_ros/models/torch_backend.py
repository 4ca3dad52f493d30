"""Common runtime of the PyTorch backends: device/dtype, pre/post-processing, batching, warmup.

A concrete backend supplies a ``torch.nn.Module`` that maps a normalised image batch (B, 3, h, w) to a
depth-like map (B, h, w), and a model card; everything between camera image and Prediction is here.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .base import BackendBase, BackendError, Prediction
from .card import ModelCard
from .checkpoints import parameter_count
from .preprocess import (dtype_name, network_size, postprocess, predict_by_size, preprocess, resolve_device,
                         resolve_dtype)

log = logging.getLogger(__name__)

COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune")


class TorchDepthBackend(BackendBase):
    """Runs ``net`` (normalised (B,3,h,w) -> (B,h,w)) on camera images and returns Predictions."""

    name = "torch"

    def __init__(self, net, card: ModelCard, weights: str = "", device: str = "auto", dtype: str = "fp32",
                 compile: str | bool = "", extra_info: dict[str, Any] | None = None):
        import torch

        self.card = card
        self.output_kind = card.output_kind
        self.weights = str(weights or "")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.spec = card.input_spec
        self._extra_info = dict(extra_info or {})
        self.net = net.eval().requires_grad_(False).to(self.device, self.dtype)
        self._params = parameter_count(self.net)
        self._runner = self.net
        mode = ("default" if compile is True else (compile or "")).strip()
        if mode not in COMPILE_MODES:
            allowed = ", ".join(repr(m) for m in COMPILE_MODES)
            raise BackendError(f"compile must be one of {allowed}, got {compile!r}")
        self.compile_mode = mode if self.device.type == "cuda" else ""
        if mode and self.device.type != "cuda":
            log.info("compile=%s ignored on %s (torch.compile is used for the CUDA path only)", mode, self.device)
        if self.compile_mode:
            # Shapes are fixed per camera, so a static graph (and CUDA graphs with reduce-overhead) pays off.
            self._runner = torch.compile(self.net, mode=self.compile_mode, dynamic=False)

    # ------------------------------------------------------------------ protocol

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return network_size(height, width, self.spec)

    def run_network(self, pixels):
        """Normalised (B, 3, h, w) in the backend's dtype/device -> (B, h, w)."""
        import torch

        with torch.inference_mode():
            return self._runner(pixels)

    def predict(self, image: np.ndarray) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[np.ndarray]) -> list[Prediction]:
        """Same-size images run as one batch; different sizes run in groups, results in input order."""
        return predict_by_size(images, self._predict_same_size, self.output_kind, self.card.disparity_offset)

    def _predict_same_size(self, images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
        import torch

        try:
            pixels = preprocess(images, self.spec, self.device, self.dtype)
            with torch.inference_mode():
                out = self.run_network(pixels)
                return postprocess(out, size)
        except BackendError:
            raise
        except torch.cuda.OutOfMemoryError as exc:
            raise BackendError(f"{self.name}: out of GPU memory at {size[1]}x{size[0]}: "
                               f"{str(exc).splitlines()[0]}") from exc
        except RuntimeError as exc:
            raise BackendError(f"{self.name} failed on a {size[1]}x{size[0]} image: "
                               f"{str(exc).splitlines()[0]}") from exc

    def warmup(self, width: int, height: int) -> None:
        # Two runs: the first allocates/compiles, the second settles cudnn autotuning and CUDA graphs.
        image = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(2 if self.device.type == "cuda" else 1):
            self.predict(image)
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def describe(self) -> dict:
        info = {"name": self.name, "output_kind": self.output_kind, "weights": self.weights,
                "device": str(self.device), "dtype": dtype_name(self.dtype), "parameters": self._params,
                "compile": self.compile_mode or "off", "card": self.card.to_dict(),
                "card_path": self.card.path or "defaults"}
        info.update(self._extra_info)
        return info

    def parameter_count(self) -> int:
        return self._params

    def export_module(self):
        """The fp32 network on CPU, for ONNX export (a copy; the running backend is untouched)."""
        import copy

        import torch

        return copy.deepcopy(self.net).to("cpu", torch.float32).eval()
