"""Read the package's own metadata files without running or importing them (setup.py, launch files and
params.py may need setuptools, launch or rclpy, which a test machine need not have)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "depth_prior_ros"
CONFIG_DIR = REPO / "config"
LAUNCH_DIR = REPO / "launch"


def console_scripts() -> dict[str, str]:
    """setup.py's console_scripts as {script name: 'module.path:function'}, read with ast."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = ast.literal_eval(value)
                    return {
                        name.strip(): target.strip()
                        for name, target in (entry.split("=", 1) for entry in entries)
                    }
    raise AssertionError("setup.py has no console_scripts entry point list")


def module_file(module: str) -> Path | None:
    """src/ file that a dotted module name refers to (module.py or package/__init__.py), or None."""
    base = REPO / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level NAME = <literal> assignments of a parsed file."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return constants


def call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def keyword(node: ast.Call, name: str) -> ast.expr | None:
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value
    return None


def resolve_str(node: ast.expr | None, constants: dict[str, object]) -> str | None:
    """A string literal or a module constant holding one; None for anything computed."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and isinstance(constants.get(node.id), str):
        return constants[node.id]
    return None


def load_params_file(path: Path) -> dict[str, object]:
    """The parameters of a ROS 2 params file written for any node (`/**: ros__parameters: {...}`)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and list(data) == ["/**"], (
        f"{path.name}: expected a single '/**' section so it applies under any node name and namespace")
    section = data["/**"]
    assert isinstance(section, dict) and list(section) == ["ros__parameters"], (
        f"{path.name}: '/**' must hold exactly 'ros__parameters'")
    params = section["ros__parameters"]
    assert isinstance(params, dict) and params, f"{path.name}: ros__parameters is empty"
    return params


def declared_node_defaults() -> tuple[dict[str, object], dict[str, object]] | None:
    """(depth_node defaults, prior_node defaults) from depth_prior_ros.parameters, or None if not written."""
    if module_file("depth_prior_ros.parameters") is None:
        return None
    params = importlib.import_module("depth_prior_ros.parameters")
    return params.node_defaults(params.DEPTH_NODE), params.node_defaults(params.PRIOR_NODE)


def same_ros_type(value: object, default: object) -> bool:
    """Would ROS 2 accept `value` for a parameter declared with `default`? (no int -> double coercion,
    bool is not an int, lists must hold the same element type)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        return not default or all(same_ros_type(item, default[0]) for item in value)
    return type(value) is type(default)
