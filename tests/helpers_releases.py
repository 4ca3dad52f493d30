"""Checkpoints in the layouts of the real releases, built from the committed fixtures alone.

A fixture (``tests/fixtures/releases/*.txt``) lists every tensor of a released file -- key, shape, dtype,
in the order of the authors' module -- as read off the original model definitions; its header names the
repositories and commits. ``release_state`` fills those shapes with seeded values: nothing here knows the
project's key mapping. ``golden.json`` describes the reference outputs that the authors' code computed,
once and outside this repository, from these same tensors on ``golden_input``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "releases"


@dataclass
class Fixture:
    name: str
    file: str  # the released file (or folder/file) these tensors come in
    entries: list[tuple[str, tuple[int, ...], str, str]]  # key, shape, dtype, origin ("" or "KEY[a:b]")
    config: dict = field(default_factory=dict)  # config.json of a folder layout

    @property
    def parameters(self) -> int:
        return sum(math.prod(shape) for _, shape, _, _ in self.entries)


def read_fixture(name: str, text: str | None = None) -> Fixture:
    """A fixture by name (``text``: its contents, e.g. a deliberately broken copy)."""
    header, entries = {}, []
    for line in (text if text is not None else (FIXTURES / f"{name}.txt").read_text()).splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].strip().partition(": ")
            header[key] = value
        elif line.strip():
            key, shape, dtype, *origin = line.split()
            entries.append((key, tuple(int(n) for n in shape.split("x") if n), dtype, origin[0] if origin else ""))
    return Fixture(name, header["file"], entries, json.loads(header.get("config.json", "{}")))


def release_state(fixture: Fixture, seed: int = 0, sources: dict | None = None) -> dict[str, torch.Tensor]:
    """Seeded values of the fixture's shapes, drawn in its order from one generator.

    Matrices and kernels get N(0, 1/fan_in) so activations stay O(1) through deep networks, 1-D weights
    (norm scales) 1 + N(0, 0.1^2), everything else N(0, 0.1^2). With ``sources`` (the state dict of
    another layout) an entry that names its origin, ``KEY`` or ``KEY[a:b]`` (rows), takes those values.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype, origin in fixture.entries:
        values = torch.randn(shape, generator=gen)
        if len(shape) >= 2 and key.endswith("weight"):
            values.mul_(1.0 / math.sqrt(math.prod(shape[1:])))
        else:
            values.mul_(0.1).add_(1.0 if key.endswith("weight") else 0.0)
        if sources is not None and origin:
            source, _, rows = origin.partition("[")
            start, stop = (int(n) for n in rows.rstrip("]").split(":")) if rows else (None, None)
            values = sources[source][start:stop].clone()
        state[key] = values.to(getattr(torch, dtype))
    return state


def shapes_only(fixture: Fixture) -> dict[str, torch.Tensor]:
    """Zeros of the fixture's shapes that take no memory (stride 0): for checks of keys and shapes."""
    return {key: torch.zeros((), dtype=getattr(torch, dtype)).expand(shape) for key, shape, dtype, _ in fixture.entries}


def broken(name: str, how: str) -> tuple[Fixture, str]:
    """(a copy of fixture ``name`` with its 10th tensor renamed, dropped or reshaped, that tensor's key)."""
    lines = (FIXTURES / f"{name}.txt").read_text().splitlines()
    index = [i for i, line in enumerate(lines) if line and not line.startswith("#")][10]
    key, shape, rest = lines[index].split(" ", 2)
    if how == "renamed":
        lines[index] = f"{key}_renamed {shape} {rest}"
    elif how == "dropped":
        del lines[index]
    else:
        lines[index] = f"{key} {shape.split('x')[0]}x1x7 {rest}" if "x" in shape else f"{key} 7 {rest}"
    return read_fixture(name, "\n".join(lines)), key


def write_pth(state: dict, path: Path) -> Path:
    """``torch.save(model.state_dict())``, as the releases were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, str(path))
    return path


def write_folder(fixture: Fixture, state: dict, folder: Path) -> Path:
    """A Hugging Face / diffusers folder: config.json + the fixture's weights file (safetensors)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(fixture.config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / Path(fixture.file).name))
    return folder


def write_jasmine_release(folder: Path, seed: int = 0, unet: Fixture | None = None) -> Path:
    """The Jasmine release layout: unet/, vae/ and gru.pth (whose vae.* copy holds vae/'s tensors), plus the
    empty-prompt embedding this project reads (seeded, (1, 2, 1024))."""
    from safetensors.torch import save_file

    vae_fixture = read_fixture("jasmine_vae")
    vae = release_state(vae_fixture, seed + 1)
    write_folder(vae_fixture, vae, folder / "vae")
    write_pth(release_state(read_fixture("jasmine_gru.pth"), seed + 2, sources=vae), folder / "gru.pth")
    del vae
    unet = unet or read_fixture("jasmine_unet")
    write_folder(unet, release_state(unet, seed), folder / "unet")
    save_file({"empty_text_embed": jasmine_prompt(seed + 3)}, str(folder / "empty_text_embed.safetensors"))
    return folder


def jasmine_prompt(seed: int = 3) -> torch.Tensor:
    return torch.randn(1, 2, 1024, generator=torch.Generator().manual_seed(seed)) * 0.1


def golden_input(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """The fixed network input of the golden runs: N(0, 1) pixels (B=1, 3, height, width)."""
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def golden_names() -> list[str]:
    return list(json.loads((FIXTURES / "golden.json").read_text()))


def golden(name: str) -> tuple[dict, np.ndarray]:
    """(its golden.json entry, the reference output sampled every ``stride`` pixels)."""
    entry = json.loads((FIXTURES / "golden.json").read_text())[name]
    return entry, np.load(FIXTURES / entry["file"])


def sampled(output: torch.Tensor, stride: int) -> np.ndarray:
    """(1, H, W) or (1, 1, H, W) network output -> the (H/stride, W/stride) grid stored as golden."""
    return output.detach().float().reshape(output.shape[-2:])[::stride, ::stride].numpy()
