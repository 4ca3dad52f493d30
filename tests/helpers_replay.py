"""Test helpers for replay: small synthetic bags (tiny 320x180 camera) and report readers."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from depth_prior_ros.processes import choose_domain_id
from depth_prior_ros.replay.synth_bag import SynthBagSpec, write_synth_bags

# The ROS domain of the live replay and demo tests: the run's (namespaces keep the runs apart).
LIVE_DOMAIN = DEMO_DOMAIN = choose_domain_id()


def make_synth_bags(folder: Path, frames: int = 3, conditions=("day", "night", "rain"), **spec) -> list[Path]:
    made = write_synth_bags(folder, conditions, SynthBagSpec(frames=frames, preset="tiny", seed=3, **spec),
                            progress=False)
    return [Path(m["bag"]) for m in made]


def read_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def read_frames_csv(out: Path) -> list[dict]:
    with open(out / "frames.csv", newline="") as f:
        return list(csv.DictReader(f))


def count_messages(bag: Path) -> dict[str, int]:
    from depth_prior_ros.replay.bag_io import BagReader

    with BagReader(bag) as reader:
        return {t: s.count for t, s in reader.topics.items()}
