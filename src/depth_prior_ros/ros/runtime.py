"""What every node process of the package does around its node: throttled frame logs, the entities a
lifecycle step created, and run_node."""
from __future__ import annotations

import sys
import traceback

from ..parameters import ParameterError
from .worker import FrameDropped, ThrottledLog

LOG_THROTTLE_S = 5.0


class FrameLog:
    """Throttled log lines for dropped frames and unexpected errors: one throttle per reason, so a
    flood of one kind of bad frame never hides another kind."""

    def __init__(self, node):
        self._logger = logger = node.get_logger()
        self._context = node.context
        # `warning` is the current name; very old rclpy only has `warn`.
        self.warn = ThrottledLog(getattr(logger, "warning", None) or logger.warn, LOG_THROTTLE_S)
        self.error = ThrottledLog(logger.error, LOG_THROTTLE_S)
        self.stopping = False

    def dropped(self, drop: FrameDropped) -> None:
        self.warn(drop.reason, f"dropped a frame ({drop.reason}): {drop}")

    def failed(self, exc: Exception) -> None:
        if self.stopping or not self._context.ok():  # shutting down: publishers may be gone
            return
        if self.error(f"error:{type(exc).__name__}", f"unexpected {type(exc).__name__} while processing a frame: {exc}"):
            self._logger.debug(traceback.format_exc())


def node_entities(node, before: dict | None = None) -> dict:
    """The node's publishers, subscriptions and timers (those created since ``before`` when given): what a
    lifecycle step created, so the step that undoes it destroys exactly that."""
    now = {"publisher": list(node.publishers), "subscription": list(node.subscriptions), "timer": list(node.timers)}
    if before is None:
        return now
    return {kind: [e for e in items if all(e is not b for b in before[kind])] for kind, items in now.items()}


def destroy_entities(node, entities) -> None:
    for kind, items in (entities or {}).items():
        for entity in items:
            getattr(node, f"destroy_{kind}")(entity)


def check_parameter_overrides(argv: list[str]) -> None:
    """ParameterError for a ``-p name:=value`` whose value rcl could not read as YAML (rcl itself would
    fail in rclpy.init with a log line and a traceback)."""
    import yaml

    in_ros_args, previous = False, ""
    for token in argv:
        if token == "--ros-args":
            in_ros_args = True
        elif token == "--":
            in_ros_args = False
        elif in_ros_args and previous in ("-p", "--param") and ":=" in token:
            param, _, value = token.partition(":=")
            try:
                yaml.safe_load(value)
            except yaml.YAMLError:
                raise ParameterError(f"parameter '{param}': the value {value[:40]!r} is not YAML; quote a string "
                                     f"(-p '{param}:=\"...\"')") from None
        previous = token


def run_node(node_class, args=None) -> int:
    """rclpy.init, build the node, spin until Ctrl-C / SIGTERM / shutdown, clean up. Exit status:
    0 after a normal shutdown, 2 for a configuration error (one sentence on stderr)."""
    import rclpy

    try:
        from rclpy.executors import ExternalShutdownException
    except ImportError:  # very old rclpy: the exception does not exist, so nothing raises it
        class ExternalShutdownException(Exception):
            pass

    name = getattr(node_class, "NODE_NAME", "node")
    try:
        check_parameter_overrides(sys.argv if args is None else args)
        rclpy.init(args=args)
    except ParameterError as exc:
        print(f"[{name}] configuration error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # rclpy's RCLError: any other --ros-args rcl cannot parse
        reason = str(exc).replace("failed to initialize rcl: ", "").split(". Error:")[0].splitlines()[0]
        print(f"[{name}] configuration error: the ROS arguments cannot be parsed: {reason[:200]}", file=sys.stderr)
        return 2
    node = None
    try:
        node = node_class()
        node.start()
        rclpy.spin(node)
        return 0
    except ParameterError as exc:
        print(f"[{name}] configuration error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        if hasattr(rclpy, "try_shutdown"):
            rclpy.try_shutdown()
        elif rclpy.ok():
            rclpy.shutdown()
