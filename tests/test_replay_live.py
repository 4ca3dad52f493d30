"""Live replay: frames published through rclpy to a depth_node subprocess, outputs scored, latency and drops."""
from __future__ import annotations

import pytest
from helpers_replay import LIVE_DOMAIN, count_messages, make_synth_bags, read_metrics

from depth_prior_ros.processes import DOMAIN_ENV, DOMAIN_RANGE, NodeProcessError, choose_domain_id
from depth_prior_ros.replay.config import BackendSpec
from depth_prior_ros.replay.replay import ReplayConfig, ReplayError, run_replay

pytestmark = pytest.mark.ros


@pytest.fixture
def ros_env(monkeypatch):
    """Our domain, loopback discovery; monkeypatch restores the variables the replay sets."""
    monkeypatch.setenv(DOMAIN_ENV, str(LIVE_DOMAIN))
    monkeypatch.setenv("ROS_DOMAIN_ID", str(LIVE_DOMAIN))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def test_domain_id_choice(monkeypatch, tmp_path):
    assert DOMAIN_ENV == "DEPTH_PRIOR_ROS_DOMAIN_ID" and DOMAIN_RANGE == (150, 229)
    monkeypatch.delenv(DOMAIN_ENV, raising=False)
    assert 150 <= choose_domain_id() <= 229
    assert choose_domain_id(7) == 7
    monkeypatch.setenv(DOMAIN_ENV, "115")
    assert choose_domain_id() == 115
    monkeypatch.setenv(DOMAIN_ENV, "x")
    with pytest.raises(NodeProcessError, match="not an integer"):
        choose_domain_id()
    with pytest.raises(ReplayError, match="not an integer"):  # the replay says so in its own terms
        run_replay(make_synth_bags(tmp_path, frames=1, conditions=("day",)), tmp_path / "o",
                   ReplayConfig(live=True, progress=False))


def test_live_replay_through_the_depth_node_scores_every_frame(ros_env, tmp_path):
    import os
    import threading

    bags = make_synth_bags(tmp_path / "bags", frames=2, conditions=("day", "night"))
    out = tmp_path / "live"
    tf_types = _watch_replay_tf(threading.Event())
    try:
        report = run_replay(bags, out, ReplayConfig(live=True, rate=20.0, lockstep=True, progress=False,
                                                    scalings=("metric",)))
    finally:
        tf_types["stop"].set()
        tf_types["thread"].join(30)
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert os.environ["ROS_DOMAIN_ID"] == str(LIVE_DOMAIN)
    metrics = read_metrics(out)
    assert metrics["complete"] and metrics["run"]["mode"] == "live" and metrics["run"]["ros_domain_id"] == LIVE_DOMAIN
    timing = metrics["timing"]["prior_only"]
    assert timing["frames"] == 4 and timing["dropped"] == 0
    assert timing["published"] == 4 and timing["received"] == 4 and timing["node_exit_status"] == 0
    assert timing["latency_ms"]["mean"] > 0
    assert int(timing["node"]["frames_processed"]) == 4  # the node's own count agrees
    summary = metrics["summary"]["prior_only"]
    # The node runs its shipped defaults and follows the bags' per-frame tf (the suspension wobble of the
    # synthetic street), so live scores what offline replay scores (0.0003 here; 0.009 with a static pose).
    assert summary["day"]["road"]["metric"]["abs_rel"] <= 0.002
    assert summary["night"]["road"]["metric"]["abs_rel"] <= 0.002
    assert any("use_tf true" in n for n in metrics["notes"])
    assert count_messages(out / "output_bag")["/prior_only/depth"] == 4
    assert (out / "logs" / "prior_only.log").read_text().count("ready") >= 1
    assert (out / "plots" / "latency.png").exists()
    assert report.records[0].latency_ms is not None
    # What the replay published on /tf, read from the ROS graph: the real tf2 type, so tf2 interoperates.
    assert tf_types["seen"] == {("tf2_msgs/msg/TFMessage", TFMESSAGE_HASH)}, tf_types["seen"]


TFMESSAGE_HASH = "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087"


def _watch_replay_tf(stop) -> dict:
    """A graph observer (own rclpy context) collecting (type, type hash) of the replay's /tf publishers."""
    import threading

    from depth_prior_ros.processes import RosClient

    found = {"seen": set(), "stop": stop}
    client = RosClient("tf_graph_observer")

    def watch() -> None:
        try:
            while not stop.wait(0.05):
                for info in client.node.get_publishers_info_by_topic("/tf"):
                    if info.node_name.startswith("depth_prior_replay"):
                        found["seen"].add((info.topic_type, str(info.topic_type_hash)))
        finally:
            client.close()

    found["thread"] = threading.Thread(target=watch, daemon=True)
    found["thread"].start()
    return found


def test_a_backend_the_node_cannot_load_stops_before_replaying(ros_env, tmp_path):
    bags = make_synth_bags(tmp_path / "bags", frames=1, conditions=("day",))
    with pytest.raises(ReplayError, match="weights"):
        run_replay(bags, tmp_path / "o", ReplayConfig(live=True, progress=False,
                                                      backends=[BackendSpec("prior_only", weights="/no/such/file")]))
    assert read_metrics(tmp_path / "o")["complete"] is False
