"""Adverse-condition translation: each condition changes the image the way it should, on any image."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.synth import (CONDITIONS, ConditionError, FogConfig, Label, NightConfig, RainConfig,
                                   make_frame, pseudo_depth, translate)


@pytest.fixture(scope="module")
def day():
    return make_frame("small", "day", seed=3, with_lidar=False)


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


@pytest.mark.parametrize("condition", CONDITIONS)
def test_shape_dtype_and_determinism(day, condition):
    a = translate(day.image, condition, depth=day.depth, labels=day.labels, seed=1, lights=day.lights)
    b = translate(day.image, condition, depth=day.depth, labels=day.labels, seed=1, lights=day.lights)
    assert a.shape == day.image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    if condition == "day":
        np.testing.assert_array_equal(a, day.image)
        assert a is not day.image
    else:
        assert np.abs(a.astype(int) - day.image.astype(int)).mean() > 5


@pytest.mark.parametrize("condition", ["night", "rain", "fog"])
def test_works_on_any_image_without_depth_or_labels(condition):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(96, 160, 3), dtype=np.uint8)
    out = translate(image, condition, seed=4)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)


def test_night_is_darker_and_keeps_lights_bright(day):
    night = translate(day.image, "night", depth=day.depth, labels=day.labels, seed=2, lights=day.lights)
    assert luminance(night).mean() < 0.75 * luminance(day.image).mean()
    sky = day.labels == Label.SKY
    assert luminance(night)[sky].mean() < 0.2 * luminance(day.image)[sky].mean()
    lamps = luminance(day.lights) > 1.0  # street lamps and headlights (white, over-bright)
    assert lamps.any()
    assert luminance(night)[lamps].mean() > 200
    # Seeded sensor noise: another seed gives another noise pattern on the same scene.
    other = translate(day.image, "night", depth=day.depth, labels=day.labels, seed=3, lights=day.lights)
    assert not np.array_equal(night, other)


def test_night_headlights_light_the_near_road(day):
    on = translate(day.image, "night", depth=day.depth, labels=day.labels, seed=2, lights=day.lights)
    off = translate(day.image, "night", depth=day.depth, labels=day.labels, seed=2, lights=day.lights,
                    config=NightConfig(headlights=0.0))
    near_road = (day.labels == Label.ROAD) & (day.depth < 12)
    assert luminance(on)[near_road].mean() > 1.5 * luminance(off)[near_road].mean()


def test_night_from_true_albedo_ignores_the_daylight():
    """Given the renderer's unlit albedo, night does not depend on the day's sun and shadows."""
    f = make_frame("tiny", "night", seed=4, with_lidar=False)
    from depth_prior_ros.synth import render_view, generate_scene

    view = render_view(generate_scene(4), f.camera, f.T_world_from_camera, with_albedo=True)
    np.testing.assert_array_equal(view.image, f.day_image)
    darker_day = (f.day_image // 2).astype(np.uint8)
    a = translate(f.day_image, "night", f.depth, f.labels, seed=1, lights=f.lights, albedo=view.albedo)
    b = translate(darker_day, "night", f.depth, f.labels, seed=1, lights=f.lights, albedo=view.albedo)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ConditionError, match="albedo has shape"):
        translate(f.day_image, "night", albedo=np.zeros((4, 4, 3), np.float32))


def test_rain_darkens_sky_and_reflects_on_the_road(day):
    rain = translate(day.image, "rain", depth=day.depth, labels=day.labels, seed=5)
    sky = day.labels == Label.SKY
    assert luminance(rain)[sky].mean() < 0.8 * luminance(day.image)[sky].mean()
    # Reflections move image structure onto the road: the road changes more than plain darkening would.
    road = day.labels == Label.ROAD
    dry = translate(day.image, "rain", depth=day.depth, labels=day.labels, seed=5,
                    config=RainConfig(reflection=0.0))
    assert np.abs(rain[road].astype(int) - dry[road].astype(int)).mean() > 3
    # Streaks differ by seed.
    assert not np.array_equal(rain, translate(day.image, "rain", depth=day.depth, labels=day.labels, seed=6))


def test_fog_contrast_falls_with_depth(day):
    fog = translate(day.image, "fog", depth=day.depth, labels=day.labels, seed=0,
                    config=FogConfig(visibility_m=80.0, patchiness=0.0))
    d = day.depth
    ratio = []
    for lo, hi in ((3, 10), (10, 25), (25, 60), (60, 200)):
        sel = (d >= lo) & (d < hi)
        assert sel.sum() > 200
        ratio.append(luminance(fog)[sel].std() / luminance(day.image)[sel].std())
    assert ratio == sorted(ratio, reverse=True)
    assert ratio[0] > 0.5 and ratio[-1] < 0.2
    # The sky (infinite depth) becomes the airlight: flat.
    assert luminance(fog)[day.labels == Label.SKY].std() < 2.0


def test_fog_without_depth_uses_a_row_pseudo_depth(day):
    d = pseudo_depth(360, 640)
    assert np.all(np.diff(d[200:, 0]) < 0)  # nearer towards the bottom
    fog = translate(day.image, "fog", seed=0, config=FogConfig(visibility_m=80.0, patchiness=0.0))
    top, bottom = luminance(fog)[:100], luminance(fog)[-60:]
    assert top.std() < bottom.std()


def test_synthetic_frames_carry_day_image_and_unchanged_ground_truth():
    day = make_frame("tiny", "day", seed=8, with_lidar=False)
    for condition in ("night", "rain", "fog"):
        f = make_frame("tiny", condition, seed=8, with_lidar=False)
        assert f.condition == condition
        np.testing.assert_array_equal(f.day_image, day.image)
        np.testing.assert_array_equal(f.labels, day.labels)
        assert not np.array_equal(f.image, f.day_image)


def test_bad_input_gives_one_clear_error(day):
    with pytest.raises(ConditionError, match="unknown condition"):
        translate(day.image, "snow")
    with pytest.raises(ConditionError, match="uint8 RGB"):
        translate(day.image.astype(np.float32), "fog")
    with pytest.raises(ConditionError, match="depth has shape"):
        translate(day.image, "fog", depth=np.ones((10, 10), np.float32))
    with pytest.raises(ConditionError, match="NightConfig"):
        translate(day.image, "night", config=FogConfig())
