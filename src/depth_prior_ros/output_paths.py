"""Checks on the paths a command writes to, made before anything is written.

A command must never write into a file, under /proc, or over its own input, and must never delete what
it did not create. Each check raises :class:`OutputPathError` with one sentence naming the option.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

# Kernel and device file systems: nothing a command writes belongs there.
SYSTEM_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


class OutputPathError(ValueError):
    """An output path the command cannot or must not write; the message is one sentence."""


def _resolved(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, an unreadable component
        raise OutputPathError(f"{path} cannot be resolved ({exc})") from None


def check_output_folder(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` as a folder the command may create or write into: not empty text, not a file, with no
    file on the way to it, not under /proc, /sys or /dev, and writable where it would be created."""
    text = os.fspath(path)
    if not text.strip():
        raise OutputPathError(f"{what} is empty; give a folder")
    if "\x00" in text:
        raise OutputPathError(f"{what} contains a NUL character")
    p = Path(text).expanduser()
    resolved = _resolved(p)
    for root in SYSTEM_ROOTS:
        if resolved == root or root in resolved.parents:
            raise OutputPathError(f"{what} {p} is under {root}, which holds no ordinary files")
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {p} is a file, not a folder")
    existing = resolved
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{what} {p} lies under {existing}, which is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {p} cannot be written: {existing} is not writable")
    return p


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` as a file the command may write: not a folder, in a folder check_output_folder accepts
    (or os.devnull, to discard it)."""
    text = os.fspath(path)
    if not text.strip():
        raise OutputPathError(f"{what} is empty; give a file name")
    p = Path(text).expanduser()
    if p.is_dir():
        raise OutputPathError(f"{what} {p} is a folder, not a file")
    if _resolved(p) == Path(os.devnull):  # the one file under /dev a command may write: output discarded
        return p
    check_output_folder(p.parent, what=f"{what}'s folder")
    return p


def check_apart_from_inputs(out: str | os.PathLike, inputs, what: str = "--out") -> None:
    """Refuse an output that is, contains or lies inside one of ``inputs`` (writing it could replace them)."""
    o = _resolved(Path(out))
    for item in inputs:
        i = _resolved(Path(item))
        if o == i or i in o.parents:
            raise OutputPathError(f"{what} {out} is inside the input {item}; write the output somewhere else")
        if o in i.parents:
            raise OutputPathError(f"{what} {out} contains the input {item}, which writing the output could "
                                  "replace; choose a folder apart from the inputs")


def is_replay_report(folder: Path) -> bool:
    """True when ``folder`` holds a report an earlier replay wrote (its metrics.json names the run)."""
    try:
        data = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"complete", "run"} <= set(data)


def check_report_folder(out: str | os.PathLike, what: str = "--out") -> Path:
    """A replay's report folder: new, empty, or an earlier replay's report (whose files it replaces)."""
    p = check_output_folder(out, what)
    if p.is_dir() and any(p.iterdir()) and not is_replay_report(p):
        raise OutputPathError(f"{what} {p} holds files that no replay wrote; choose a new or empty folder "
                              "so that nothing of yours is replaced")
    return p
