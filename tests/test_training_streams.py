"""Training from whole recordings: the streamed frame store (static frames dropped, sequence ends never
self-paired, every n-th frame held out), each stream source on a tiny real or synthetic recording,
distortion, stereo pairs, translations per source, and the validation hook against LiDAR."""
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

from depth_prior_training import data, motion, store, streams  # noqa: E402

KITTI_DRIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_raw_seq" / "2011_09_26" / \
    "2011_09_26_drive_sample_sync"
UTBM = Path(__file__).resolve().parents[2] / "shared" / "data" / "utbm_stereo"


def _build(frames, tmp_path, size=(48, 96), **kw):
    return store.build_store(iter(frames), store.StoreConfig(size=size, **kw), tmp_path / "store", progress=False)


@pytest.fixture(scope="module")
def synth_frames():
    """12 synthetic frames at 10 m/s; frames 4..7 stand still (the car waits: same image, same pose)."""
    return list(streams.synthetic_stream(7, 12, speed=10.0, standstill=(4, 8)))


def _kept(s):
    return [int(f.name.split("/")[-1]) for f in s.frames]


def test_static_frames_are_dropped_by_image_motion(synth_frames, tmp_path):
    s = _build(synth_frames, tmp_path, holdout_every=0, motion=motion.MotionConfig(mode="image", min_parallax_px=0.5))
    # Frame 0 has no past to have moved from; frames 5-7 repeat frame 4 (standing still).
    assert _kept(s) == [1, 2, 3, 4, 8, 9, 10, 11]
    assert s.stats["static_dropped"] == 4 and s.stats["motion"] == "px"
    assert all(t[0] < t[1] < t[2] for t in s.triplets) and (3, 4, 5) in s.triplets  # 4's next is 8 (slot 5)


def test_static_frames_are_dropped_by_odometry(synth_frames, tmp_path):
    s = _build(synth_frames, tmp_path, holdout_every=0,
               motion=motion.MotionConfig(mode="auto", min_step_m=0.5, min_parallax_m=1.5))
    assert s.stats["motion"] == "m" and _kept(s) == [1, 2, 3, 4, 8, 9, 10, 11]
    # 10 m/s at 10 Hz: 1 m per frame, so a 1.5 m parallax takes neighbours two frames away.
    assert s.triplets[0] == (0, 2, 4)


def test_slow_motion_takes_neighbours_further_away(tmp_path):
    slow = list(streams.synthetic_stream(7, 14, speed=2.0))
    near = _build(slow, tmp_path / "a", holdout_every=0, motion=motion.MotionConfig(mode="odometry", min_parallax_m=0.15))
    far = _build(slow, tmp_path / "b", holdout_every=0, motion=motion.MotionConfig(mode="odometry", min_parallax_m=0.5))
    assert near.triplets[0] == (0, 1, 2) and far.triplets[0] == (0, 3, 6)


def test_sequence_ends_are_dropped_never_self_paired(synth_frames, tmp_path):
    s = _build(synth_frames[:6], tmp_path, holdout_every=0, motion=motion.MotionConfig(mode="none"))
    assert _kept(s) == [1, 2, 3, 4, 5] and len(s) == 3  # the first and last kept frames lack a neighbour
    assert s.triplets == [(0, 1, 2), (1, 2, 3), (2, 3, 4)]  # never a frame with itself
    assert s.training_frame(0).name == s.frames[1].name
    ds = data.store_dataset([s], s.size)
    sample = ds.sample(0)
    assert not torch.equal(sample["prev"], sample["image"]) and not torch.equal(sample["next"], sample["image"])


def test_held_out_frames_are_neither_targets_nor_neighbours(synth_frames, tmp_path):
    s = _build(synth_frames, tmp_path, holdout_every=3, motion=motion.MotionConfig(mode="none"))
    held = {i for i, f in enumerate(s.frames) if f.held_out}
    assert held == {2, 5, 8}
    used = {j for t in s.triplets for j in t}
    assert not used & held
    # The neighbours skip the held-out frame: slot 1's next is slot 3 (0.2 s later, within max_gap_s).
    assert (0, 1, 3) in s.triplets
    tight = _build(synth_frames, tmp_path / "tight", holdout_every=3, max_gap_s=0.15,
                   motion=motion.MotionConfig(mode="none"))
    assert (0, 1, 3) not in tight.triplets and len(tight) < len(s)
    v = s.validation_data(s.frames[2])
    assert v is not None and len(v["z"]) > 100 and np.isfinite(v["T_ground_from_camera"]).all()


def test_store_reads_through_a_memory_map_and_is_reused(synth_frames, tmp_path):
    cfg = {"source": "synthetic_stream", "sequences": 1, "seed_start": 7, "frames_per_sequence": 6,
           "size": [48, 96], "motion": {"mode": "none"}, "holdout_every": 0}
    ds = data.build_dataset(cfg, progress=False, cache_dir=tmp_path)
    assert isinstance(ds.stores[0].images, np.memmap)
    folder = ds.stores[0].folder
    stamp = (folder / "index.json").stat().st_mtime_ns
    again = data.build_dataset(cfg, progress=False, cache_dir=tmp_path)
    assert again.stores[0].folder == folder and (folder / "index.json").stat().st_mtime_ns == stamp
    assert len(ds) == 3 and ds.sample(0)["image"].shape == (3, 48, 96)


def test_stereo_pairs_on_synthetic_frames(tmp_path):
    """The stereo partner warped with the exact depth and the rig transform reproduces the left image."""
    from depth_prior_training.warp import warp_image

    frames = list(streams.synthetic_stream(3, 4, stereo_baseline=0.5))
    f = frames[1]
    img = lambda a: torch.from_numpy(a).permute(2, 0, 1).float()[None] / 255  # noqa: E731
    depth = torch.from_numpy(np.nan_to_num(f.gt(), nan=1e4))[None, None]
    K = torch.from_numpy(f.K).float()[None]
    T = torch.from_numpy(f.T_stereo_from_camera).float()[None]
    from depth_prior_training import losses

    good = losses.photometric_error(warp_image(img(f.stereo), depth, K, T), img(f.image)).median()
    bad = losses.photometric_error(warp_image(img(f.stereo), depth * 0.3, K, T), img(f.image)).median()
    assert good < 0.5 * bad
    s = _build(frames, tmp_path, holdout_every=0, motion=motion.MotionConfig(mode="none"))
    sample = data.store_dataset([s], s.size).sample(0)
    assert sample["stereo"].shape == sample["image"].shape and sample["T_stereo"][0, 3] == pytest.approx(-0.5)


@pytest.mark.skipif(not KITTI_DRIVE.is_dir(), reason="../shared/data/kitti_raw_seq is not here")
def test_kitti_drive_stream_reads_a_whole_drive():
    got = list(streams.kitti_drive_stream(KITTI_DRIVE, max_frames=3))
    assert [f.name.split("/")[-1] for f in got] == ["0000000000", "0000000001", "0000000002"]
    f = got[1]
    assert f.image.shape == (375, 1242, 3) and f.K[0, 0] == pytest.approx(721.5377)
    gt = f.gt()
    assert np.isfinite(gt).sum() > 5000 and 1.5 < f.T_ground_from_camera[2, 3] < 1.8  # camera 1.66 m up


@pytest.mark.skipif(not UTBM.is_dir(), reason="../shared/data/utbm_stereo is not here")
def test_bag_stream_undistorts_with_camera_info(tmp_path):
    """A real distorted camera (UTBM Bumblebee2, plumb_bob) in a bag: frames come out undistorted."""
    from depth_prior_ros.geometry.camera import PinholeCamera
    from depth_prior_ros.replay import bag_io

    cam = PinholeCamera.from_yaml(UTBM / "utbm_bb2_left.yaml")
    images = sorted(p for p in UTBM.iterdir() if p.suffix in (".png", ".jpg"))[:3]
    bag = tmp_path / "utbm"
    with bag_io.BagWriter(bag) as w:
        for i, path in enumerate(images):
            ns = (i + 1) * 100_000_000
            rgb = data.read_rgb(path)
            w.write("/cam/image_raw", bag_io.make_image(rgb, ns, "cam"), bag_io.IMAGE, ns)
            w.write("/cam/camera_info", bag_io.make_camera_info(cam.K, cam.width, cam.height, ns, "cam", cam.D),
                    bag_io.CAMERA_INFO, ns)
    got = list(streams.bag_stream(bag, lidar_topic="", pose="static"))
    assert len(got) == len(images) and got[0].name == "utbm/100000000" and got[0].gt is None
    expected = streams.undistort(data.read_rgb(images[0]), cam.K, cam.D)
    assert np.array_equal(got[0].image, expected) and not np.array_equal(got[0].image, data.read_rgb(images[0]))


def test_bag_stream_of_a_kitti_style_bag(tmp_path):
    """A bag as ``depth-prior bag from-kitti`` writes it (hinted topics, LiDAR, tf): the store holds out
    frames with LiDAR ground truth and the camera pose from tf."""
    from depth_prior_ros.replay import bag_io, datasets

    frames = list(streams.synthetic_stream(11, 8, speed=8.0))
    rig = datasets.CameraLidarRig(frames[0].K, frames[0].image.shape[1], frames[0].image.shape[0], np.eye(4))
    from depth_prior_ros.synth.frames import make_sequence

    synth = make_sequence(8, "day", preset="tiny", seed=11, speed_mps=8.0)
    rig.T_camera_from_lidar = synth[0].T_camera_from_lidar
    sensor = (datasets.SensorFrame(int(1e9 + i * 1e8), s.image, s.lidar) for i, s in enumerate(synth))
    bag = tmp_path / "kitti_like"
    datasets.write_camera_lidar_bag(bag, rig, sensor, T_ground_from_camera=synth[0].T_ground_from_camera,
                                    progress=False)
    cfg = {"source": "bag", "bags": [str(bag)], "size": [48, 96], "holdout_every": 4,
           "motion": {"mode": "image", "min_parallax_px": 1.0}}
    ds = data.build_dataset(cfg, progress=False, cache_dir=tmp_path / "cache")
    s = ds.stores[0]
    assert s.frames[0].name == "kitti_like/1100000000" and len(ds) >= 2  # the first frame has no past
    held = s.validation_frames
    assert held and s.validation_data(held[0])["T_ground_from_camera"][2, 3] == pytest.approx(
        synth[0].T_ground_from_camera[2, 3], abs=1e-6)


def test_translations_attach_for_every_streamed_source(synth_frames, tmp_path):
    """A GDT manifest written from a store-backed dataset attaches by frame name (no per-source code)."""
    from depth_prior_training import gdt

    s = _build(synth_frames, tmp_path, holdout_every=0, motion=motion.MotionConfig(mode="none"))
    ds = data.store_dataset([s], s.size)
    frames = (ds.frame(i) for i in range(len(ds)))
    manifest = gdt.translate_dataset(frames, gdt.ClassicalTranslator(), ["night"], tmp_path / "gdt", progress=False,
                                     total=len(ds))
    ds = data.store_dataset([s], s.size, conditions=["night"], translate_probability=1.0,
                            translations=data.read_manifest(manifest))
    sample = ds.sample(3, rng=np.random.default_rng(0))
    assert bool(sample["has_translated"]) and float(sample["translated"].mean()) < 0.6 * float(sample["image"].mean())


def test_validation_hook_scores_held_out_frames_against_lidar(synth_frames, tmp_path):
    from depth_prior_training.validation import Validator, validation_frames

    s = _build(synth_frames, tmp_path, holdout_every=3, motion=motion.MotionConfig(mode="none"))
    frames = validation_frames([s])
    assert len(frames) == 3
    validator = Validator(frames)
    exact = {f.name: cv2.resize(np.nan_to_num(f.gt, nan=80.0), s.size[::-1], interpolation=cv2.INTER_NEAREST)
             for f in frames}

    def predict_exact(images):
        return np.stack([exact[f.name] for f in frames[:len(images)]]), "scale_depth"

    good = validator(predict_exact)
    flat = validator(lambda images: (np.ones(images.shape[:3], np.float32), "scale_depth"))
    assert good["median_abs_rel"] < 0.5 * flat["median_abs_rel"]
    assert good["prior_accepted"] == 1.0 and good["prior_abs_rel"] < 0.2
    assert good["frames"] == 3


def test_training_logs_and_validates_as_it_goes(tmp_path):
    """train.run on a streamed source: train.csv grows every step, validation.csv at step 0 and every N
    steps (median-scaled and prior-aligned AbsRel), TensorBoard events on disk; a resume keeps the rows."""
    from depth_prior_training.config import load_config
    from depth_prior_training.train import run

    cfg = load_config(TRAINING / "configs" / "tiny_ssd_teacher.yaml")
    cfg.update(output_dir=str(tmp_path / "run"), steps=4, checkpoint_every=2, validation={"every": 2}, stop_at=2)
    cfg["data"] = {"source": "synthetic_stream", "sequences": 1, "seed_start": 7, "frames_per_sequence": 9,
                   "size": [56, 112], "motion": {"mode": "none"}, "holdout_every": 3, "cache_dir": str(tmp_path / "c")}
    first = run(cfg, progress=False)
    import csv

    rows = lambda name: list(csv.DictReader(open(tmp_path / "run" / name)))  # noqa: E731
    assert [r["step"] for r in rows("train.csv")] == ["1", "2"]
    assert [r["step"] for r in rows("validation.csv")] == ["0", "2"]
    assert float(rows("validation.csv")[-1]["median_abs_rel"]) > 0 and "prior_accepted" in rows("validation.csv")[0]
    assert first["validation"]["frames"] == 2
    assert any((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    cfg.pop("stop_at")
    run(cfg, resume=True, progress=False)
    assert [r["step"] for r in rows("train.csv")] == ["1", "2", "3", "4"]
    assert [r["step"] for r in rows("validation.csv")] == ["0", "2", "4"]


def test_teacher_trains_with_the_stereo_partner_as_a_source(tmp_path):
    from depth_prior_training.config import load_config
    from depth_prior_training.data import batch_at_step
    from depth_prior_training.ssd import SSDTeacher

    s = _build(list(streams.synthetic_stream(3, 5, stereo_baseline=0.5)), tmp_path, size=(56, 112), holdout_every=0,
               motion=motion.MotionConfig(mode="none"))
    batch = batch_at_step(data.store_dataset([s], s.size), 0, 2, seed=0)
    cfg = load_config(TRAINING / "configs" / "tiny_ssd_teacher.yaml")
    torch.manual_seed(0)
    mono = SSDTeacher(cfg)
    stereo = SSDTeacher({**cfg, "teacher": {**cfg["teacher"], "stereo": True, "flip": 0.5}})
    stereo.modules["depth_net"].load_state_dict(mono.modules["depth_net"].state_dict())
    stereo.modules["pose_net"].load_state_dict(mono.modules["pose_net"].state_dict())
    l_mono, _ = mono.loss(batch, 0)
    l_stereo, _ = stereo.loss(batch, 0)
    assert torch.isfinite(l_stereo) and float(l_stereo.detach()) != float(l_mono.detach())
    params = [p for m in stereo.modules.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    values = []
    for _ in range(6):
        loss, _ = stereo.loss(batch, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert values[-1] < values[0]
    with pytest.raises(ValueError, match="stereo source"):
        stereo.loss({k: v for k, v in batch.items() if k not in ("stereo", "T_stereo")}, 0)
