"""The replay's output MCAP replays like a recording: offered QoS per topic (transient local /tf_static)
and the input bag's tf tree, so `ros2 bag play` of it feeds tf2's listeners and RViz (issue 10, item 8)."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from helpers_replay import make_synth_bags

from depth_prior_ros.replay import bag_io
from depth_prior_ros.replay.bag_io import BagReader
from depth_prior_ros.replay.replay import ReplayConfig, run_replay


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    root = tmp_path_factory.mktemp("outbag")
    bag = make_synth_bags(root, frames=3, conditions=("day",))[0]
    run_replay([bag], root / "report", ReplayConfig(progress=False))
    return bag, root / "report" / "output_bag"


def _transforms(bag, topic):
    with BagReader(bag) as reader:
        return sorted((m.log_ns, t.header.frame_id, t.child_frame_id, bag_io.stamp_to_ns(t.header.stamp),
                       round(t.transform.translation.z, 9))
                      for m in reader.messages([topic]) for t in m.msg.transforms)


def test_output_bag_records_the_qos_tf2_needs(replayed):
    _, out = replayed
    topics = {t["topic_metadata"]["name"]: t["topic_metadata"]
              for t in yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"][
                  "topics_with_message_count"]}
    profiles = {name: yaml.safe_load(meta["offered_qos_profiles"])[0] for name, meta in topics.items()}
    # rosbag2 metadata v8: reliability 1 = reliable; durability 1 = transient local, 2 = volatile.
    assert profiles["/tf_static"]["durability"] == 1 and profiles["/tf_static"]["reliability"] == 1
    assert profiles["/tf"]["durability"] == 2 and profiles["/tf"]["depth"] == 100
    assert all(p["reliability"] == 1 for p in profiles.values())
    with BagReader(out) as reader:  # the MCAP's own channel metadata says the same
        static = next(c for c in reader.reader.connections if c.topic == "/tf_static")
        assert static.ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"


def test_output_bag_carries_the_input_tf_tree(replayed):
    bag, out = replayed
    assert _transforms(out, "/tf") == _transforms(bag, "/tf")
    assert _transforms(out, "/tf_static") == _transforms(bag, "/tf_static")
    frames = {f for row in _transforms(out, "/tf") + _transforms(out, "/tf_static") for f in row[1:3]}
    assert frames == {"odom", "base_footprint", "camera_optical", "lidar"}  # no invented frame


def test_a_bag_without_tf_gets_the_replayed_pose_on_tf(tmp_path):
    src = make_synth_bags(tmp_path, frames=2, conditions=("day",), lidar=False)[0]
    notf = tmp_path / "notf"
    with BagReader(src) as reader, bag_io.BagWriter(notf, custom_data=reader.custom_data) as writer:
        for m in reader.messages():
            if m.msgtype != bag_io.TF_MESSAGE:
                writer.write(m.topic, m.msg, m.msgtype, m.log_ns)
    from depth_prior_ros.replay.frames import FrameOptions

    config = ReplayConfig(frames=FrameOptions(pose="static", camera_height=1.6, gt_source="depth"), progress=False)
    run_replay([notf], tmp_path / "report", config)
    rows = _transforms(tmp_path / "report" / "output_bag", "/tf")
    assert len(rows) == 2 and {(r[1], r[2]) for r in rows} == {("base_footprint", "camera_optical")}
    assert rows[0][4] == pytest.approx(1.6)


def test_played_back_tf_static_reaches_a_late_tf2_static_listener(replayed):
    """What `ros2 bag play` does with the recording: a publisher with the recorded offered QoS sends
    /tf_static once; tf2's static listener (transient local, reliable, keep last 100) subscribing
    afterwards still gets it. With a volatile offer (the bags before) it would not."""
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) is not installed")
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from depth_prior_ros.processes import RosClient, choose_domain_id, isolated_ros, unique_namespace, wait_until

    _, out = replayed
    with BagReader(out) as reader:
        conn = next(c for c in reader.reader.connections if c.topic == "/tf_static")
        recorded = conn.ext.offered_qos_profiles[0]
        raw = next(raw for _, _, raw in reader.reader.messages(connections=[conn]))
    offered = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=recorded.depth,
                         reliability=QoSReliabilityPolicy(recorded.reliability.value),
                         durability=QoSDurabilityPolicy(recorded.durability.value))
    listener_qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=100,
                              reliability=QoSReliabilityPolicy.RELIABLE,
                              durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    topic = f"{unique_namespace('play')}/tf_static"
    with isolated_ros(choose_domain_id()):
        client = RosClient("player")
        try:
            publisher = client.node.create_publisher(TFMessage, topic, offered)
            publisher.publish(bytes(raw))  # the recorded CDR bytes, as bag play sends them
            got = []
            client.node.create_subscription(TFMessage, topic, got.append, listener_qos)
            assert wait_until(lambda: got, 20.0), "a late transient-local listener got no /tf_static"
            assert got[0].transforms[0].child_frame_id == "lidar"
            assert np.isfinite(got[0].transforms[0].transform.translation.x)
        finally:
            client.close()
