"""The issue-14 report: the SSD teacher and student trained on a real KITTI raw drive, checked against LiDAR.

    python -m depth_prior_training.kitti_report \\
        --drive ../shared/data/kitti_raw_seq/2011_09_26/2011_09_26_drive_sample_sync --out runs/kitti_report

Stages (each writes into OUT; ``--stages`` picks some, e.g. ``--stages student node``):
  teacher   the teacher on the drive folder (configs/kitti_raw_teacher.yaml): moving frames only,
            every 5th held out, validated against the held-out frames' LiDAR while it trains
  bag       ``depth-prior bag from-kitti`` of the same drive, and the same training read from that bag
  gdt       night and rain translations of the student's training frames (classical translator)
  student   the SSD student distilled from the teacher on original + translated frames
            (configs/kitti_raw_student.yaml)
  node      the held-out frames as a bag of their own, replayed through the node's pipeline
            (``depth-prior replay``'s code) with the student (``ssd_student``) and the teacher (exported
            to ONNX, ``onnx`` backend): both scored on the same frames, metric (prior-aligned) and median
  summary   OUT/summary.json and OUT/curve.png (loss and held-out AbsRel against steps)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
REPO = CONFIGS.parents[1]
STAGES = ("teacher", "bag", "gdt", "student", "node", "summary")


def resolve_road_segmenter(cfg: dict) -> None:
    """The configs name the road segmenter relative to the repository root; make its paths absolute."""
    road = cfg["data"].get("road_segmenter")
    if road:
        cfg["data"]["road_segmenter"] = {k: str(REPO / v) for k, v in road.items()}


def teacher_config(drive: Path, out: Path, bag: Path | None = None, overrides=()) -> dict:
    from .config import load_config

    cfg = load_config(CONFIGS / "kitti_raw_teacher.yaml", list(overrides))
    cfg["data"]["cache_dir"] = str(out / "cache")
    resolve_road_segmenter(cfg)
    if bag is None:
        cfg["data"]["drives"] = [str(drive)]
        cfg["output_dir"] = str(out / "teacher")
    else:
        cfg["data"] = dict(cfg["data"], source="bag", bags=[str(bag)])
        cfg["data"].pop("drives", None)
        cfg["output_dir"] = str(out / "teacher_bag")
    return cfg


def student_config(drive: Path, out: Path, overrides=()) -> dict:
    from .config import load_config

    cfg = load_config(CONFIGS / "kitti_raw_student.yaml", list(overrides))
    cfg["data"].update(drives=[str(drive)], cache_dir=str(out / "cache"), manifest=str(out / "gdt" / "manifest.jsonl"))
    resolve_road_segmenter(cfg)
    cfg["output_dir"] = str(out / "student")
    cfg["student"]["teacher_checkpoint"] = str(out / "teacher" / "export" / "teacher.safetensors")
    return cfg


def timed_run(cfg: dict) -> dict:
    from .train import run

    start, cpu = time.time(), time.process_time()
    result = run(cfg)
    return {"wall_s": time.time() - start, "cpu_s": time.process_time() - cpu, "validation": result["validation"],
            "steps": cfg["steps"], "export": result.get("export")}


def make_bag(drive: Path, bag: Path) -> None:
    """The drive as a bag, by the node package's own command."""
    if bag.exists():
        return
    subprocess.run([sys.executable, "-m", "depth_prior_ros.cli", "bag", "from-kitti", str(drive), "--out", str(bag),
                    "--no-progress"], check=True)


def held_out_bag(source: Path, store, out: Path) -> Path:
    """The store's held-out frames (image, camera_info, LiDAR at their stamps) plus tf_static, as a bag."""
    from depth_prior_ros.replay import bag_io

    stamps = {f.stamp_ns for f in store.validation_frames}
    if out.exists():
        return out
    with bag_io.BagReader(source) as reader:
        hints = reader.custom_data
        with bag_io.BagWriter(out, custom_data=hints) as writer:
            for m in reader.messages():
                if m.topic == "/tf_static" or m.stamp_ns in stamps:
                    writer.write(m.topic, m.msg, m.msgtype, m.log_ns)
    return out


def node_backends(onnx_path: Path, student_weights: Path, segmenter: dict | None) -> list:
    """The replayed backends: teacher (ONNX) and student (``ssd_student``) on the node's shipped defaults
    (``teacher``, ``student``: no segmenter, none is embedded), and, when the configs' road segmenter is
    present, the same two with the node's ``segmentation_weights`` / ``segmentation_card`` set to it
    (``teacher_segmenter``, ``student_segmenter``: the deployment these networks were trained for, whose
    ground-prior loss used that segmenter's masks). Nothing else differs from the defaults."""
    from depth_prior_ros.replay.config import BackendSpec

    nets = (("teacher", "onnx", onnx_path), ("student", "ssd_student", student_weights))
    variants = [("", {})]
    if segmenter:
        variants.append(("_segmenter", {"segmentation_weights": segmenter["weights"],
                                        "segmentation_card": segmenter["card"]}))
    return [BackendSpec(backend, str(path), device="cpu", dtype="fp32", label=label + suffix, params=params)
            for suffix, params in variants for label, backend, path in nets]


def node_stage(out: Path, student_weights: Path, teacher_checkpoint: Path) -> dict:
    """Student and teacher through the node's pipeline on the held-out frames (replay's code path)."""
    import torch

    from depth_prior_ros.replay.frames import FrameOptions
    from depth_prior_ros.replay.metrics import EvalProtocol
    from depth_prior_ros.replay.config import ReplayConfig
    from depth_prior_ros.replay.replay import run_replay

    from .checkpoint import load_modules
    from .data import build_dataset
    from .export import export_teacher_onnx
    from .ssd import SSDTeacher

    bag_cfg = teacher_config(Path("."), out, bag=out / "kitti_bag")
    store = build_dataset(bag_cfg["data"], progress=False).stores[0]
    held = held_out_bag(out / "kitti_bag", store, out / "held_out_bag")
    meta = load_modules(None, teacher_checkpoint, meta_only=True)
    teacher = SSDTeacher({"teacher": meta["teacher"]})
    load_modules(teacher.modules, teacher_checkpoint)
    with torch.no_grad():
        onnx_path = export_teacher_onnx(teacher, out / "teacher_onnx" / "teacher.onnx",
                                        training_data="KITTI raw drive (moving frames, self-supervised)")
    segmenter = bag_cfg["data"].get("road_segmenter")
    if segmenter and not Path(segmenter["weights"]).is_file():
        segmenter = None  # the shared models are absent: the defaults alone
    backends = node_backends(onnx_path, student_weights, segmenter)
    config = ReplayConfig(frames=FrameOptions(), protocol=EvalProtocol.kitti(), scalings=("metric", "median", "prior"),
                          backends=backends, write_bag=False, progress=False)
    report = run_replay([held], out / "node_replay", config)
    summary = report.summary()
    return {spec.display: {scaling: {k: summary[spec.display]["all"]["all"][scaling][k]
                                     for k in ("abs_rel", "rmse", "delta1", "coverage", "frames")}
                           for scaling in ("metric", "median", "prior")}
            for spec in backends}


def read_csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def curve_plot(out: Path, runs: dict[str, Path], constant_abs_rel: float | None) -> Path:
    """Loss and held-out AbsRel (median-scaled, prior-aligned) against steps, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    for (label, folder), colour in zip(runs.items(), ("tab:blue", "tab:orange", "tab:green")):
        train = read_csv(folder / "train.csv")
        val = read_csv(folder / "validation.csv")
        ax_loss.plot([int(r["step"]) for r in train], [float(r["loss"]) for r in train], color=colour, lw=0.6,
                     alpha=0.8, label=label)
        steps = [int(r["step"]) for r in val]
        ax_val.plot(steps, [float(r["median_abs_rel"]) for r in val], color=colour, marker="o", ms=3,
                    label=f"{label}: median-scaled")
        if val and "prior_abs_rel" in val[0]:
            ax_val.plot(steps, [float(r["prior_abs_rel"] or "nan") for r in val], color=colour, ls="--",
                        label=f"{label}: prior-aligned (metric)")
    if constant_abs_rel is not None:
        ax_val.axhline(constant_abs_rel, color="grey", ls=":", label="constant depth (median-scaled)")
    ax_val.axhline(0.25, color="red", lw=0.8, ls=":", label="target 0.25")
    ax_loss.set(xlabel="step", ylabel="training loss", title="training loss (each run its own objective)")
    ax_val.set(xlabel="step", ylabel="AbsRel vs LiDAR (held-out frames)", title="held-out validation", ylim=(0, 0.6))
    ax_loss.legend(fontsize=8)
    ax_val.legend(fontsize=7)
    fig.tight_layout()
    path = out / "curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def constant_baseline(out: Path) -> float:
    """Median-scaled AbsRel of a constant depth on the held-out frames (the floor a network must beat)."""
    import numpy as np

    from .data import build_dataset
    from .validation import Validator, validation_frames

    cfg = json.loads((out / "teacher_config.json").read_text())
    stores = build_dataset(cfg["data"], progress=False).stores
    return Validator(validation_frames(stores))(lambda im: (np.ones(im.shape[:3], np.float32), "scale_depth"))[
        "median_abs_rel"]


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="depth_prior_training.kitti_report", description=__doc__.splitlines()[0])
    parser.add_argument("--drive", type=Path, required=True, help="a KITTI raw drive folder (..._sync)")
    parser.add_argument("--out", type=Path, default=Path("runs/kitti_report"))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="teacher config override")
    parser.add_argument("--student-set", action="append", default=[], metavar="KEY=VALUE",
                        help="student config override")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}

    def save():
        summary_path.write_text(json.dumps(summary, indent=2))

    if "teacher" in args.stages:
        cfg = teacher_config(args.drive, out, overrides=args.set)
        (out / "teacher_config.json").write_text(json.dumps(cfg, indent=2))
        summary["teacher"] = timed_run(cfg)
        save()
    if "bag" in args.stages:
        make_bag(args.drive, out / "kitti_bag")
        summary["teacher_bag"] = timed_run(teacher_config(args.drive, out, bag=out / "kitti_bag", overrides=args.set))
        save()
    if "gdt" in args.stages:
        from . import gdt

        cfg = student_config(args.drive, out, args.student_set)
        (out / "student_config.yaml").write_text(json.dumps(cfg, indent=2))  # JSON is YAML
        start = time.time()
        gdt.main(["--config", str(out / "student_config.yaml"), "--out", str(out / "gdt"), "--translator", "classical"])
        summary["gdt"] = {"wall_s": time.time() - start}
        save()
    if "student" in args.stages:
        summary["student"] = timed_run(student_config(args.drive, out, args.student_set))
        save()
    if "node" in args.stages:
        summary["node"] = node_stage(out, out / "student" / "export" / "model.safetensors",
                                     out / "teacher" / "export" / "teacher.safetensors")
        save()
    if "summary" in args.stages:
        summary["constant_depth_median_abs_rel"] = constant_baseline(out)
        runs = {k: out / k for k in ("teacher", "teacher_bag", "student") if (out / k / "validation.csv").is_file()}
        summary["curve"] = str(curve_plot(out, runs, summary["constant_depth_median_abs_rel"]))
        save()
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
