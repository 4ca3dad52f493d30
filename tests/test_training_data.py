"""Training data: synthetic sequences, project bags and the public layouts (KITTI raw + Eigen split,
nuScenes v1.0 tables, Oxford RobotCar) read from tiny fixture folders written here."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

cv2 = pytest.importorskip("cv2")
torch = pytest.importorskip("torch")

from depth_prior_training import data  # noqa: E402


def _png(path: Path, value: int, h=20, w=40, bayer=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w) if bayer else (h, w, 3), value, np.uint8)
    cv2.imwrite(str(path), img)


def test_synthetic_sample_has_exact_pose_and_depth():
    frames = data.synthetic_frames([3], width=64, height=32, progress=False)
    ds = data.SequenceDataset(frames, (32, 64))
    s = ds.sample(0)
    assert s["image"].shape == (3, 32, 64) and s["prev"].shape == s["next"].shape == (3, 32, 64)
    assert torch.isfinite(s["T_prev"]).all()
    # Forward driving: the previous camera sits behind the target, i.e. at +z of... the target sees it at -z.
    assert s["T_prev"][2, 3] > 0 > s["T_next"][2, 3]
    assert (s["depth"] > 0).float().mean() > 0.5 and not s["has_translated"]


def test_batches_are_a_pure_function_of_seed_and_step():
    frames = data.synthetic_frames([3, 4], width=64, height=32, progress=False)
    ds = data.SequenceDataset(frames, (32, 64))
    a, b = data.batch_at_step(ds, 5, 3, seed=1), data.batch_at_step(ds, 5, 3, seed=1)
    assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])
    ranks = [data.batch_at_step(ds, 5, 2, seed=1, rank=r, world=2)["index"] for r in range(2)]
    assert torch.equal(torch.cat(ranks), data.batch_at_step(ds, 5, 4, seed=1)["index"])


def test_kitti_raw_eigen_split(tmp_path):
    drive = "2011_09_26/2011_09_26_drive_0001_sync"
    for i in range(3):
        _png(tmp_path / drive / "image_02" / "data" / f"{i:010d}.png", 10 * i)
    (tmp_path / "2011_09_26" / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\nR_rect_00: 1 0 0 0 1 0 0 0 1\n"
        "P_rect_02: 30 0 20 0 0 30 10 0 0 0 1 0\nP_rect_03: 30 0 20 -5 0 30 10 0 0 0 1 0\n")
    (tmp_path / "2011_09_26" / "calib_velo_to_cam.txt").write_text(
        "R: 0 -1 0 0 0 -1 1 0 0\nT: 0 0 0\n")  # velodyne x forward -> camera z
    velo = tmp_path / drive / "velodyne_points" / "data" / "0000000001.bin"
    velo.parent.mkdir(parents=True)
    np.array([[10, 0, 0, 1], [20, 0, 0, 1], [5, -1, 0, 1]], np.float32).tofile(velo)
    split = tmp_path / "train_files.txt"
    split.write_text(f"{drive} 1 l\n")
    loader = data.kitti_frames(tmp_path, split, with_lidar=True)
    assert loader.length == 1
    f = loader(0)
    assert f.image[0, 0, 0] == 10 and f.prev[0, 0, 0] == 0 and f.next[0, 0, 0] == 20
    assert f.K[0, 0] == 30 and f.K[0, 2] == 20
    assert f.depth[10, 20] == pytest.approx(10.0)  # nearest of the two points on the optical axis
    assert f.depth[10, 26] == pytest.approx(5.0)   # y = -1 m (right) at 5 m -> u = 20 + 30 / 5
    with pytest.raises(data.DataError, match="not 'DATE/DRIVE_sync INDEX l\\|r'"):
        data.parse_eigen_split(["2011_09_26/x 1"])


def test_nuscenes_tables(tmp_path):
    v = tmp_path / "v1.0-mini"
    v.mkdir()
    (v / "sensor.json").write_text(json.dumps([{"token": "s1", "channel": "CAM_FRONT", "modality": "camera"}]))
    K = [[50, 0, 20], [0, 50, 10], [0, 0, 1]]
    (v / "calibrated_sensor.json").write_text(json.dumps([{"token": "c1", "sensor_token": "s1", "camera_intrinsic": K}]))
    rows = []
    for i, tok in enumerate(["a", "b", "c"]):
        name = f"sweeps/CAM_FRONT/{tok}.jpg"
        _png(tmp_path / name, 40 * (i + 1))
        rows.append({"token": tok, "filename": name, "calibrated_sensor_token": "c1", "timestamp": i,
                     "is_key_frame": tok == "b", "prev": {"a": "", "b": "a", "c": "b"}[tok],
                     "next": {"a": "b", "b": "c", "c": ""}[tok]})
    (v / "sample_data.json").write_text(json.dumps(rows))
    loader = data.nuscenes_frames(tmp_path)
    assert loader.length == 1
    f = loader(0)
    assert abs(int(f.image[0, 0, 0]) - 80) <= 2 and abs(int(f.prev[0, 0, 0]) - 40) <= 2
    assert f.K[0, 0] == 50 and f.name == "b"


def test_robotcar_bayer_folder(tmp_path):
    stamps = [1000, 2000, 3000, 4000]
    for i, s in enumerate(stamps):
        _png(tmp_path / "stereo" / "left" / f"{s}.png", 50 + i, h=40, bayer=True)
    (tmp_path / "stereo.timestamps").write_text("".join(f"{s} 1\n" for s in stamps))
    loader = data.robotcar_frames(tmp_path, (100, 100, 20, 15), crop_bottom=8)
    assert loader.length == 2
    f = loader(0)
    assert f.image.shape == (32, 40, 3) and f.name == "2000.png"
    assert f.K[0, 0] == 100


def test_project_bag_triples(tmp_path):
    """A bag with named topics and no LiDAR or tf: a static camera height, frames streamed into a store."""
    pytest.importorskip("rosbags")
    from depth_prior_ros.replay import bag_io

    bag = tmp_path / "cam"
    K = np.array([[40.0, 0, 20], [0, 40, 10], [0, 0, 1]])
    with bag_io.BagWriter(bag) as w:
        for i in range(5):
            ns = (i + 1) * 100_000_000
            img = np.full((20, 40, 3), 30 * i, np.uint8)
            w.write("/cam/image", bag_io.make_image(img, ns, "cam"), bag_io.IMAGE, ns)
            w.write("/cam/info", bag_io.make_camera_info(K, 40, 20, ns, "cam"), bag_io.CAMERA_INFO, ns)
    cfg = {"source": "bag", "bags": [str(bag)], "image_topic": "/cam/image", "info_topic": "/cam/info",
           "lidar_topic": "", "pose": "static", "size": [20, 40], "holdout_every": 0, "motion": {"mode": "none"}}
    ds = data.build_dataset(cfg, progress=False, cache_dir=tmp_path / "cache")
    assert len(ds) == 2  # frame 0 has no past; of frames 1-4 the ends lack a neighbour
    f = ds.frame(0)
    assert f.prev[0, 0, 0] == 30 and f.image[0, 0, 0] == 60 and f.next[0, 0, 0] == 90
    assert np.allclose(f.K, K)
    with pytest.raises(data.DataError, match="'/nope'"):
        data.build_dataset(dict(cfg, image_topic="/nope"), progress=False, cache_dir=tmp_path / "cache2")


def test_translations_attach_from_a_gdt_manifest(tmp_path):
    from depth_prior_training import gdt
    from depth_prior_training.synthetic import fallback_translate

    frames = data.synthetic_frames([3], width=64, height=32, progress=False)
    gdt.translate_dataset(frames, lambda im, c, d, l, s: fallback_translate(im, c, d, l, s), ["night"], tmp_path,
                          progress=False)
    data.attach_translations(frames, tmp_path / "manifest.jsonl")
    ds = data.SequenceDataset(frames, (32, 64), conditions=["night"], translate_probability=1.0)
    s = ds.sample(0, rng=np.random.default_rng(0))
    assert bool(s["has_translated"]) and float(s["translated"].mean()) < float(s["image"].mean())
