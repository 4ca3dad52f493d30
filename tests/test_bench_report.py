"""`depth-prior bench`: the quick run writes a valid, commit-ready report (no timing assertions: numbers
on a shared CI machine say nothing; only that each is there, in ms and as a ratio to the baseline)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from depth_prior_ros.bench import core as C
from depth_prior_ros.bench.machine import machine_info
from depth_prior_ros.bench.report import render
from depth_prior_ros.bench.timing import Timing, measure, percentiles
from depth_prior_ros.processes import choose_domain_id

REPO = Path(__file__).resolve().parents[1]
DOMAIN_ID = choose_domain_id()  # the run's domain; namespaces are unique per run on top of it
NUMBER = r"(?:\d+(?:\.\d+)?|n/a)"
RATIO = r"(?:\d+(?:\.\d+)?x|n/a)"


def cli(*args, timeout=600):
    paths = [str(REPO / "src")] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run([sys.executable, "-m", "depth_prior_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def table_rows(text: str, heading: str) -> list[list[str]]:
    """Cells of the first markdown table after ``heading`` (header and separator rows dropped)."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_timing_keeps_every_sample():
    t = measure(lambda: sum(range(100)), min_time_s=0.0, min_repeats=7, warmup=1)
    assert t.n == 7 and all(s >= 0 for s in t.samples_ms) and t.median >= 0
    assert Timing(()).n == 0 and percentiles([]) == (pytest.approx(float("nan"), nan_ok=True),) * 2


def test_machine_info_names_the_hardware_and_the_libraries():
    info = machine_info(REPO)
    for key in ("CPU", "cores usable", "RAM", "GPU", "python", "numpy", "torch", "onnxruntime", "rclpy", "revision"):
        assert info.get(key), key
    assert int(info["cores usable"]) >= 1


def test_report_gives_every_stage_in_ms_and_as_a_ratio():
    core = C.run_core(sizes=("640x360", "1600x900"), quick=True)
    text = render(machine_info(), core, None, None, quick=True, command="depth-prior bench --quick",
                  sections=("core", "stages"))
    rows = table_rows(text, "## 1. Core stages at 1600x900")
    assert [r[0] for r in rows] == list(C.FULL_STAGES)
    for stage, ms, ratio, samples, _note in rows:
        assert re.fullmatch(NUMBER, ms) and re.fullmatch(RATIO, ratio) and int(samples) >= 1, (stage, ms, ratio)
    per_size = table_rows(text, "## 2. Pipeline stages per resolution")
    assert per_size[0][0] == "baseline: float32 frame copy"
    for row in per_size[1:]:
        assert all(re.fullmatch(rf"{NUMBER} \({RATIO}\)", cell) for cell in row[1:]), row
    targets = table_rows(text, "## Targets")
    assert {t[0].split(" at ")[0] for t in targets} >= {"ground_depth recompute", "alignment fit (affine_disparity)"}
    assert all(t[3] in ("met", "**missed**", "n/a") for t in targets)


def test_bench_rejects_bad_arguments_with_one_sentence():
    done = cli("bench", "--sections", "transport", "--size", "huge", "--out", os.devnull)
    assert done.returncode == 2 and "WIDTHxHEIGHT" in done.stderr and done.stderr.strip().count("\n") == 0
    done = cli("bench", "--sections", "nothing")
    assert done.returncode == 2 and "invalid choice" in done.stderr


@pytest.mark.slow
@pytest.mark.ros
def test_quick_bench_writes_a_valid_report(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    out = tmp_path / "RESULTS.md"
    done = cli("bench", "--quick", "--out", str(out), "--domain-id", str(DOMAIN_ID), "--log-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    text = out.read_text()
    assert text.startswith("# depth_prior_ros benchmark results")
    for heading in ("## Targets", "## Machine", "## 1. Core stages at 1600x900", "## 2. Pipeline stages per resolution",
                    "## 3. ROS transport floor vs depth_node (prior_only), 1600x900 rgb8",
                    "## 4. Depth networks on cpu: PyTorch vs ONNX Runtime"):
        assert heading in text, heading
    machine = dict((r[0], r[1]) for r in table_rows(text, "## Machine"))
    assert machine["CPU"] and machine["rclpy"] and machine["cores usable"].isdigit()
    transport = table_rows(text, "## 3. ROS transport")
    targets = {r[0] for r in transport}
    assert {"echo", "depth_node"} <= targets
    for row in transport:
        target, rate, sent, outputs, thr, ratio, p50, p99, p99_ratio, rss = row
        assert int(sent) > 0 and int(outputs) > 0, row  # both nodes answered over loopback
        assert re.fullmatch(NUMBER, p50) and re.fullmatch(RATIO, ratio) and re.fullmatch(RATIO, p99_ratio), row
    stages = table_rows(text, "### Where depth_node spends a frame")
    assert stages and "node" in text.split("### Where depth_node spends a frame")[1].splitlines()[4]
    networks = table_rows(text, "## 4. Depth networks")
    runtimes = {r[1].split(" ")[0] for r in networks}
    assert {"PyTorch", "ONNX"} <= runtimes, networks
    assert "Traceback" not in text
