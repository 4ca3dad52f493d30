"""Training checkpoints: weights in safetensors, optimiser/scheduler/step/RNG in a weights-only torch file.

Layout of ``OUT/checkpoints/step_000123/``:
  modules.safetensors   every trainable module's state dict, keys prefixed ``<module name>.``
  state.pt              {"step", "optimizer", "scheduler", "torch_rng", "cuda_rng"} (torch.load weights_only)
Resuming restores all of them, and the data order is a pure function of (seed, step), so a resumed
run continues exactly the run that was interrupted.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch


def unwrap(module):
    return getattr(module, "module", module)


def save_modules(modules: dict, path: str | Path, meta: dict | None = None) -> Path:
    """All modules' tensors in one safetensors file (``name.key``), with JSON ``meta`` in its header."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{k}": v.detach().contiguous().cpu()
               for name, m in modules.items() for k, v in unwrap(m).state_dict().items()}
    save_file(tensors, str(path), metadata={"meta": json.dumps(meta or {})})
    return path


def load_modules(modules: dict | None, path: str | Path, meta_only: bool = False):
    """Load ``save_modules`` output into ``modules`` (strict); returns the meta dict."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    if meta_only:
        return meta
    tensors = load_file(str(path))
    for name, m in modules.items():
        prefix = name + "."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        missing, unexpected = unwrap(m).load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {path} does not fit module '{name}': "
                             f"{'missing ' + missing[0] if missing else 'unexpected ' + unexpected[0]}")
    return meta


def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step_{step:06d}"


def save_checkpoint(out_dir: str | Path, step: int, modules: dict, optimizer, scheduler, keep: int = 2) -> Path:
    """Write the checkpoint after ``step`` optimisation steps (atomically: a temp folder, then rename)."""
    import shutil

    final = checkpoint_dir(out_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_modules(modules, tmp / "modules.safetensors")
    state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(out_dir)[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if re.fullmatch(r"step_\d{6}", p.name) and (p / "state.pt").is_file())


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def load_checkpoint(folder: str | Path, modules: dict, optimizer, scheduler) -> int:
    """Restore a checkpoint folder into the live objects; returns the step to continue from."""
    folder = Path(folder)
    load_modules(modules, folder / "modules.safetensors")
    state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])
