"""Short soak for CI: 300 frames through a live depth_node at its maximum rate (the full 5,000-frame run
is `depth-prior soak --frames 5000` / `make soak`). Checks resident memory after warm-up, the node log,
and exact frame accounting from the node's own /diagnostics counters."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from depth_prior_ros.bench.soak import SoakResult, _judge, run_soak, soak_markdown
from depth_prior_ros.processes import choose_domain_id

DOMAIN_ID = choose_domain_id()  # the run's domain; namespaces are unique per run on top of it
REPO = Path(__file__).resolve().parents[1]


def cli(*args, timeout=180):
    paths = [str(REPO / "src")] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    return subprocess.run([sys.executable, "-m", "depth_prior_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)}, cwd=REPO)


@pytest.mark.ros
def test_short_soak_keeps_memory_flat_and_accounts_for_every_frame(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    from depth_prior_ros.processes import isolated_ros

    with isolated_ros(DOMAIN_ID, "shm"):
        # 100 Hz is faster than the node's rate on a busy 2-core machine, so it sheds load while we watch.
        r = run_soak(frames=300, width=320, height=180, rate_hz=100.0, warmup_frames=100, qos_depth=100,
                     log_dir=tmp_path)
    report = soak_markdown(r)
    assert r.ok, report
    # The node's shipped best-effort input: the middleware may shed frames as well, the node counts exactly.
    assert r.reliability == "best_effort" and r.sent == 300 and 0 < r.received <= r.sent, report
    assert r.received == r.processed + r.dropped_total and r.pending == 0, report
    assert {reason for reason, n in r.dropped.items() if n} <= {"busy"}, report
    assert r.processed > 0 and 0 < r.outputs_seen <= r.processed, report
    assert r.growth_mb is not None and r.growth_mb <= 50.0, report
    assert not r.problems and r.exit_code == 0, report
    assert "PASS" in report.splitlines()[0]


@pytest.mark.ros
def test_soak_command_writes_its_report(tmp_path):
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    out = tmp_path / "SOAK.md"
    done = cli("soak", "--frames", "60", "--size", "160x90", "--rate", "50", "--warmup", "20", "--out", str(out),
               "--domain-id", str(DOMAIN_ID), "--log-dir", str(tmp_path), "--reliable")
    assert done.returncode == 0, done.stdout + done.stderr
    text = out.read_text()
    assert text.startswith("# depth_prior_ros soak") and "PASS" in text
    assert "| sent by publisher / received by node | 60 / 60 |" in text


def test_soak_command_rejects_bad_arguments_with_one_sentence():
    done = cli("soak", "--frames", "1")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "argument --frames: 1 is not an integer >= 2" in done.stderr
    done = cli("soak", "--size", "big")
    assert done.returncode == 2 and "WIDTHxHEIGHT" in done.stderr


def _result(**changes) -> SoakResult:
    base = dict(frames=100, width=64, height=48, rate_hz=50.0, sent=100, received=100, processed=70,
                dropped={"busy": 30}, pending=0, rss_warm_mb=100.0, rss_end_mb=101.0, rss_max_after_warm_mb=101.0,
                exit_code=0, warmup_frames=10)
    base.update(changes)
    return SoakResult(**base)


@pytest.mark.parametrize("changes, needle", [
    ({}, None),
    ({"received": 99, "reliability": "reliable"}, "sent 100 frames over reliable QoS but the node received 99"),
    ({"received": 101, "processed": 71}, "the publisher sent only 100"),
    ({"processed": 69}, "accounting broken"),
    ({"dropped": {"busy": 29, "error": 1}}, "unexpected exception"),
    ({"dropped": {"busy": 29, "no_camera_info": 1}}, "valid frames were dropped for no_camera_info (1)"),
    ({"rss_max_after_warm_mb": 151.0}, "resident memory grew 51.0 MB"),
    ({"problems": ["Traceback (most recent call last):"]}, "error line"),
    ({"exit_code": -9}, "exited with code -9"),
    ({"received": None}, "no /diagnostics counters"),
])
def test_soak_verdict_names_each_failure(changes, needle):
    r = _result(**changes)
    _judge(r)
    if needle is None:
        assert r.ok, r.failures
    else:
        assert not r.ok and any(needle in f for f in r.failures), r.failures
        assert all("\n" not in f for f in r.failures)
        assert "FAIL" in soak_markdown(r).splitlines()[0]
