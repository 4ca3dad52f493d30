"""numpy arrays or torch tensors: tell them apart without importing torch, and bring either to the host."""
from __future__ import annotations

import numpy as np


def is_tensor(value) -> bool:
    """A torch tensor (on any device)."""
    return type(value).__module__.startswith("torch")


def to_host(value) -> np.ndarray:
    """A numpy array of ``value`` (a torch tensor is copied from its device)."""
    return value.detach().cpu().numpy() if is_tensor(value) else np.asarray(value)
