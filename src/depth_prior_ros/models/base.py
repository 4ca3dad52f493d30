"""Backend protocol: a depth network turns an RGB image into a relative (or metric) depth map.

Every backend returns a :class:`Prediction` at the input image size; the pipeline aligns it to the
metric ground prior according to its ``kind``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

# What the numbers of a prediction mean (and therefore how align_to_prior fits them).
OUTPUT_KINDS = ("affine_disparity", "scale_depth", "metric_depth")


class BackendError(RuntimeError):
    """A backend failed to load or to run (the message names the file/stage and what is wrong)."""


class NetworkInputRejected(BackendError):
    """This frame's image would make a network input beyond the model card's bounds: drop the frame."""


@dataclass
class Prediction:
    """Network output at the input image size.

    values: float32 (H, W); NaN where unknown.
    kind: one of OUTPUT_KINDS.
    valid: optional bool (H, W) mask of pixels the network vouches for.
    """

    values: np.ndarray
    kind: str
    valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in OUTPUT_KINDS:
            raise ValueError(f"prediction kind '{self.kind}' is not one of {', '.join(OUTPUT_KINDS)}")


@runtime_checkable
class DepthBackend(Protocol):
    """What the pipeline needs from a depth network.

    ``name``: registry name; ``output_kind``: one of OUTPUT_KINDS. "No network" is no backend at all
    (``registry.NO_NETWORK``): the pipeline then publishes the metric scene prior itself.
    """

    name: str
    output_kind: str

    def predict(self, image: np.ndarray) -> Prediction:
        """image: uint8 RGB (H, W, 3) -> Prediction at (H, W)."""

    def predict_batch(self, images: list[np.ndarray]) -> list[Prediction]:
        """Several cameras at once (same or different sizes)."""

    def warmup(self, width: int, height: int) -> None:
        """Run once at the given size so the first real frame is not slow (allocations, autotuning)."""

    def describe(self) -> dict:
        """Model card / settings for logs and diagnostics."""


class BackendBase:
    """Convenience base: batch by looping, no-op warmup."""

    name = "base"
    output_kind: str  # one of OUTPUT_KINDS, set by each backend

    def predict(self, image: np.ndarray) -> Prediction:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_batch(self, images: list[np.ndarray]) -> list[Prediction]:
        return [self.predict(im) for im in images]

    def warmup(self, width: int, height: int) -> None:
        self.predict(np.zeros((height, width, 3), dtype=np.uint8))

    def describe(self) -> dict:
        return {"name": self.name, "output_kind": self.output_kind}
