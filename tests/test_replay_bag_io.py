"""Bag I/O: MCAP round trips, SQLite3 and ROS 1 bags, message <-> numpy, damaged bags, atomic writes."""
from __future__ import annotations

import os

import numpy as np
import pytest

from depth_prior_ros.replay import bag_io
from depth_prior_ros.replay.bag_io import BagError, BagReader, BagWriter
from depth_prior_ros.replay.frames import FrameOptions, iter_frames
from depth_prior_ros.replay.report import write_text_atomic

K = np.array([[200.0, 0, 80], [0, 200.0, 45], [0, 0, 1]])


def test_mcap_round_trip_of_images_camera_info_points_and_tf(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    depth = rng.uniform(1, 80, (90, 160)).astype(np.float32)
    depth[0, 0] = np.nan
    mm = np.nan_to_num(depth * 1000).astype(np.uint16)
    points = rng.normal(size=(500, 4)).astype(np.float32)
    with BagWriter(tmp_path / "bag", custom_data={"depth_prior.condition": "night"}) as w:
        w.write("/rgb", bag_io.make_image(rgb, 10, "cam"), bag_io.IMAGE, 10)
        w.write("/bgr", bag_io.make_image(np.ascontiguousarray(rgb[:, :, ::-1]), 10, "cam", "bgr8"), bag_io.IMAGE, 10)
        w.write("/mono", bag_io.make_image(rgb[:, :, 0], 10, "cam"), bag_io.IMAGE, 10)
        w.write("/depth", bag_io.make_image(depth, 10, "cam"), bag_io.IMAGE, 10)
        w.write("/mm", bag_io.make_image(mm, 10, "cam"), bag_io.IMAGE, 10)
        w.write("/info", bag_io.make_camera_info(K, 160, 90, 10, "cam"), bag_io.CAMERA_INFO, 10)
        w.write("/points", bag_io.make_pointcloud2(points, 10, "lidar"), bag_io.POINT_CLOUD2, 10)
    assert sorted(os.listdir(tmp_path)) == ["bag"]  # the hidden partial folder is gone
    with BagReader(tmp_path / "bag") as bag:
        assert bag.custom_data["depth_prior.condition"] == "night"
        assert bag.topics["/rgb"].msgtype == bag_io.IMAGE and bag.topics["/rgb"].count == 1
        got = {m.topic: m for m in bag.messages()}
    assert got["/rgb"].stamp_ns == 10 and got["/rgb"].msg.header.frame_id == "cam"
    np.testing.assert_array_equal(bag_io.rgb_image(got["/rgb"].msg), rgb)
    np.testing.assert_array_equal(bag_io.rgb_image(got["/bgr"].msg), rgb)
    np.testing.assert_array_equal(bag_io.rgb_image(got["/mono"].msg), np.repeat(rgb[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(bag_io.image_to_numpy(got["/depth"].msg), depth)
    np.testing.assert_array_equal(bag_io.image_to_numpy(got["/mm"].msg), mm)
    np.testing.assert_allclose(bag_io.pointcloud2_to_xyz(got["/points"].msg), points[:, :3])
    cam = bag_io.camera_from_info(got["/info"].msg)
    np.testing.assert_allclose(cam.K, K)
    assert (cam.width, cam.height) == (160, 90)


def test_pointcloud_with_padding_and_big_endian_fields():
    PointField = bag_io.msg_class("sensor_msgs/msg/PointField")
    xyz = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0], [7.0, 8.0, 9.0]])
    rec = np.zeros(3, dtype=[("pad", ">u4"), ("x", ">f8"), ("y", ">f8"), ("z", ">f8")])
    rec["x"], rec["y"], rec["z"] = xyz.T
    msg = bag_io.msg_class(bag_io.POINT_CLOUD2)(
        header=bag_io.make_header(0, "l"), height=1, width=3,
        fields=[PointField(name=n, offset=o, datatype=8, count=1) for n, o in (("x", 4), ("y", 12), ("z", 20))],
        is_bigendian=True, point_step=28, row_step=84, data=np.frombuffer(rec.tobytes(), np.uint8), is_dense=False)
    np.testing.assert_allclose(bag_io.pointcloud2_to_xyz(msg), xyz[[0, 2]])  # the NaN point is dropped


def test_bad_messages_give_one_sentence():
    img = bag_io.make_image(np.zeros((4, 4, 3), np.uint8), 0, "c")
    img.encoding = "bgra16"
    with pytest.raises(BagError, match="encoding 'bgra16' is not supported"):
        bag_io.image_to_numpy(img)
    short = bag_io.make_image(np.zeros((4, 4, 3), np.uint8), 0, "c")
    short.data = short.data[:10]
    with pytest.raises(BagError, match="image data has 10 bytes but step 12 x height 4 needs 48"):
        bag_io.image_to_numpy(short)
    mono = bag_io.make_image(np.zeros((4, 4), np.uint8), 0, "c", "mono8")
    mono.data = mono.data[:10]
    with pytest.raises(BagError, match="truncated"):
        bag_io.image_to_numpy(mono)
    cloud = bag_io.make_pointcloud2(np.zeros((3, 3)), 0, "l", field_names=("a", "b", "c"))
    with pytest.raises(BagError, match="no x, y, z field"):
        bag_io.pointcloud2_to_xyz(cloud)


def _write_sqlite3_bag(path, msgs):
    from rosbags.rosbag2 import StoragePlugin, Writer

    w = Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3)
    w.open()
    conns = {}
    for topic, msg, msgtype, t in msgs:
        if topic not in conns:
            conns[topic] = w.add_connection(topic, msgtype, typestore=bag_io.get_store())
        w.write(conns[topic], t, bag_io.serialize(msg, msgtype))
    w.close()


def _frame_messages(stamp: int, image: np.ndarray):
    from depth_prior_ros.geometry import pose_from_static

    tf = bag_io.make_tf_message([bag_io.make_transform_stamped(pose_from_static(1.5), "base_footprint", "cam", 0)])
    return [("/tf_static", tf, bag_io.TF_MESSAGE, stamp),
            ("/cam/camera_info", bag_io.make_camera_info(K, 160, 90, stamp, "cam"), bag_io.CAMERA_INFO, stamp),
            ("/cam/image_raw", bag_io.make_image(image, stamp, "cam"), bag_io.IMAGE, stamp)]


def test_sqlite3_rosbag2_reads_into_frames(tmp_path):
    image = np.full((90, 160, 3), 7, np.uint8)
    _write_sqlite3_bag(tmp_path / "sq", _frame_messages(1_000, image))
    frames = list(iter_frames(tmp_path / "sq", FrameOptions(gt_source="none")))
    assert len(frames) == 1 and frames[0].image.shape == (90, 160, 3)
    assert frames[0].T_ground_from_camera[2, 3] == pytest.approx(1.5)
    # a bare .db3 file opens too
    db3 = next((tmp_path / "sq").glob("*.db3"))
    with BagReader(db3) as bag:
        assert "/cam/image_raw" in bag.topics


def test_ros1_bag_with_uppercase_camera_info_reads_into_frames(tmp_path):
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    from depth_prior_ros.geometry import pose_from_static
    from depth_prior_ros.geometry.extrinsics import matrix_to_quaternion

    from rosbags.typesys import get_types_from_msg

    ts = get_typestore(Stores.ROS1_NOETIC)
    # tf2_msgs is not in rosbags' Noetic store; ROS 1 bags embed its definition like this.
    ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    T = ts.types
    header = T["std_msgs/msg/Header"](seq=0, stamp=T["builtin_interfaces/msg/Time"](sec=5, nanosec=0), frame_id="cam")
    rgb = np.random.default_rng(1).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    image = T["sensor_msgs/msg/Image"](header=header, height=90, width=160, encoding="bgr8", is_bigendian=0,
                                       step=480, data=np.frombuffer(rgb[:, :, ::-1].tobytes(), np.uint8))
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    info = T["sensor_msgs/msg/CameraInfo"](header=header, height=90, width=160, distortion_model="plumb_bob",
                                           D=np.zeros(5), K=K.ravel(), R=np.eye(3).ravel(),
                                           P=np.hstack([K, np.zeros((3, 1))]).ravel(), binning_x=0, binning_y=0,
                                           roi=roi)
    pose = pose_from_static(1.7, 0.02)
    x, y, z, w = matrix_to_quaternion(pose[:3, :3])
    ts_msg = T["geometry_msgs/msg/TransformStamped"](
        header=T["std_msgs/msg/Header"](seq=0, stamp=T["builtin_interfaces/msg/Time"](sec=5, nanosec=0),
                                        frame_id="base_footprint"),
        child_frame_id="cam",
        transform=T["geometry_msgs/msg/Transform"](translation=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=1.7),
                                                   rotation=T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)))
    tf = T["tf2_msgs/msg/TFMessage"](transforms=[ts_msg])
    path = tmp_path / "old.bag"
    with Writer(path) as writer:
        for topic, msg, msgtype in (("/tf_static", tf, "tf2_msgs/msg/TFMessage"),
                                    ("/cam/camera_info", info, "sensor_msgs/msg/CameraInfo"),
                                    ("/cam/image_raw", image, "sensor_msgs/msg/Image")):
            conn = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(conn, 5_000_000_000, ts.serialize_ros1(msg, msgtype))
    frame = next(iter_frames(path, FrameOptions(gt_source="none")))
    np.testing.assert_array_equal(frame.image, rgb)
    np.testing.assert_allclose(frame.camera.K, K)
    np.testing.assert_allclose(frame.T_ground_from_camera, pose, atol=1e-9)
    ros2_info = bag_io.normalised_camera_info(frame.camera_info, 1, "cam")
    np.testing.assert_allclose(np.asarray(ros2_info.k).reshape(3, 3), K)


def test_damaged_or_missing_bags_raise_bag_error(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nope").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a bag"):
        BagReader(tmp_path / "empty").open()
    image = np.zeros((90, 160, 3), np.uint8)
    with BagWriter(tmp_path / "good") as w:
        for topic, msg, msgtype, t in _frame_messages(1, image):
            w.write(topic, msg, msgtype, t)
    mcap = next((tmp_path / "good").glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(BagError, match="corrupt or truncated"):
        BagReader(tmp_path / "good").open()
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 99}\n")
    with pytest.raises(BagError, match="cannot be opened"):
        BagReader(tmp_path / "meta").open()


def test_writer_abort_leaves_nothing_and_existing_bags_are_not_overwritten(tmp_path):
    w = BagWriter(tmp_path / "b")
    w.open()
    w.write("/x", bag_io.make_string("hi"), bag_io.STRING, 1)
    w.abort()
    assert os.listdir(tmp_path) == []
    with BagWriter(tmp_path / "b") as w:
        w.write("/x", bag_io.make_string("hi"), bag_io.STRING, 1)
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "b").open()


def test_atomic_text_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    write_text_atomic(target, "old report")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(target, "new report that never lands")
    assert target.read_text() == "old report"
    assert os.listdir(tmp_path) == ["report.md"]  # no temporary file left behind
