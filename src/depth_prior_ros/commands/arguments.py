"""Argument types for the `depth-prior` subcommands: numbers that must be finite and in range.

argparse turns the ArgumentTypeError of a bad value into one line, ``argument --x: <message>``, and
exit status 2 (see cli.OneLineParser), before the command starts any work.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path


def _range_text(low, high, open_low: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if open_low else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def number(low: float | None = None, high: float | None = None, open_low: bool = False):
    """A finite float within [low, high] ((low, high] with ``open_low``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a number") from None
        inside = (low is None or (value > low if open_low else value >= low)) and (high is None or value <= high)
        if not math.isfinite(value) or not inside:
            rule = _range_text(low, high, open_low)
            raise argparse.ArgumentTypeError(f"{text[:40]} is not a finite number{' ' + rule if rule else ''}")
        return value

    parse.__name__ = "number"
    return parse


def integer(low: int | None = None, high: int | None = None):
    """An integer within [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text[:40]}' is not an integer") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is not an integer {_range_text(low, high, False)}")
        return value

    parse.__name__ = "integer"
    return parse


def path_arg(text: str) -> Path:
    """A path argument: not empty (Path('') would quietly mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names nothing")
    return Path(text)


# Pixel sizes the commands accept: a 16K frame is the largest camera anyone records.
MAX_SIDE = 16384
size_side = integer(1, MAX_SIDE)
positive_seconds = number(0.0, 7 * 24 * 3600.0, open_low=True)
degrees = number(-180.0, 180.0)
