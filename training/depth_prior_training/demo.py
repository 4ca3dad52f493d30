"""Reproduce the committed demo student (src/depth_prior_ros/data/demo_student/).

    python -m depth_prior_training.demo --config training/configs/demo_student.yaml \\
        --out runs/demo_student --install src/depth_prior_ros/data/demo_student

1. render the synthetic training sequences (day-clear frames, exact depth, ego motion) and their
   night/rain versions with the classical translator;
2. train the day-clear teacher (``demo_teacher`` section; see README for the supervised-teacher deviation);
3. train the SSD student (teacher + semantic + photometric losses, translated with probability p);
4. export model.safetensors + card, evaluate through the node's pipeline on held-out seeds, write
   ``metrics.json`` and ``metrics.md``; ``--install`` copies the export to the package data folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import torch

    from .config import load_config, merge
    from .data import build_dataset
    from .evaluate import evaluate_synthetic, metrics_table
    from .train import run

    parser = argparse.ArgumentParser(prog="depth_prior_training.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", default="runs/demo_student")
    parser.add_argument("--install", default="", help="copy model.safetensors + card here when done")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted teacher/student runs from their newest checkpoints (same result)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.set)
    out = Path(args.out)
    t0 = time.time()

    dataset = build_dataset(cfg["data"])
    t_data = time.time() - t0
    teacher_cfg = merge(cfg, cfg["demo_teacher"])
    teacher_cfg.update(recipe="ssd_teacher", output_dir=str(out / "teacher"))
    teacher = run(teacher_cfg, dataset=dataset, resume=args.resume)
    t_teacher = time.time() - t0 - t_data
    student_cfg = dict(cfg)
    student_cfg.pop("demo_teacher")
    student_cfg.update(recipe="ssd_student", output_dir=str(out / "student"))
    student_cfg["student"] = dict(cfg.get("student", {}), teacher_checkpoint=teacher["export"])
    student = run(student_cfg, dataset=dataset, resume=args.resume)
    t_student = time.time() - t0 - t_data - t_teacher
    ev = cfg.get("evaluation", {})
    seeds = range(int(ev.get("seed_start", 90000)), int(ev.get("seed_start", 90000)) + int(ev.get("scenes", 24)))
    results = evaluate_synthetic(student["export"], seeds, int(ev.get("width", 320)), int(ev.get("height", 160)))
    summary = {"config": args.config, "overrides": args.set, "seed": cfg.get("seed", 0),
               "teacher_steps": teacher_cfg["steps"], "student_steps": student_cfg["steps"],
               "wall_s": {"data": t_data, "teacher": t_teacher, "student": t_student, "total": time.time() - t0},
               "threads": torch.get_num_threads(), "evaluation_seeds": [seeds.start, seeds.stop],
               "metrics": results,
               "final_losses": {"teacher": teacher["history"][-1], "student": student["history"][-1]}}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    table = metrics_table(results)
    (out / "metrics.md").write_text(table + "\n")
    print(table)
    print(json.dumps(summary["wall_s"]))
    if args.install:
        dest = Path(args.install)
        dest.mkdir(parents=True, exist_ok=True)
        export = Path(student["export"])
        for f in export.parent.iterdir():
            shutil.copy2(f, dest / f.name)
        (dest / "metrics.json").write_text(json.dumps(summary, indent=2))
        print(f"installed {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
