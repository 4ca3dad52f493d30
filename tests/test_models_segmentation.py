"""The road segmenter: the shared OpenVINO road model on a real KITTI frame against its LiDAR ground, a
tiny random-initialised transformers SegFormer folder, segmentation cards and the rate divisor."""
from __future__ import annotations

import json

import numpy as np
import pytest

from depth_prior_ros.models import BackendError
from depth_prior_ros.models.card import card_from_dict
from depth_prior_ros.models.segmentation import (SegmentationSchedule, card_from_id2label, labels_from_scores,
                                                 load_segmenter)

from helpers_models import REPO, SHARED_DATA, random_image, randomize, real_image

ROAD = REPO.parent / "shared" / "models" / "road_segmentation_adas_0001" / "road-segmentation-adas-0001.xml"
ROAD_CARD = REPO / "tests" / "cards" / "road-segmentation-adas-0001.card.json"
KITTI = SHARED_DATA / "kitti_000008"
CITYSCAPES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
              "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
              "bicycle"]
TINY_SEGFORMER = dict(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[4, 2], hidden_sizes=[8, 16],
                      patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                      decoder_hidden_size=16, num_labels=len(CITYSCAPES))


def lidar_ground_in_image(folder):
    """(u, v, on_ground) of the LiDAR points in view of kitti_000008: the ground from a RANSAC plane
    (+-0.12 m), projected with P2 and the LiDAR-to-camera transform (as ../shared/models/README.md)."""
    from depth_prior_ros.geometry.extrinsics import fit_ground_plane

    calib = json.loads((folder / "calib.json").read_text())
    points = np.load(folder / "lidar_points.npy")[:, :3].astype(np.float64)
    P, T = np.asarray(calib["projection_P2_3x4"]), np.asarray(calib["lidar_to_camera_4x4"])
    plane = fit_ground_plane(points, threshold=0.12)
    camera = points @ T[:3, :3].T + T[:3, 3]
    uvw = camera @ P[:, :3].T + P[:, 3]
    z = uvw[:, 2]
    u, v = np.rint(uvw[:, 0] / z).astype(int), np.rint(uvw[:, 1] / z).astype(int)
    w, h = calib["image_size_wh"]
    keep = (z > 1.0) & (z < 80.0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    return u[keep], v[keep], np.abs(plane.distance(points[keep])) < 0.12


@pytest.mark.skipif(not ROAD.is_file() or not KITTI.is_dir(), reason="../shared/models or ../shared/data is absent")
def test_road_segmenter_covers_the_lidar_ground_of_kitti_000008():
    import cv2

    image = cv2.cvtColor(cv2.imread(str(KITTI / "image.png")), cv2.COLOR_BGR2RGB)
    segmentation = load_segmenter(str(ROAD), str(ROAD_CARD), threads=2).segment(image)
    road = segmentation.road
    assert road.shape == image.shape[:2] and road.dtype == bool
    u, v, ground = lidar_ground_in_image(KITTI)
    in_mask = road[v, u]
    recall = np.count_nonzero(in_mask & ground) / np.count_nonzero(ground)
    precision = np.count_nonzero(in_mask & ground) / np.count_nonzero(in_mask)
    assert np.count_nonzero(ground) > 4000
    assert recall >= 0.90 and precision >= 0.98, (recall, precision)
    assert set(np.unique(segmentation.labels)) <= {0, 1, 2, 3}


@pytest.fixture(scope="module")
def segformer_folder(tmp_path_factory):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = SegformerConfig(**TINY_SEGFORMER, id2label=dict(enumerate(CITYSCAPES)),
                             label2id={n: i for i, n in enumerate(CITYSCAPES)})
    model = randomize(SegformerForSemanticSegmentation(config), seed=3, std=0.2).eval()
    folder = tmp_path_factory.mktemp("segformer") / "tiny"
    model.save_pretrained(str(folder))
    return folder


def test_segformer_folder_without_card_reads_its_classes_from_id2label(segformer_folder):
    import cv2
    import torch
    from transformers import SegformerForSemanticSegmentation

    from depth_prior_ros.models.preprocess import preprocess

    segmenter = load_segmenter(str(segformer_folder), device="cpu")
    card = segmenter.card
    assert card.road_classes == (0,) and card.drivable_classes == (0,)
    assert {5, 11, 13, 14, 15, 18} <= set(card.object_classes) and 10 not in card.object_classes  # not the sky
    image = real_image(160)
    image = random_image(48, 160) if image is None else image
    result = segmenter.segment(image)
    assert result.labels.shape == image.shape[:2] and result.labels.max() < len(CITYSCAPES)
    # The labels are the argmax of the real transformers model on the card's input, resized nearest.
    direct = SegformerForSemanticSegmentation.from_pretrained(str(segformer_folder)).eval()
    with torch.no_grad():
        logits = direct(pixel_values=preprocess([image], card.input_spec, "cpu")).logits
    expected = cv2.resize(logits[0].argmax(0).numpy().astype(np.uint8), image.shape[1::-1],
                          interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(result.labels, expected)
    assert np.array_equal(result.road, expected == 0)


def test_segformer_card_beside_the_folder_wins(segformer_folder, tmp_path):
    card = tmp_path / "mine.json"
    card.write_text(json.dumps({"architecture": "segmentation", "input_size": [64, 128], "road_classes": [0, 1],
                                "object_classes": [13]}))
    segmenter = load_segmenter(str(segformer_folder), str(card), device="cpu")
    assert segmenter.card.road_classes == (0, 1) and segmenter.card.input_size == (64, 128)


def test_segmentation_cards_and_outputs():
    with pytest.raises(BackendError, match="road_classes"):
        card_from_dict({"architecture": "segmentation"}, where="c.json")
    with pytest.raises(BackendError, match="class ids"):
        card_from_dict({"architecture": "segmentation", "road_classes": [1, True]}, where="c.json")
    with pytest.raises(BackendError, match="no class named 'road'"):
        card_from_id2label({0: "wall", 1: "sky"}, "folder")
    scores = np.zeros((1, 4, 2, 3), np.float32)
    scores[0, 2, 1, 1] = 1.0
    assert labels_from_scores(scores, "NCHW").tolist() == [[0, 0, 0], [0, 2, 0]]
    assert labels_from_scores(scores.transpose(0, 2, 3, 1), "NHWC").tolist() == [[0, 0, 0], [0, 2, 0]]
    assert labels_from_scores(np.array([[[3, 1]]], np.int64), "NCHW").tolist() == [3, 1]
    with pytest.raises(BackendError, match="segmentation weights"):
        load_segmenter("/nonexistent/model.xml")


def test_schedule_segments_every_nth_frame_and_reuses_the_mask(segformer_folder, monkeypatch):
    segmenter = load_segmenter(str(segformer_folder), device="cpu")
    calls = []
    real_segment = segmenter.segment
    monkeypatch.setattr(segmenter, "segment", lambda image: calls.append(image) or real_segment(image))
    schedule = SegmentationSchedule(segmenter, every=3)
    frames = [random_image(48, 96, seed) for seed in range(7)]
    masks = [schedule.road_mask(frame) for frame in frames]
    assert [next(i for i, f in enumerate(frames) if f is image) for image in calls] == [0, 3, 6]
    assert masks[1] is masks[0] and masks[2] is masks[0] and masks[3] is not masks[0]
    assert np.array_equal(masks[3], real_segment(frames[3]).road)
    schedule.road_mask(random_image(50, 96, 9))  # a new size cannot reuse a mask
    assert len(calls) == 4
    with pytest.raises(ValueError, match=">= 1"):
        SegmentationSchedule(segmenter, every=0)
