"""`depth-prior demo`: synthetic bags -> live depth node -> table, report, plots and output bag (small run)."""
from __future__ import annotations

import pytest
from helpers_replay import DEMO_DOMAIN, count_messages, read_metrics

from depth_prior_ros.cli import main
from depth_prior_ros.replay.demo import demo_backends


def test_demo_backends_add_the_student_only_when_its_weights_exist(tmp_path):
    assert [b.display for b in demo_backends(tmp_path / "absent")] == ["prior_only"]
    folder = tmp_path / "demo_student"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    specs = demo_backends(folder)
    assert [b.display for b in specs] == ["demo_student_fused", "demo_student", "prior_only"]
    assert specs[0].weights.endswith("model.safetensors") and specs[0].name == "ssd_student"
    assert [b.node_params()["fusion"] for b in specs[:2]] == ["confidence", "off"]


@pytest.mark.ros
def test_demo_runs_the_live_node_and_reports_per_condition(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEPTH_PRIOR_ROS_DOMAIN_ID", str(DEMO_DOMAIN))
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DEMO_DOMAIN))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "2", "--width", "320", "--height", "180",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for text in ("live through the depth_node", "road pixels", "rain", "night", "report:",
                 "output bag:"):
        assert text in printed, text
    table_rows = [line for line in printed.splitlines() if line.startswith("prior_only")]
    assert {row.split()[1] for row in table_rows} >= {"day", "night", "rain", "all"}
    report = out / "report"
    metrics = read_metrics(report)
    assert metrics["complete"] and metrics["run"]["mode"] == "live"
    for condition in ("day", "night", "rain"):
        assert metrics["summary"]["prior_only"][condition]["road"]["metric"]["abs_rel"] <= 0.02
    assert metrics["timing"]["prior_only"]["dropped"] == 0
    # The shipped demo student must really run (not fall back to the prior) and beat prior_only.
    if "demo_student" in metrics["summary"]:
        for condition in ("day", "night", "rain"):
            student = metrics["summary"]["demo_student"][condition]["all"]["metric"]["abs_rel"]
            prior = metrics["summary"]["prior_only"][condition]["all"]["metric"]["abs_rel"]
            assert student < prior, (condition, student, prior)
    assert metrics["gt_agreement"]["abs_rel_max"] <= 0.01
    for name in ("report.md", "frames.csv", "plots/per_condition.png", "plots/error_vs_distance.png",
                 "plots/latency.png"):
        assert (report / name).exists(), name
    assert count_messages(report / "output_bag")["/prior_only/depth"] == 6
    assert sorted(p.name for p in (out / "bags").iterdir()) == ["day", "night", "rain"]
