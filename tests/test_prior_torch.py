"""The torch path (on_device.py) equals the numpy path to float32 rounding, on CPU torch (issue 16).

On a GPU the same code runs on the network's device; no GPU is lent here, so these tests pin the math.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers_geometry import kitti_sample  # noqa: E402

from depth_prior_ros.align import AlignConfig, align_to_prior, apply_model  # noqa: E402
from depth_prior_ros.geometry import PinholeCamera, pose_from_static  # noqa: E402
from depth_prior_ros.on_device import DevicePrior  # noqa: E402
from depth_prior_ros.prior import GroundPriorCache, ground_depth, scene_prior  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)
RTOL = 4 * EPS32
CAMERA = PinholeCamera(np.array([[500.0, 3.0, 320.0], [0.0, 480.0, 180.0], [0.0, 0.0, 1.0]]), 640, 360)
POSES = [pose_from_static(1.5), pose_from_static(1.65, np.radians(0.7)),
         pose_from_static(1.55, np.radians(-1.5), np.radians(2.5)),
         pose_from_static(1.7, np.radians(4.0), np.radians(2.0), np.radians(10.0))]


def assert_close(device_value, host: np.ndarray, cap: float | None = None) -> None:
    """Equal to float32 rounding; a pixel may be NaN on one side only where the other is within rounding
    of the depth cap (the two paths round the disparity at the boundary differently)."""
    got = device_value.cpu().numpy()
    assert got.dtype == host.dtype and got.shape == host.shape
    differ = np.isnan(got) != np.isnan(host)
    if differ.any():
        assert cap is not None, f"{differ.sum()} pixels NaN on one side only"
        edge = np.where(np.isnan(got), host, got)[differ]
        np.testing.assert_allclose(edge, cap, rtol=RTOL)
    both = ~np.isnan(got) & ~np.isnan(host)
    np.testing.assert_allclose(got[both], host[both], rtol=RTOL, atol=0)


@pytest.mark.parametrize("pose", range(len(POSES)))
@pytest.mark.parametrize("max_depth", [80.0, None])
def test_ground_depth_on_device_equals_numpy(pose, max_depth):
    T = POSES[pose]
    host = ground_depth(CAMERA.K, CAMERA.width, CAMERA.height, T, max_depth)
    assert_close(DevicePrior("cpu").ground_depth(CAMERA, T, max_depth), host, max_depth)


def test_real_calibrations_on_device(shared_data):
    """KITTI object 000008 (P2, LiDAR ground pose) and UTBM plumb_bob (cached rays) on the device."""
    cam, _, _, _, T = kitti_sample(shared_data / "kitti_000008")
    calib = json.loads((shared_data / "kitti_000008" / "calib.json").read_text())
    assert (cam.width, cam.height) == tuple(calib["image_size_wh"])
    device = DevicePrior("cpu")
    assert_close(device.ground_depth(cam, T, 80.0), ground_depth(cam.K, cam.width, cam.height, T, 80.0), 80.0)
    utbm = PinholeCamera.from_yaml(shared_data / "utbm_stereo" / "utbm_bb2_left.yaml")
    for T in POSES:
        cached = GroundPriorCache(max_depth=80.0).get(utbm, T).ground
        assert_close(device.ground_depth(utbm, T, 80.0), cached, 80.0)


def box_road(T, camera=CAMERA):
    road = np.isfinite(ground_depth(camera.K, camera.width, camera.height, T, 80.0))
    road[120:260, 250:390] = False  # a car on the road: vertical surfaces above its contact row
    return road


@pytest.mark.parametrize("mode", ["road", "ground", "scene"])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("inpaint", [False, True])
def test_scene_prior_on_device_equals_numpy(mode, with_mask, inpaint):
    T = POSES[3]
    mask = box_road(T) if with_mask else None
    host = scene_prior(CAMERA, T, mask, mode=mode, max_depth=80.0, inpaint=inpaint)
    dev = DevicePrior("cpu").scene_prior(CAMERA, T, mask, mode=mode, max_depth=80.0, inpaint=inpaint)
    assert_close(dev.ground, host.ground, 80.0)
    same_ground = (np.isnan(dev.ground.cpu().numpy()) == np.isnan(host.ground))
    # Inpainted values interpolate neighbours, so a boundary pixel that differs moves them by rounding too.
    depth_rtol = 1e-5 if inpaint else RTOL
    got = dev.depth.cpu().numpy()
    np.testing.assert_array_equal(np.isnan(got)[same_ground], np.isnan(host.depth)[same_ground])
    ok = same_ground & ~np.isnan(host.depth) & ~np.isnan(got)
    np.testing.assert_allclose(got[ok], host.depth[ok], rtol=depth_rtol)
    source = dev.source.cpu().numpy()
    assert np.mean(source == host.source) > 0.999
    np.testing.assert_array_equal(dev.confidence.cpu().numpy()[source == host.source],
                                  host.confidence[source == host.source])


@pytest.mark.parametrize("kind", ["affine_disparity", "scale_depth", "metric_depth"])
def test_apply_model_on_device_is_bit_identical(kind):
    rng = np.random.default_rng(0)
    pred = (rng.random((90, 160)) * 2.0).astype(np.float32)
    pred[::7, ::5] = np.nan
    pred[::11, ::3] = np.inf
    for params in [(1 / 7, -0.05 / 7), (0.3, 0.01), (25.0, 0.0)]:
        host = apply_model(kind, pred, params, 0.5, 80.0)
        dev = apply_model(kind, torch.from_numpy(pred), params, 0.5, 80.0)
        assert torch.is_tensor(dev)
        np.testing.assert_array_equal(dev.numpy(), host)


def test_network_prior_and_fit_on_device_copy_the_depth_to_the_host_once(tmp_path, shared_data):
    """A real (tiny, random) SSD-student network on the KITTI frame: its output stays a tensor, the prior
    and the applied fit are made next to it, one .cpu() brings the depth back; equal to the numpy path."""
    import cv2
    import torch.nn.functional as F
    from helpers_models import tiny_depth_anything, write_hf_folder

    from depth_prior_ros.models.preprocess import preprocess
    from depth_prior_ros.models.registry import create_backend
    from depth_prior_ros.pipeline import DepthPipeline, PipelineConfig

    cam, _, _, _, T = kitti_sample(shared_data / "kitti_000008")
    image = cv2.imread(str(shared_data / "kitti_000008" / "image.png"))[:, :, ::-1].copy()
    backend = create_backend("ssd_student", weights=str(write_hf_folder(tiny_depth_anything(), tmp_path / "s")),
                             device="cpu", input_size=[56, 182])
    config = PipelineConfig(temporal_filter=False)
    host = DepthPipeline(backend, config).process(image, cam, T)
    assert host.source == "network"  # random weights agree poorly with the prior, but the fit is applied

    with torch.inference_mode():
        out = backend.run_network(preprocess([image], backend.spec, backend.device, backend.dtype))
        values = F.interpolate(out.float()[:, None], size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    prior = DevicePrior(values.device).scene_prior(cam, T, None, mode=config.prior_mode, max_depth=config.max_depth)
    fit = align_to_prior(values, backend.output_kind, prior.depth, prior.confidence, None, AlignConfig(
        min_depth=config.min_depth, max_depth=config.max_depth))
    assert torch.is_tensor(fit.depth) and fit.depth.device == values.device
    depth = fit.depth.cpu().numpy()  # the one copy to the host
    np.testing.assert_allclose(fit.params, host.alignment.params, rtol=1e-6)
    np.testing.assert_array_equal(np.isnan(depth), np.isnan(host.depth))
    ok = ~np.isnan(depth)
    assert ok.mean() > 0.3
    np.testing.assert_allclose(depth[ok], host.depth[ok], rtol=1e-5)
