"""The rclpy side of the parameter spec (depth_prior_ros.parameters): declarations with descriptors.

Each parameter is declared with its description, its range (``FloatingPointRange`` /
``IntegerRange``) or choices, and ``read_only`` unless the spec marks it runtime-settable, so
``ros2 param describe`` shows what the spec says and ``ros2 param set`` of a start-up-only
parameter fails loudly instead of silently doing nothing.
"""
from __future__ import annotations

import re
import sys

from ..parameters import Param, ParameterError, check_known_names, node_parameters

_INT64_MAX = 2 ** 63 - 1


def descriptor_for(param: Param):
    """rcl_interfaces/ParameterDescriptor of one spec entry."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = param.description + (f" One of: {', '.join(param.choices)}." if param.choices else "")
    descriptor = ParameterDescriptor(description=text, read_only=not param.runtime)
    if param.choices:
        descriptor.additional_constraints = f"one of {', '.join(param.choices)}"
    elif param.minimum is not None or param.maximum is not None:
        descriptor.additional_constraints = param.range_text()
        if param.type is float:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(param.minimum if param.minimum is not None else -sys.float_info.max),
                to_value=float(param.maximum if param.maximum is not None else sys.float_info.max))]
        elif param.type is int:
            descriptor.integer_range = [IntegerRange(
                from_value=int(param.minimum if param.minimum is not None else -_INT64_MAX),
                to_value=int(param.maximum if param.maximum is not None else _INT64_MAX), step=1)]
    # dynamic_typing (Galactic+) lets an integer reach the parser for a float parameter, which takes it.
    if hasattr(descriptor, "dynamic_typing"):
        descriptor.dynamic_typing = True
    return descriptor


def declare_and_read(node, node_name: str) -> dict:
    """Declare every parameter of ``node_name`` on an rclpy node; return name -> value.

    rclpy refuses an override outside a descriptor's range with its own exception: that becomes a
    ParameterError, so the node stops with one sentence like any other bad value.
    """
    from rclpy.exceptions import InvalidParameterValueException

    # rclpy keeps the -p / --params-file values meant for this node in _parameter_overrides (Humble
    # through Kilted); an undeclared one would be ignored silently, so a typo is refused here.
    check_known_names(sorted(getattr(node, "_parameter_overrides", {})), node_name)
    values = {}
    for param in node_parameters(node_name):
        try:
            values[param.name] = node.declare_parameter(param.name, param.default, descriptor_for(param)).value
        except InvalidParameterValueException as exc:
            given = re.search(r"value \(([^)]{0,40})", str(exc))
            raise ParameterError(f"parameter '{param.name}' must be {param.range_text()}, got "
                                 f"{given.group(1) if given else 'a value outside that range'}") from None
    return values


class RuntimeParameters:
    """``ros2 param set`` / the set_parameters services for a node's spec parameters.

    A change is accepted only when every parameter in it is ``runtime`` in the spec, passes its
    ``Param.check`` and the whole set still parses (cross-checks such as min_depth < max_depth);
    otherwise it is refused with that one sentence as the reason and every old value is kept.
    The new settings object is kept as pending; the node's worker takes it (``take_pending``) between
    two frames, never inside one.
    Parameters outside the spec (use_sim_time, qos_overrides.*) are left to rclpy.
    """

    def __init__(self, node, node_name: str, values: dict, parse):
        self.node_name, self.values = node_name, dict(values)
        self._parse = parse
        self._pending = None  # set on the executor thread, taken by the worker (one reference swap)
        node.add_on_set_parameters_callback(self._on_set)

    def take_pending(self):
        """The settings accepted since the last call, or None."""
        pending, self._pending = self._pending, None
        return pending

    def _on_set(self, parameters):
        from rcl_interfaces.msg import SetParametersResult

        from ..parameters import PARAMS

        values = dict(self.values)
        try:
            for parameter in parameters:
                spec = PARAMS.get(parameter.name)
                if spec is None or self.node_name not in spec.nodes:
                    continue
                if not spec.runtime:
                    raise ParameterError(f"parameter '{spec.name}' is read-only: it is read at start, so restart "
                                         "the node to change it")
                values[spec.name] = spec.check(parameter.value)
            settings = self._parse(values)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.values = values
        self._pending = settings
        return SetParametersResult(successful=True)
