"""The small TF tree used by replay: chains, inverses, time interpolation (slerp), errors."""
from __future__ import annotations

import numpy as np
import pytest

from depth_prior_ros.geometry.extrinsics import invert_transform, pose_from_static, rotation_xyz
from depth_prior_ros.geometry.tf_tree import TfLookupError, TfTree, interpolate_transform, slerp


def rigid(yaw=0.0, pitch=0.0, roll=0.0, t=(0.0, 0.0, 0.0)) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rotation_xyz(roll, pitch, yaw)
    T[:3, 3] = t
    return T


def test_chain_through_parents_and_inverse_direction():
    tree = TfTree()
    T_base_lidar = rigid(yaw=0.1, t=(0.5, 0.0, 1.7))
    T_lidar_cam = rigid(pitch=0.05, roll=-0.02, t=(0.27, 0.0, -0.08))
    T_base_ground = rigid(t=(0.0, 0.0, -0.3))
    tree.add("base_link", "lidar", T_base_lidar, static=True)
    tree.add("lidar", "camera", T_lidar_cam, static=True)
    tree.add("base_link", "base_footprint", T_base_ground, static=True)

    T = tree.lookup("base_footprint", "camera")
    expected = invert_transform(T_base_ground) @ T_base_lidar @ T_lidar_cam
    np.testing.assert_allclose(T, expected, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("camera", "base_footprint"), invert_transform(expected), atol=1e-12)
    np.testing.assert_allclose(tree.lookup("camera", "camera"), np.eye(4))
    assert tree.parent("camera") == "lidar" and tree.is_static_path("camera", "base_footprint")
    # tf2 ignores a leading slash
    np.testing.assert_allclose(tree.lookup("/base_footprint", "/camera"), expected, atol=1e-12)


def test_timed_edges_interpolate_with_slerp_or_take_the_nearest_sample():
    tree = TfTree()
    T0, T1 = rigid(yaw=0.0, t=(0, 0, 0)), rigid(yaw=np.pi / 2, t=(10.0, 0, 0))
    tree.add("odom", "base", T0, stamp=1_000_000_000)
    tree.add("odom", "base", T1, stamp=2_000_000_000)
    mid = tree.lookup("odom", "base", 1_500_000_000)
    np.testing.assert_allclose(mid[:3, 3], [5.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(mid[:3, :3], rotation_xyz(0, 0, np.pi / 4), atol=1e-12)  # slerp halfway
    quarter = tree.lookup("odom", "base", 1_250_000_000)
    np.testing.assert_allclose(quarter[:3, :3], rotation_xyz(0, 0, np.pi / 8), atol=1e-12)
    np.testing.assert_allclose(tree.lookup("odom", "base", 1_000_000_000), T0)
    np.testing.assert_allclose(tree.lookup("odom", "base"), T1)  # None = latest

    nearest = TfTree(mode="nearest")
    nearest.add("odom", "base", T0, stamp=1_000_000_000)
    nearest.add("odom", "base", T1, stamp=2_000_000_000)
    np.testing.assert_allclose(nearest.lookup("odom", "base", 1_400_000_000), T0)
    np.testing.assert_allclose(nearest.lookup("odom", "base", 1_600_000_000), T1)


def test_samples_arrive_out_of_order_and_slerp_takes_the_short_way():
    tree = TfTree()
    tree.add("a", "b", rigid(t=(2.0, 0, 0)), stamp=20)
    tree.add("a", "b", rigid(t=(0.0, 0, 0)), stamp=0)
    np.testing.assert_allclose(tree.lookup("a", "b", 10)[:3, 3], [1.0, 0, 0])
    q0 = np.array([0.0, 0.0, 0.0, 1.0])
    q1 = -np.array([0.0, 0.0, np.sin(0.1), np.cos(0.1)])  # the same rotation as +q, other hemisphere
    q = slerp(q0, q1, 0.5)
    assert abs(abs(q[2]) - np.sin(0.05)) < 1e-12
    np.testing.assert_allclose(interpolate_transform(np.eye(4), np.eye(4), 0.3), np.eye(4))


def test_lookups_that_cannot_work_fail_with_one_sentence():
    tree = TfTree(max_extrapolation=0.1)
    tree.add("odom", "base", np.eye(4), stamp=1_000_000_000)
    tree.add("odom", "base", np.eye(4), stamp=2_000_000_000)
    tree.add("base", "camera", pose_from_static(1.5), static=True)
    tree.add("map", "other", np.eye(4), static=True)
    with pytest.raises(TfLookupError, match="not in the tf tree"):
        tree.lookup("base_footprint", "camera")
    with pytest.raises(TfLookupError, match="not connected"):
        tree.lookup("map", "camera")
    with pytest.raises(TfLookupError, match="outside"):
        tree.lookup("odom", "camera", 3_000_000_000)
    np.testing.assert_allclose(tree.lookup("odom", "camera", 2_050_000_000), pose_from_static(1.5))
    with pytest.raises(ValueError, match="loop"):
        tree.add("camera", "odom", np.eye(4), static=True)
    with pytest.raises(ValueError, match="finite 4x4"):
        tree.add("a", "b", np.full((4, 4), np.nan), static=True)


def test_lookup_between_two_times_through_a_fixed_frame_moves_a_scan_with_the_vehicle():
    tree = TfTree()
    tree.add("odom", "base", rigid(t=(0.0, 0, 0)), stamp=0)
    tree.add("odom", "base", rigid(t=(1.0, 0, 0)), stamp=100_000_000)  # drove 1 m forward in 0.1 s
    tree.add("base", "lidar", np.eye(4), static=True)
    tree.add("base", "camera", np.eye(4), static=True)
    # A point 10 m ahead of the LiDAR at t=0 is 9 m ahead of the camera at t=0.1 s.
    T = tree.lookup_between("camera", 100_000_000, "lidar", 0, "odom")
    np.testing.assert_allclose(T @ [10.0, 0, 0, 1], [9.0, 0, 0, 1], atol=1e-12)


def test_tf_messages_fill_the_tree():
    from depth_prior_ros.replay import bag_io

    T = rigid(yaw=0.3, pitch=0.1, t=(1.0, 2.0, 3.0))
    msg = bag_io.make_tf_message([bag_io.make_transform_stamped(T, "base", "camera", 5)])
    tree = TfTree()
    tree.add_tf_message(msg, static=False)
    np.testing.assert_allclose(tree.lookup("base", "camera", 5), T, atol=1e-12)


def test_live_tree_keeps_a_cache_window_and_does_not_extrapolate_like_tf2():
    """The node's tree without tf2_ros: tf2's Buffer keeps 10 s and never extrapolates past its samples."""
    tree = TfTree(max_extrapolation=0.0, cache_time=10.0)
    for second in range(0, 31):
        tree.add("base_footprint", "cam", pose_from_static(1.0 + second / 100.0, 0.0), stamp=second * 10**9)
    with pytest.raises(TfLookupError, match="known from 20.000 s to 30.000 s"):
        tree.lookup("base_footprint", "cam", 5 * 10**9)  # forgotten: older than the window
    assert tree.lookup("base_footprint", "cam", 30 * 10**9)[2, 3] == pytest.approx(1.30)  # an exact end stamp
    assert tree.lookup("base_footprint", "cam", 25 * 10**9 + 5 * 10**8)[2, 3] == pytest.approx(1.255)
    with pytest.raises(TfLookupError, match="not at 30.001 s"):
        tree.lookup("base_footprint", "cam", 30 * 10**9 + 10**6)  # newer than the newest sample: wait for it
