"""Depth network backends (registry, protocol, implementations)."""
from .base import OUTPUT_KINDS, BackendBase, BackendError, DepthBackend, Prediction
from .registry import available_backends, create_backend, register_backend

__all__ = ["OUTPUT_KINDS", "BackendBase", "BackendError", "DepthBackend", "Prediction",
           "available_backends", "create_backend", "register_backend"]
