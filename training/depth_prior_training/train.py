"""The training loop, shared by every recipe (read top to bottom).

    python -m depth_prior_training.train --config training/configs/tiny_ssd_teacher.yaml
    accelerate launch -m depth_prior_training.train --config training/configs/ssd_student_nuscenes.yaml

One Accelerator runs it on CPU, one GPU or several (each process draws its own slice of the step's
global batch). Checkpoints every ``checkpoint_every`` steps; ``--resume`` (or ``resume: true``)
continues from the newest checkpoint in the output folder exactly where the run stopped.

While it trains: ``OUT/train.csv``, ``OUT/validation.csv`` and ``OUT/tensorboard/`` grow row by row
(``logs.RunLog``); every ``validation.every`` steps the held-out frames of the data's frame stores are
scored against their LiDAR (``validation.Validator``: median-scaled and prior-aligned); the progress bar
shows the current loss and the last validation AbsRel.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

log = logging.getLogger("depth_prior_training")


def build_recipe(cfg: dict, device):
    if cfg["recipe"] == "ssd_teacher":
        from .ssd import SSDTeacher

        return SSDTeacher(cfg)
    if cfg["recipe"] == "ssd_student":
        from .ssd import SSDStudent

        return SSDStudent(cfg, device)
    from .jasmine_train import JasmineRecipe

    return JasmineRecipe(cfg, device)


def lr_lambda(warmup: int, total: int, kind: str):
    """Linear warm-up, then constant or cosine decay to 10% (a picklable-free plain closure)."""
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0
    return f


def run(cfg: dict, resume: bool = False, progress: bool = True, dataset=None) -> dict:
    """Train as ``cfg`` says; returns {"out_dir", "history": [per-step logs], "export": path}."""
    import torch
    from accelerate import Accelerator
    from tqdm import tqdm

    from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from .config import validate
    from .data import batch_at_step, build_dataset
    from .logs import RunLog
    from .validation import Validator, validation_frames

    cfg = validate(cfg)
    accelerator = Accelerator(cpu=bool(cfg.get("cpu", False)), mixed_precision=cfg.get("mixed_precision", "no"))
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    out_dir = Path(cfg.get("output_dir", "runs/" + cfg["recipe"]))
    steps, batch_size = int(cfg["steps"]), int(cfg.get("batch_size", 4))

    # 1. data, model, optimiser, schedule
    if dataset is None:
        dataset = build_dataset(cfg.get("data", {}), progress=progress)
    recipe = build_recipe(cfg, accelerator.device)
    params = [p for m in recipe.modules.values() for p in m.parameters() if p.requires_grad]
    opt_cfg = cfg.get("optimizer", {})
    optimizer = torch.optim.AdamW(params, lr=float(opt_cfg.get("lr", 1e-4)),
                                  weight_decay=float(opt_cfg.get("weight_decay", 0.0)),
                                  betas=tuple(opt_cfg.get("betas", (0.9, 0.999))))
    sched_cfg = cfg.get("scheduler", {})
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(int(sched_cfg.get("warmup", 0)), steps, sched_cfg.get("kind", "constant")))
    # Modules without trainable parameters (a weight average) are not wrapped: DDP refuses them.
    names = [n for n, m in recipe.modules.items() if any(p.requires_grad for p in m.parameters())]
    prepared = accelerator.prepare(*[recipe.modules[n] for n in names], optimizer, scheduler)
    recipe.modules = {n: prepared[names.index(n)] if n in names else m.to(accelerator.device)
                      for n, m in recipe.modules.items()}
    optimizer, scheduler = prepared[len(names):]
    for m in recipe.modules.values():
        m.train()

    # 2. resume
    start = 0
    if resume or cfg.get("resume", False):
        found = latest_checkpoint(out_dir)
        if found is not None:
            start = load_checkpoint(found, recipe.modules, optimizer, scheduler)
            log.info("resumed from %s at step %d", found, start)

    # 3. logs and validation (main process only)
    main = accelerator.is_main_process
    val_cfg = cfg.get("validation", {})
    val_every = int(val_cfg.get("every", 0))
    validator = None
    if main and val_every and hasattr(recipe, "predict_for_validation"):
        frames = validation_frames(getattr(dataset, "stores", []), val_cfg.get("max_frames"))
        validator = Validator(frames) if frames else None
    run_log = RunLog(out_dir, resume=start > 0, tensorboard=bool(cfg.get("tensorboard", True)),
                     first_step=start) if main else None
    last_val: dict = {}

    def validate_now(step: int) -> None:
        nonlocal last_val
        for m in recipe.modules.values():
            m.eval()
        last_val = validator(recipe.predict_for_validation)
        for m in recipe.modules.values():
            m.train()
        run_log.validate(step, {**last_val, "wall_s": time.time() - t0})

    # 4. the loop
    history, every = [], int(cfg.get("checkpoint_every", 0))
    clip = float(opt_cfg.get("grad_clip", 1.0))
    t0 = time.time()
    if validator is not None and start == 0:
        validate_now(0)
    # ``stop_at`` ends this process early (a scheduled pre-emption); a later --resume finishes the run.
    end = min(steps, int(cfg.get("stop_at") or steps))
    bar = tqdm(range(start, end), desc=cfg["recipe"], disable=not progress or not main)
    for step in bar:
        batch = batch_at_step(dataset, step, batch_size, seed, accelerator.process_index, accelerator.num_processes)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        loss, logs = recipe.loss(batch, step)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if clip > 0:
            accelerator.clip_grad_norm_(params, clip)
        optimizer.step()
        scheduler.step()
        if hasattr(recipe, "after_step"):
            recipe.after_step(step)
        logs["step"], logs["lr"] = step + 1, scheduler.get_last_lr()[0]
        history.append(logs)
        if main:
            run_log.step(step + 1, {**logs, "wall_s": time.time() - t0})
            if validator is not None and ((step + 1) % val_every == 0 or step + 1 == end):
                validate_now(step + 1)
            postfix = {"loss": f"{logs['loss']:.4f}"}
            if "median_abs_rel" in last_val:
                postfix["val_absrel"] = f"{last_val['median_abs_rel']:.3f}"
            bar.set_postfix(postfix)
        if every and (step + 1) % every == 0 and main:
            save_checkpoint(out_dir, step + 1, recipe.modules, optimizer, scheduler, keep=int(cfg.get("keep", 2)))
    accelerator.wait_for_everyone()
    if run_log is not None:
        run_log.close()

    # 5. export
    result = {"out_dir": str(out_dir), "history": history, "wall_s": time.time() - t0, "recipe": recipe,
              "validation": last_val}
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if every and end % every and end > start:
            save_checkpoint(out_dir, end, recipe.modules, optimizer, scheduler, keep=int(cfg.get("keep", 2)))
        if cfg.get("export", True) and end == steps:
            result["export"] = str(recipe.export(out_dir / "export"))
    return result


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="depth_prior_training.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML config (training/configs/*.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.set)
        result = run(cfg, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "export" in result:
        print(f"exported {result['export']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
