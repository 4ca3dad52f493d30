"""What a replay runs: the backends, the node parameters, the live and scoring options, and their checks."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .frames import FrameOptions
from .metrics import EvalProtocol


class ReplayError(RuntimeError):
    """A replay that cannot go on; one sentence (the CLI turns it into CommandError)."""


@dataclass
class BackendSpec:
    """One backend to replay: registry name, weights, extras; ``label`` names it in tables and topics.
    device / dtype None keep the node's defaults (depth_prior_ros.parameters)."""

    name: str
    weights: str = ""
    options: dict = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    label: str | None = None
    params: dict = field(default_factory=dict)  # more depth_node parameters for this backend only

    @property
    def display(self) -> str:
        return self.label or self.name

    def node_params(self) -> dict:
        params = {**self.params, "backend": self.name, "weights": self.weights, "device": self.device, "dtype": self.dtype,
                  "backend_options": json.dumps(self.options)}
        return {name: value for name, value in params.items() if value is not None}


@dataclass
class ReplayConfig:
    frames: FrameOptions = field(default_factory=FrameOptions)
    backends: list[BackendSpec] = field(default_factory=lambda: [BackendSpec("prior_only")])
    node_params: dict = field(default_factory=dict)  # depth_node parameters (NODES.md names) to override
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    scalings: tuple[str, ...] = ("metric", "median")
    conditions: list[str] | None = None   # one for all bags, or one per bag
    previews_per_condition: int = 1
    embodied: bool = False                # add the VLE embodied-depth table (replay.embodied)
    write_bag: bool = True
    progress: bool = True
    # live mode
    live: bool = False
    rate: float | None = None             # Hz; None = the recorded image timing
    lockstep: bool = False                # wait for each depth image (or frame_timeout) before the next
    domain_id: int | None = None          # None: processes.choose_domain_id()
    startup_timeout: float = 60.0
    frame_timeout: float = 5.0

    def __post_init__(self) -> None:
        labels = [b.display for b in self.backends]
        if not labels:
            raise ValueError("replay needs at least one backend")
        if len(set(labels)) != len(labels):
            raise ValueError(f"backend labels must be unique, got {', '.join(labels)}")


def node_settings(config: ReplayConfig, backend: BackendSpec, check_files: bool = True):
    """The node's own parsed settings for this backend (so offline == what the node runs)."""
    from ..parameters import ParameterError, parse_depth_params

    values = {**config.node_params, **backend.node_params()}
    try:
        return parse_depth_params(values, check_files=check_files)
    except ParameterError as exc:
        raise ReplayError(str(exc)) from exc


def condition_for(config: ReplayConfig, index: int, n_bags: int) -> str | None:
    conds = config.conditions
    if not conds:
        return None
    if len(conds) == 1:
        return conds[0]
    if len(conds) != n_bags:
        raise ReplayError(f"give one --condition for all bags or one per bag ({n_bags}), not {len(conds)}")
    return conds[index]
