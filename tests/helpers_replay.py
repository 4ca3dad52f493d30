"""Test helpers for replay: small synthetic bags (tiny 320x180 camera) and report readers."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from depth_prior_ros.replay.synth_bag import SynthBagSpec, write_synth_bags

# ROS domains of the replay/demo tests (this area's share of 100-119).
LIVE_DOMAIN = 111
DEMO_DOMAIN = 112


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
