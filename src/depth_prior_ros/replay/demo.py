"""`depth-prior demo`: synthetic day / night / rain bags -> the live depth node -> metrics, plots, report.

The backends it runs side by side come from :func:`demo_backends`: ``prior_only`` always, plus the
trained demo student when its weights are present (``depth_prior_ros/data/demo_student/``), aligned to
the prior by the node. The lead switches the default by changing that one function.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .config import BackendSpec, ReplayConfig
from .replay import run_replay

DEMO_STUDENT_DIR = Path(__file__).resolve().parents[1] / "data" / "demo_student"
DEMO_STUDENT_BACKEND = "ssd_student"


def demo_student_weights(folder: Path = DEMO_STUDENT_DIR) -> Path | None:
    """The demo student's safetensors file (its model card `<name>.card.json` lies beside it), or None."""
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors"))
    return files[0] if files else None


def demo_backends(student_dir: Path = DEMO_STUDENT_DIR) -> list[BackendSpec]:
    """Backends the demo compares: the trained demo student (when shipped), fused with the prior
    (``fusion`` confidence, the node's default) and alone (``fusion`` off), next to prior_only."""
    specs = []
    weights = demo_student_weights(student_dir)
    if weights is not None:
        for label, fusion in (("demo_student_fused", "confidence"), ("demo_student", "off")):
            specs.append(BackendSpec(DEMO_STUDENT_BACKEND, weights=str(weights), device="cpu", dtype="fp32",
                                     label=label, params={"fusion": fusion}))
    specs.append(BackendSpec("prior_only"))
    return specs


@dataclass
class DemoOptions:
    out: Path = Path("demo_out")
    frames: int = 8
    width: int = 640
    height: int = 360
    conditions: tuple[str, ...] = ("day", "night", "rain")
    seed: int = 0
    live: bool = True
    rate: float = 10.0
    domain_id: int | None = None
    backends: list[BackendSpec] | None = None
    progress: bool = True


def run_demo(options: DemoOptions, echo=print) -> dict:
    """Make the bags, replay them live, print the table. Returns timings and the report object."""
    from .synth_bag import SynthBagSpec, write_synth_bags

    out = Path(options.out)
    t0 = time.perf_counter()
    bag_dir = out / "bags"
    spec = SynthBagSpec(frames=options.frames, width=options.width, height=options.height, seed=options.seed)
    echo(f"[1/3] rendering {len(options.conditions)} synthetic bags ({', '.join(options.conditions)}), "
         f"{options.frames} frames at {options.width}x{options.height} -> {bag_dir}")
    made = write_synth_bags(bag_dir, options.conditions, spec, progress=options.progress, overwrite=True)
    t1 = time.perf_counter()
    backends = options.backends or demo_backends()
    mode = "live through the depth_node (ROS 2)" if options.live else "offline"
    echo(f"[2/3] replaying {mode} with backend(s): {', '.join(b.display for b in backends)}")
    # Lockstep with a generous timeout: a network on a 2-core CPU may take seconds per frame, and the
    # demo should score every frame rather than count slow ones as dropped.
    config = ReplayConfig(backends=backends, live=options.live, rate=options.rate, lockstep=True,
                          domain_id=options.domain_id, progress=options.progress, scalings=("metric", "median"),
                          frame_timeout=60.0, startup_timeout=180.0)
    report = run_replay([m["bag"] for m in made], out / "report", config)
    t2 = time.perf_counter()
    echo("[3/3] results")
    echo("")
    echo(report.console_summary())
    echo("")
    if any(b.name == "prior_only" for b in backends):
        echo("prior_only publishes the embodied ground prior alone: exact on the road up to the mount pose, "
             "while cars and buildings need a network.")
    agreement = report.gt_agreement()
    if agreement:
        echo(f"ground-truth check: LiDAR projection vs exact depth, AbsRel {agreement['abs_rel_mean']:.4f}")
    echo(f"report: {out / 'report' / 'report.md'}")
    echo(f"plots: {out / 'report' / 'plots'}; previews: {out / 'report' / 'previews'}")
    echo(f"output bag: {report.output_bag}")
    echo(f"time: bags {t1 - t0:.1f} s, replay {t2 - t1:.1f} s, total {t2 - t0:.1f} s")
    return {"report": report, "bags_s": t1 - t0, "replay_s": t2 - t1, "total_s": t2 - t0}
