"""The network-free backend: the metric scene prior itself is the published depth."""
from __future__ import annotations

import numpy as np

from .base import BackendBase
from .registry import register_backend


class PriorOnlyBackend(BackendBase):
    name = "prior_only"
    output_kind = None

    def predict(self, image: np.ndarray) -> None:
        return None

    def warmup(self, width: int, height: int) -> None:
        return None

    def describe(self) -> dict:
        return {"name": self.name, "output_kind": "prior", "note": "publishes the embodied scene prior"}


@register_backend("prior_only")
def _make(**_options) -> PriorOnlyBackend:
    return PriorOnlyBackend()
