"""The embodied prior as weak supervision of the teacher (issue 14): the loss on its own, the store's
prior layers from the real road segmenter, and a teacher step that uses them."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

torch = pytest.importorskip("torch")

from depth_prior_training import losses  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ROAD_MODEL = REPO.parent / "shared" / "models" / "road_segmentation_adas_0001" / "road-segmentation-adas-0001.xml"
ROAD_CARD = REPO / "tests" / "cards" / "road-segmentation-adas-0001.card.json"


def _prior(h=6, w=8):
    """Layers: road on the bottom two rows, an upright surface on row 3, the ground bound below row 2."""
    prior = torch.zeros(1, 3, h, w)
    prior[0, 0, 4:] = 5.0
    prior[0, 1, 3] = 9.0
    prior[0, 2, 2:] = torch.linspace(20.0, 5.0, h - 2)[:, None]
    return prior


def test_prior_loss_is_zero_where_the_prediction_agrees():
    prior = _prior()
    depth = torch.full((1, 1, 6, 8), 3.0)      # near: below every ground bound
    depth[0, 0, 4:] = 5.0
    depth[0, 0, 3] = 9.0
    depth[0, 0, :2] = 500.0                    # above the horizon: no layer says anything
    assert float(losses.ground_prior_loss(depth, prior, (1.0, 1.0, 1.0))) == pytest.approx(0.0, abs=1e-6)
    # twice too far on the road: |log 2| on the road layer, nothing else with weights (1, 0, 0)
    far = depth.clone()
    far[0, 0, 4:] = 10.0
    assert float(losses.ground_prior_loss(far, prior, (1.0, 0.0, 0.0))) == pytest.approx(np.log(2.0), rel=1e-5)


def test_prior_loss_gradient_flows_only_through_known_pixels():
    prior = _prior()
    depth = torch.full((1, 1, 6, 8), 50.0, requires_grad=True)  # beyond every bound, off every layer value
    losses.ground_prior_loss(depth, prior, (1.0, 1.0, 1.0)).backward()
    grad = depth.grad[0, 0]
    known = (prior[0] > 0).any(0)
    assert torch.all(grad[~known] == 0) and torch.all(grad[known] > 0)   # pushes nearer, only where known
    # the ground bound is one-sided: nearer than the road behind costs nothing
    near = torch.full((1, 1, 6, 8), 1.0, requires_grad=True)
    losses.ground_prior_loss(near, prior, (0.0, 0.0, 1.0)).backward()
    assert torch.all(near.grad == 0)
    # no known pixel at all: 0, and still a tensor in the graph
    empty = losses.ground_prior_loss(depth, torch.zeros_like(prior), (1.0, 1.0, 1.0))
    assert float(empty.detach()) == 0.0


@pytest.mark.skipif(not ROAD_MODEL.is_file(), reason=f"road segmenter weights {ROAD_MODEL} are absent")
def test_store_prior_layers_from_the_road_segmenter_and_a_teacher_step(tmp_path):
    pytest.importorskip("openvino")
    from depth_prior_ros.prior.ground import ground_depth

    from depth_prior_training import data
    from depth_prior_training.ssd import SSDTeacher

    cfg = {"source": "synthetic_stream", "sequences": 1, "seed_start": 3, "frames_per_sequence": 6,
           "size": [64, 128], "motion": {"mode": "none"}, "holdout_every": 0,
           "road_segmenter": {"weights": str(ROAD_MODEL), "card": str(ROAD_CARD)}}
    ds = data.build_dataset(cfg, progress=False, cache_dir=tmp_path)
    store = ds.stores[0]
    assert store.road is not None and store.road.shape == (len(store.frames), 64, 128)
    target = store.frames[store.triplets[0][1]]
    layers = store.road_prior(target)
    road = np.asarray(store.road[target.slot], bool)
    ground = np.nan_to_num(ground_depth(target.K, 128, 64, target.T_ground, max_depth=80.0), nan=0.0)
    assert road.mean() > 0.05                                    # the synthetic road is found
    known = layers[0] > 0
    assert known.any() and not (known & ~road).any()             # road layer only on road pixels ...
    np.testing.assert_allclose(layers[0][known], ground[known], rtol=1e-5)   # ... at the ground depth
    np.testing.assert_allclose(layers[2], ground, rtol=1e-5)     # the bound is the ground plane
    assert not ((layers[1] > 0) & road).any()                    # upright surfaces stand off the road

    sample = ds.sample(0)
    assert sample["prior_depth"].shape == (3, 64, 128)
    teacher = SSDTeacher({"teacher": {"channels": [8, 8, 16, 16, 16], "pose_channels": [8, 8, 16, 16, 16],
                                      "init_depth": 10.0, "flip": 0.5},
                          "losses": {"ground_prior": 0.1, "prior_layers": [1.0, 0.3, 1.0]}, "data": cfg})
    batch = data.collate([ds.sample(i) for i in range(len(ds))])
    total, logs = teacher.loss(batch, 0)
    total.backward()
    assert np.isfinite(logs["loss"]) and logs["ground_prior"] > 0
    del batch["prior_depth"]
    with pytest.raises(ValueError, match="road_segmenter"):
        teacher.loss(batch, 0)
