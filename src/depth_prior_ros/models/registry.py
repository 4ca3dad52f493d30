"""Backends register by name with a dataclass of their options; the node and the CLI create them from a
name and keyword options.

``NO_NETWORK`` ("prior_only") is listed with the backends but is the absence of one: ``create_backend``
returns None for it and the pipeline publishes the metric scene prior itself.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable

from .base import BackendError, DepthBackend

NO_NETWORK = "prior_only"

_FACTORIES: dict[str, tuple[Callable[..., DepthBackend], type | None]] = {}

# Backends that live in optional modules (heavy imports: torch, transformers, diffusers, graph runtimes)
# are imported only when asked for, so the prior-only node starts in a fraction of a second.
_LAZY_MODULES = {
    "ssd_student": "depth_prior_ros.models.depth_anything",
    "jasmine": "depth_prior_ros.models.jasmine",
    "onnx": "depth_prior_ros.models.graph_backend",
    "tflite": "depth_prior_ros.models.graph_backend",
    "openvino": "depth_prior_ros.models.graph_backend",
}


@dataclasses.dataclass
class NoNetworkOptions:
    """The options every backend is given by the node; with no network there are no weights to load."""

    weights: str = ""
    device: str = "auto"
    dtype: str = "fp32"


def register_backend(name: str, options: type | None = None):
    """Decorator on a backend factory: ``@register_backend("name", Options)`` makes ``create_backend``
    call ``factory(Options(**keywords))``; without an options dataclass the factory gets ``**keywords``."""

    def wrap(factory):
        _FACTORIES[name] = (factory, options)
        return factory

    return wrap


def available_backends() -> list[str]:
    return sorted({NO_NETWORK} | set(_FACTORIES) | set(_LAZY_MODULES))


def parse_options(options_class: type, backend: str, keywords: dict):
    """``options_class(**keywords)``; a key that is not one of its fields is refused in one sentence."""
    known = [f.name for f in dataclasses.fields(options_class)]
    unknown = sorted(set(keywords) - set(known))
    if unknown:
        raise BackendError(f"{backend} does not know option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return options_class(**keywords)


def create_backend(name: str, **options) -> DepthBackend | None:
    """Build a backend by registry name (None for NO_NETWORK); unknown names, unknown options and load
    failures raise BackendError."""
    if name == NO_NETWORK:
        weights = parse_options(NoNetworkOptions, name, options).weights
        if weights:
            raise BackendError(f"backend '{NO_NETWORK}' runs no network, so it takes no weights (got '{weights}'); "
                               f"leave weights empty or choose a network backend")
        return None
    if name not in _FACTORIES and name in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[name])
        except ImportError as exc:
            raise BackendError(f"backend '{name}' needs a package that is not installed: {exc}") from exc
    if name not in _FACTORIES:
        raise BackendError(f"unknown backend '{name}'; available: {', '.join(available_backends())}")
    factory, options_class = _FACTORIES[name]
    return factory(parse_options(options_class, name, options)) if options_class else factory(**options)


def check_backend_options(name: str, options: dict) -> None:
    """BackendError for what no retry of ``create_backend`` can fix, without building the network: an
    option the backend does not know, or no weights for a backend that needs them. A backend whose
    package is missing passes here: installing the package fixes it, so loading it stays a runtime
    failure."""
    if name == NO_NETWORK:
        create_backend(name, **options)  # builds nothing: checks the options and that weights are empty
        return
    if name not in _FACTORIES:
        if name not in _LAZY_MODULES:
            return  # an unknown name is the 'backend' parameter's own check
        try:
            importlib.import_module(_LAZY_MODULES[name])
        except ImportError:
            return
    options_class = _FACTORIES[name][1]
    if options_class is None:
        return
    parsed = parse_options(options_class, name, options)
    if hasattr(parsed, "weights") and not parsed.weights and not getattr(parsed, "random_init", False):
        raise BackendError(f"backend '{name}' needs weights; set the 'weights' parameter")
