"""Backends register by name; the node and the CLI create them from a name and keyword options.

``NO_NETWORK`` ("prior_only") is a name, not a backend: it asks for no network, so the pipeline
publishes the metric scene prior itself, and ``create_backend`` returns None for it.
"""
from __future__ import annotations

import importlib
from typing import Callable

from .base import BackendError, DepthBackend

_FACTORIES: dict[str, Callable[..., DepthBackend]] = {}
NO_NETWORK = "prior_only"

# Backends that live in optional modules (heavy imports: torch, transformers, diffusers, onnxruntime)
# are imported only when asked for, so the prior-only node starts in a fraction of a second.
_LAZY_MODULES = {
    "ssd_student": "depth_prior_ros.models.ssd_student",
    "jasmine": "depth_prior_ros.models.jasmine",
    "onnx": "depth_prior_ros.models.onnx_backend",
}


def register_backend(name: str):
    """Decorator: ``@register_backend("name")`` on a factory ``(**options) -> DepthBackend``."""

    def wrap(factory):
        _FACTORIES[name] = factory
        return factory

    return wrap


def available_backends() -> list[str]:
    return sorted(set(_FACTORIES) | set(_LAZY_MODULES) | {NO_NETWORK})


def create_backend(name: str, **options) -> DepthBackend | None:
    """Build a backend by registry name (None for NO_NETWORK); unknown names and load failures raise
    BackendError."""
    if name == NO_NETWORK:
        extra = sorted(set(options) - {"weights", "device", "dtype"})
        if extra:
            raise BackendError(f"backend '{NO_NETWORK}' runs no network and takes no {', '.join(extra)}")
        return None
    if name not in _FACTORIES and name in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[name])
        except ImportError as exc:
            raise BackendError(f"backend '{name}' needs a package that is not installed: {exc}") from exc
    if name not in _FACTORIES:
        raise BackendError(f"unknown backend '{name}'; available: {', '.join(available_backends())}")
    return _FACTORIES[name](**options)
