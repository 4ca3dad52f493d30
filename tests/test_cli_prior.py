"""`depth-prior prior` end to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "depth_prior_ros.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_prior_command_on_the_real_utbm_calibration(shared_data, tmp_path):
    out = run_cli("prior", str(shared_data / "utbm_stereo" / "utbm_bb2_left.yaml"), "--height", "1.4",
                  "--pitch-deg", "3", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    depth = np.load(tmp_path / "prior_depth.npy")
    assert depth.shape == (768, 1024) and np.nanmin(depth) > 1.0
    assert (tmp_path / "prior_depth.png").stat().st_size > 1000
    assert "height 1.400 m" in out.stdout


def test_prior_command_errors_are_one_sentence(tmp_path):
    missing = run_cli("prior", str(tmp_path / "nope.yaml"), "--height", "1.4")
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "does not exist" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_width: 640\nimage_height: 480\ncamera_matrix: {data: [0,0,0,0,0,0,0,0,1]}\n")
    zero_k = run_cli("prior", str(bad), "--height", "1.4")
    assert zero_k.returncode == 2 and "focal" in zero_k.stderr
