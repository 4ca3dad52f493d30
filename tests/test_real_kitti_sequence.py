"""Real networks on the first frames of the real KITTI raw sequence (../shared/data/kitti_raw_seq), through
`depth-prior bag from-kitti` (the date folder) and `depth-prior replay` offline and --live: the road
segmenter's embodied-depth table, the segmenter-backed prior against the plain one, PyDNet against its
affine-disparity oracle, FastDepth's disagreement with the prior. The full 77-frame figures are in
benchmarks/REAL_DATA.md (python -m depth_prior_ros.bench.real_data)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from depth_prior_ros.cli import main as cli_main

from helpers_models import REPO, SHARED_DATA
from helpers_replay import LIVE_DOMAIN, read_metrics

SHARED_MODELS = REPO.parent / "shared" / "models"
DATE_FOLDER = SHARED_DATA / "kitti_raw_seq" / "2011_09_26"
CARDS = REPO / "tests" / "cards"
ROAD = SHARED_MODELS / "road_segmentation_adas_0001" / "road-segmentation-adas-0001.xml"
PYDNET = SHARED_MODELS / "pydnet_kitti_tflite" / "pydnet_model.tflite"
FASTDEPTH = SHARED_MODELS / "fastdepth_nyu_int8_tflite" / "fast_depth_224.tflite"
SEGMENTER = ["--param", f"segmentation_weights={ROAD}",
             "--param", f"segmentation_card={CARDS / 'road-segmentation-adas-0001.card.json'}"]
FRAMES = 4

pytestmark = pytest.mark.skipif(not DATE_FOLDER.is_dir() or not SHARED_MODELS.is_dir(),
                                reason="../shared/data/kitti_raw_seq or ../shared/models is absent")


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    out = tmp_path_factory.mktemp("kitti_raw") / "bag"
    assert cli_main(["bag", "from-kitti", str(DATE_FOLDER), "--out", str(out), "--max-frames", str(FRAMES),
                     "--no-progress"]) == 0
    return out


def replay(bag, out, *args) -> dict:
    code = cli_main(["replay", str(bag), "--out", str(out), "--no-bag", "--no-progress", "--previews", "0", *args])
    assert code == 0
    return read_metrics(out)


def headline(metrics: dict, backend: str, scaling: str = "metric") -> dict:
    return metrics["summary"][backend]["all"]["all"][scaling]


def test_from_kitti_says_which_drive_of_the_date_folder_it_converts(bag, capsys, tmp_path):
    assert cli_main(["bag", "from-kitti", str(DATE_FOLDER), "--out", str(tmp_path / "b"), "--max-frames", "1",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "drive 2011_09_26_drive_sample_sync: the only drive in" in out and "KITTI raw layout" in out


def direct_embodied(bag) -> dict:
    """The embodied table computed here from the segmenter's masks and scene_prior (no replay code)."""
    from depth_prior_ros.models.segmentation import load_segmenter
    from depth_prior_ros.prior import scene_prior
    from depth_prior_ros.replay.frames import FrameOptions, iter_frames

    segmenter = load_segmenter(str(ROAD), str(CARDS / "road-segmentation-adas-0001.card.json"))
    totals = {"road": np.zeros(3), "covered": np.zeros(3)}
    for frame in iter_frames(bag, FrameOptions()):
        road = segmenter.segment(frame.image).road
        depth = scene_prior(frame.camera, frame.T_ground_from_camera, road, inpaint=False).depth
        gt = frame.gt
        valid = np.isfinite(gt) & (gt > 1e-3) & (gt < 80.0)
        for layer, select in (("road", valid & road), ("covered", valid & np.isfinite(depth))):
            with np.errstate(invalid="ignore"):
                error = np.abs(depth[select] - gt[select]) / gt[select]
            totals[layer] += [select.sum(), np.sum(error < 0.05), np.sum(error < 0.10)]
    return {layer: {"points": int(t[0]), "within_5": 100 * t[1] / t[0], "within_10": 100 * t[2] / t[0]}
            for layer, t in totals.items()}


def same_table(got: dict, expected: dict) -> bool:
    return got.keys() == expected.keys() and all(got[k] == pytest.approx(expected[k]) for k in expected)


def test_embodied_table_offline_and_live_through_the_node_match_the_direct_computation(bag, tmp_path):
    expected = direct_embodied(bag)
    offline = replay(bag, tmp_path / "offline", "--embodied", "--param", "inpaint=false", *SEGMENTER)
    assert same_table(offline["embodied"]["prior_only"], expected)
    assert expected["road"]["within_10"] > 90.0
    live = replay(bag, tmp_path / "live", "--embodied", "--param", "inpaint=false", *SEGMENTER, "--live",
                  "--lockstep", "--domain-id", str(LIVE_DOMAIN))
    assert same_table(live["embodied"]["prior_only"], expected)  # the node's depth and its prior/road_mask
    assert live["timing"]["prior_only"]["dropped"] == 0
    assert "Embodied depth" in (tmp_path / "live" / "report.md").read_text()


def test_the_segmenter_backed_prior_beats_the_plain_prior(bag, tmp_path):
    plain = headline(replay(bag, tmp_path / "plain"), "prior_only")
    segmented = headline(replay(bag, tmp_path / "segmented", *SEGMENTER), "prior_only")
    assert segmented["abs_rel"] < plain["abs_rel"] and segmented["delta1"] > plain["delta1"]


def test_pydnet_through_the_segmenter_prior_is_near_its_affine_disparity_oracle(bag, tmp_path):
    metrics = replay(bag, tmp_path / "pydnet", "--backend", "tflite", "--weights", str(PYDNET), "--backend-options",
                     json.dumps({"card": str(CARDS / "pydnet_model.card.json")}), *SEGMENTER,
                     "--scaling", "metric", "median", "disparity_lstsq")
    metric, oracle = headline(metrics, "tflite"), headline(metrics, "tflite", "disparity_lstsq")
    assert metric["coverage"] > 0.99 and metric["abs_rel"] <= 1.3 * oracle["abs_rel"]
    assert metrics["stability"]["tflite"]["published"]["median"] <= 2.0


def test_fastdepth_disagrees_with_the_prior_and_the_report_says_so(bag, tmp_path):
    options = {"card": str(CARDS / "fast_depth_224.card.json")}
    metrics = replay(bag, tmp_path / "fastdepth", "--backend", "tflite", "--weights", str(FASTDEPTH),
                     "--backend-options", json.dumps(options))
    assert metrics["timing"]["tflite"]["frames_no_agreement"] == FRAMES  # an indoor network, ~5x off outdoors
    assert "**warning**: `tflite` disagreed with the embodied prior" in (tmp_path / "fastdepth" / "report.md").read_text()
    card = json.loads((CARDS / "fast_depth_224.card.json").read_text())
    scaled = tmp_path / "fast_scale.card.json"
    scaled.write_text(json.dumps(dict(card, output_kind="scale_depth")))
    aligned = replay(bag, tmp_path / "fast_scaled", "--backend", "tflite", "--weights", str(FASTDEPTH),
                     "--backend-options", json.dumps({"card": str(scaled)}), *SEGMENTER)
    assert headline(aligned, "tflite")["abs_rel"] < 0.5 * headline(metrics, "tflite")["abs_rel"]
    assert aligned["timing"]["tflite"]["frames_no_agreement"] == 0


def test_a_date_folder_with_several_drives_names_the_one_it_converts(tmp_path, capsys):
    date = tmp_path / "2011_09_26"
    date.mkdir()
    for calib in DATE_FOLDER.glob("calib_*.txt"):
        (date / calib.name).symlink_to(calib)
    drive = DATE_FOLDER / "2011_09_26_drive_sample_sync"
    for name in ("drive_b", "drive_a"):  # any names: drives are found by their content
        (date / name).symlink_to(drive, target_is_directory=True)
    (date / "notes").mkdir()
    assert cli_main(["bag", "from-kitti", str(date), "--out", str(tmp_path / "first"), "--max-frames", "1",
                     "--no-progress"]) == 0
    assert "drive drive_a: 1 of 2 drives in" in capsys.readouterr().out
    assert cli_main(["bag", "from-kitti", str(date), "--drive", "drive_b", "--out", str(tmp_path / "b"),
                     "--max-frames", "1", "--no-progress"]) == 0
    assert "drive drive_b: 1 of 2 drives" in capsys.readouterr().out
    assert cli_main(["bag", "from-kitti", str(date), "--drive", "drive_c", "--out", str(tmp_path / "c")]) == 2
    assert "has no drive folder 'drive_c' (drives: drive_a, drive_b)" in capsys.readouterr().err
