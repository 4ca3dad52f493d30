"""depth_lifecycle_node: depth_node as a managed (lifecycle) node, for nav2-style bringup.

The same node (depth_node.DepthComposition), in the lifecycle's steps:
- configure: reads the parameters, builds the pose source, pipeline and publishers, loads and warms up
  the network (at a default size: no camera_info is subscribed yet), starts the worker;
- activate: subscribes the inputs, so depth flows; deactivate: unsubscribes (the frame in progress
  finishes first); cleanup: stops the worker and releases the network; shutdown: cleanup if needed.
A configuration error (a bad parameter) fails the configure transition with its one sentence in the log;
the node stays unconfigured and can be configured again after the parameter is fixed.

    ros2 run depth_prior_ros depth_lifecycle_node
    ros2 lifecycle set /depth_node configure && ros2 lifecycle set /depth_node activate

rclpy.lifecycle (LifecycleNode, State, TransitionCallbackReturn; on_configure/on_activate/on_deactivate/
on_cleanup/on_shutdown(state)) has the same names in ros2/rclpy's humble and jazzy branches and in the
Kilted wheel (9.1.2) the tests run on.
"""
from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn

from ..parameters import ParameterError
from .backend_manager import RETRY_PERIOD_S
from .depth_node import DepthComposition
from .runtime import run_node


class DepthLifecycleNode(DepthComposition, LifecycleNode):
    def __init__(self, retry_period: float = RETRY_PERIOD_S, **node_kwargs):
        super().__init__(self.NODE_NAME, **node_kwargs)
        self._declare(retry_period)
        self.worker = None

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure(load_now=True)
        except ParameterError as exc:
            self.get_logger().error(f"configuration error: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._activate()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._cleanup()
        self.worker = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        if self.worker is not None:
            self.on_cleanup(state)
        return TransitionCallbackReturn.SUCCESS

    def start(self) -> None:  # run_node calls it once: only a configured node has a worker
        if self.worker is not None and not self.worker.is_alive() and not self.mailbox.closed:
            self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            super().stop()


def main(args=None) -> int:
    return run_node(DepthLifecycleNode, args)


if __name__ == "__main__":
    sys.exit(main())
