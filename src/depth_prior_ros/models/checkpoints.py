"""Reading weights safely and loading them strictly, with one-sentence errors.

- ``.safetensors`` are read with safetensors (no code can run).
- ``.pth``/``.pt``/``.bin`` go through ``torch.load(weights_only=True)``: tensors and plain containers
  only. A pickle that names any other callable (``os.system``, a custom class, ...) is refused before
  anything in it runs.
- ``load_strict`` compares every key and shape with the model and names the first mismatch.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .base import BackendError

if TYPE_CHECKING:  # pragma: no cover
    import torch

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def read_state_dict(path: str | Path) -> dict[str, "torch.Tensor"]:
    """Tensors of a .safetensors or (weights-only) pickle checkpoint, as a flat name -> tensor dict."""
    p = Path(path)
    if not p.is_file():
        raise BackendError(f"weights file {p} does not exist")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(p), device="cpu"))
        except Exception as exc:  # SafetensorError, OSError
            raise BackendError(f"{p} is not a readable safetensors file: {_first_line(exc)}") from None
    if p.suffix in PICKLE_SUFFIXES:
        return _flatten_checkpoint(safe_torch_load(p), p)
    raise BackendError(f"{p}: unsupported weights format '{p.suffix}' (use .safetensors, .pth or .pt)")


def read_config(folder: Path, what: str) -> tuple[dict, Path]:
    """(``folder/config.json`` as a dict, its path); missing or malformed is one sentence naming it."""
    path = folder / "config.json"
    if not path.is_file():
        raise BackendError(f"{folder} is missing config.json (expected {what})")
    try:
        return json.loads(path.read_text()), path
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path} is not valid JSON: {exc}") from None


def read_folder_weights(folder: Path, names: Sequence[str]) -> tuple[dict[str, "torch.Tensor"], Path]:
    """(tensors, the file to name in errors) of the first of ``names`` present in ``folder``; a name
    ending in ``.index.json`` stands for the shards its ``weight_map`` lists."""
    for name in names:
        path = folder / name
        if path.is_file():
            files = [path]
            if name.endswith(".index.json"):
                files = [folder / s for s in sorted(set(json.loads(path.read_text())["weight_map"].values()))]
            state: dict = {}
            for f in files:
                state.update(read_state_dict(f))
            return state, path
    raise BackendError(f"{folder} has no {names[0]}")


def safe_torch_load(path: str | Path):
    """``torch.load(weights_only=True)`` with the refusal of code-running pickles as one sentence."""
    import pickle

    import torch

    p = Path(path)
    try:
        return torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        culprit = _unsafe_global(str(exc))
        what = f"a pickled '{culprit}'" if culprit else "pickled objects other than tensors"
        raise BackendError(f"{p} holds {what}, which could run code; refusing to load it "
                           f"(only plain tensor state dicts are accepted)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise BackendError(f"{p} is not a readable PyTorch checkpoint: {_first_line(exc)}") from None


def _unsafe_global(message: str) -> str | None:
    """The global a weights-only unpickler refused, e.g. 'posix.system', from torch's message."""
    m = re.search(r"(?:Unsupported global|GLOBAL|global):?\s*(?:GLOBAL\s+)?([A-Za-z_][\w.]*)", message)
    return m.group(1) if m else None


def _flatten_checkpoint(obj, path: Path) -> dict:
    """Accept a raw state dict or the common {'state_dict': ...} / {'model': ...} wrappers."""
    import torch

    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model", "module"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping):
        raise BackendError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    out = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            out[str(key)] = value
    if not out:
        raise BackendError(f"{path} holds no tensors")
    return out


def strip_prefix(state: dict, prefix: str) -> dict:
    """Remove a wrapper prefix (e.g. DataParallel's 'module.') when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def check_strict(expected: Mapping[str, "torch.Tensor"], state: Mapping[str, "torch.Tensor"], source: str | Path,
                 original_name: Callable[[str], str] | None = None, what: str = "model") -> None:
    """Fail with one sentence naming ``source`` and the first key of ``state`` that does not match
    ``expected`` (a module's state dict): a missing key or a wrong shape first (in the module's order),
    then keys the module does not have. ``original_name`` maps a module key to the checkpoint's own
    spelling (for converted checkpoints) so the message names the key the user can find in their file."""
    name = original_name or (lambda k: k)
    for key, tensor in expected.items():
        if key not in state:
            raise BackendError(f"{source} is missing key '{name(key)}' that the {what} needs")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise BackendError(f"{source}: key '{name(key)}' has shape {tuple(state[key].shape)} but the {what} "
                               f"expects {tuple(tensor.shape)}")
    for key in state:
        if key not in expected:
            raise BackendError(f"{source} has key '{name(key)}' that the {what} does not have "
                               f"(wrong architecture or variant?)")


def load_strict(model: "torch.nn.Module", state: Mapping[str, "torch.Tensor"], source: str | Path,
                original_name: Callable[[str], str] | None = None, what: str = "model") -> None:
    """Give ``model`` the tensors of ``state`` (checked by ``check_strict``) in the model's dtypes.

    The module takes the tensors over instead of copying them, so a module built on the meta device
    (no memory, no time spent on initial values) ends up with exactly one copy of the weights.
    """
    expected = model.state_dict()
    check_strict(expected, state, source, original_name, what)
    model.load_state_dict({k: v.to(expected[k].dtype).contiguous() for k, v in state.items()}, strict=True, assign=True)


def parameter_count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's text (torch's messages run to paragraphs of advice)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return sentence[:160]
