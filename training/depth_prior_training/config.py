"""YAML configs: a nested mapping, with ``base:`` inheritance and ``key.sub=value`` overrides."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be used; one sentence says which."""


REQUIRED = ("recipe", "steps")
RECIPES = ("ssd_teacher", "ssd_student", "jasmine")


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Read ``path`` (following ``base: other.yaml`` relative to it), then apply ``a.b=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"config {path} must be a mapping")
    if "base" in cfg:
        cfg = merge(load_config(path.parent / cfg.pop("base")), cfg)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' is not key.sub=value")
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return cfg


def validate(cfg: dict) -> dict:
    for key in REQUIRED:
        if key not in cfg:
            raise ConfigError(f"config has no '{key}'")
    if cfg["recipe"] not in RECIPES:
        raise ConfigError(f"recipe '{cfg['recipe']}' is not one of {', '.join(RECIPES)}")
    return cfg
