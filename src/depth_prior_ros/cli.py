"""The `depth-prior` command. Each area adds its own subcommands from a small `commands` module,
which keeps heavy imports (torch, rosbags, rclpy) inside the command functions so `--help` is fast."""
from __future__ import annotations

import argparse
import importlib
import sys

# module -> it defines ``register(subparsers)`` adding one or more subcommands.
COMMAND_MODULES = (
    "depth_prior_ros.commands.prior",
    "depth_prior_ros.replay.commands",
    "depth_prior_ros.models.commands",
    "depth_prior_ros.bench.commands",
)


from .errors import CommandError  # noqa: E402  (re-exported: commands raise cli.CommandError)
from .output_paths import OutputPathError  # noqa: E402


class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors in one line (``depth-prior replay: error: ...``), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="depth-prior", description="Metric monocular depth for ROS 2: "
                           "embodied ground prior + depth networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that area is not part of this build
                continue
            raise
        module.register(sub)
    return parser


def one_line(text: str) -> str:
    """An error message on one line: newlines a user's argument carried into it are shown escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one line on stderr): a status, not an exit
        return exc.code if isinstance(exc.code, int) else 2
    command = " ".join(str(getattr(args, key)) for key in ("command", "bag_command", "weights_command")
                       if getattr(args, key, None))
    try:
        return int(args.func(args) or 0)
    except (CommandError, OutputPathError) as exc:
        print(f"depth-prior {command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine refused: disk full, permissions, a path that vanished
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"depth-prior {command}: error: {one_line(f'{exc.strerror or exc}{where}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"depth-prior {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
