"""Offline replay of synthetic day/night/rain bags: ground truth agreement, prior accuracy, report files."""
from __future__ import annotations

import numpy as np
import pytest
from helpers_replay import count_messages, make_synth_bags, read_frames_csv, read_metrics

from depth_prior_ros.replay.frames import FrameOptions, iter_frames
from depth_prior_ros.replay.replay import ReplayConfig, run_replay


@pytest.fixture(scope="module")
def synth_bags(tmp_path_factory):
    return make_synth_bags(tmp_path_factory.mktemp("synth"), frames=3)


def test_synthetic_bag_carries_every_topic_and_its_hints(synth_bags):
    counts = count_messages(synth_bags[0])
    for topic in ("/camera/image_raw", "/camera/camera_info", "/camera/depth_gt", "/camera/road_mask",
                  "/camera/labels", "/lidar/points", "/tf"):
        assert counts[topic] == 3, topic
    assert counts["/tf_static"] == 1
    frames = list(iter_frames(synth_bags[1], FrameOptions()))
    assert [f.condition for f in frames] == ["night"] * 3
    f = frames[0]
    assert f.gt_source == "depth" and f.road.any() and f.road_mask_input is not None
    assert f.gt_agreement is not None and f.gt_agreement <= 0.01
    assert f.image.shape == (180, 320, 3) and f.lidar_points > 1000


def test_offline_replay_scores_the_prior_and_writes_the_report(synth_bags, tmp_path):
    out = tmp_path / "report"
    report = run_replay(synth_bags, out, ReplayConfig(progress=False, scalings=("metric", "median")))
    metrics = read_metrics(out)
    assert metrics["complete"] and metrics["error"] is None
    summary = metrics["summary"]["prior_only"]
    assert set(summary) == {"day", "night", "rain", "all"}
    for condition in ("day", "night", "rain"):
        road = summary[condition]["road"]["metric"]
        assert road["frames"] == 3 and road["abs_rel"] <= 0.02, condition  # the prior is exact on the road
        # Cars and buildings are not ground: the whole image is far worse for the prior alone.
        assert summary[condition]["all"]["metric"]["abs_rel"] > 5 * road["abs_rel"]
    # LiDAR projection and the exact depth topic agree.
    assert metrics["gt_agreement"]["abs_rel_max"] <= 0.01
    rows = read_frames_csv(out)
    assert len(rows) == 9 * 2 * 2  # frames x regions x scalings
    assert {r["gt_source"] for r in rows} == {"depth"}
    for name in ("report.md", "plots/error_vs_distance.png", "plots/per_condition.png", "plots/latency.png"):
        assert (out / name).stat().st_size > 0, name
    assert len(list((out / "previews").glob("*.png"))) == 3
    text = (out / "report.md").read_text()
    assert "status: **complete**" in text and "| prior_only | rain |" in text
    counts = count_messages(out / "output_bag")
    assert counts["/prior_only/depth"] == 9 and counts["/input/image"] == 9 and counts["/ground_truth/depth"] == 9
    assert "rain" in report.console_summary()


def test_offline_replay_is_deterministic_and_lidar_ground_truth_scores_the_same(synth_bags, tmp_path):
    a = run_replay(synth_bags[:1], tmp_path / "a", ReplayConfig(progress=False, write_bag=False))
    b = run_replay(synth_bags[:1], tmp_path / "b", ReplayConfig(progress=False, write_bag=False))
    assert a.summary() == b.summary()
    from depth_prior_ros.replay.frames import ReplayTopics

    lidar = run_replay(synth_bags[:1], tmp_path / "c",
                       ReplayConfig(frames=FrameOptions(gt_source="lidar", topics=ReplayTopics()), progress=False,
                                    write_bag=False))
    road_depth = a.summary()["prior_only"]["all"]["road"]["metric"]["abs_rel"]
    road_lidar = lidar.summary()["prior_only"]["all"]["road"]["metric"]["abs_rel"]
    assert road_lidar <= 0.02 and abs(road_lidar - road_depth) < 0.01
    assert {r.gt_source for r in lidar.records} == {"lidar"}


def test_prior_aligned_and_road_mask_options(synth_bags, tmp_path):
    """scaling 'prior' falls back to the output without a network; use_road_mask feeds the mask to the prior."""
    cfg = ReplayConfig(progress=False, write_bag=False, scalings=("prior", "lstsq"),
                       node_params={"use_road_mask": True})
    report = run_replay(synth_bags[:1], tmp_path / "m", cfg)
    s = report.summary()["prior_only"]["all"]
    assert s["road"]["prior"]["abs_rel"] <= 0.02
    # With the mask the scene prior adds vertical surfaces on the road edge: better than ground only.
    plain = run_replay(synth_bags[:1], tmp_path / "p", ReplayConfig(progress=False, write_bag=False,
                                                                    scalings=("prior",)))
    assert s["all"]["prior"]["abs_rel"] < plain.summary()["prior_only"]["all"]["all"]["prior"]["abs_rel"]


def test_cli_makes_bags_and_replays_them(tmp_path, capsys):
    from depth_prior_ros.cli import main

    assert main(["bag", "synth", "--out", str(tmp_path / "bags"), "--frames", "1", "--preset", "tiny",
                 "--conditions", "day", "--no-progress"]) == 0
    assert main(["replay", str(tmp_path / "bags" / "day"), "--out", str(tmp_path / "out"), "--no-progress",
                 "--scaling", "metric", "--condition", "sunny"]) == 0
    printed = capsys.readouterr().out
    assert "sunny" in printed and "road pixels" in printed and "AbsRel" in printed
    assert np.isfinite(read_metrics(tmp_path / "out")["summary"]["prior_only"]["sunny"]["road"]["metric"]["abs_rel"])
