"""Bad bags and interruptions: one sentence, non-zero exit, and whatever finished is saved (atomically)."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from helpers_errors import assert_one_sentence
from helpers_replay import count_messages, make_synth_bags, read_frames_csv, read_metrics

from depth_prior_ros.cli import main
from depth_prior_ros.replay import bag_io
from depth_prior_ros.replay.bag_io import BagReader, BagWriter
from depth_prior_ros.replay.replay import ReplayConfig, run_replay


@pytest.fixture(scope="module")
def day_bag(tmp_path_factory):
    return make_synth_bags(tmp_path_factory.mktemp("err"), frames=3, conditions=("day",))[0]


def _copy_without(src, dst, drop_topics=(), storage="mcap"):
    """Copy a bag (hints included), leaving out some topics; storage mcap or sqlite3."""
    with BagReader(src) as reader:
        hints = reader.custom_data
        msgs = [m for m in reader.messages() if m.topic not in drop_topics]
    if storage == "mcap":
        with BagWriter(dst, custom_data=hints) as w:
            for m in msgs:
                w.write(m.topic, m.msg, m.msgtype, m.log_ns)
        return dst
    from rosbags.rosbag2 import StoragePlugin, Writer

    w = Writer(dst, version=8, storage_plugin=StoragePlugin.SQLITE3)
    for k, v in hints.items():
        w.set_custom_data(k, v)
    w.open()
    conns = {}
    for m in msgs:
        if m.topic not in conns:
            conns[m.topic] = w.add_connection(m.topic, m.msgtype, typestore=bag_io.get_store())
        w.write(conns[m.topic], m.log_ns, bag_io.serialize(m.msg, m.msgtype))
    w.close()
    return dst


def _run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_a_bag_without_camera_info_is_one_sentence_and_exit_2(day_bag, tmp_path, capsys):
    bag = _copy_without(day_bag, tmp_path / "no_info", drop_topics=("/camera/camera_info",))
    code, err = _run_cli(["replay", str(bag), "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert code == 2
    assert err.count("\n") == 0 and "camera_info" in err and "depth replay needs the intrinsics" in err
    metrics = read_metrics(tmp_path / "out")
    assert metrics["complete"] is False and "camera_info" in metrics["error"]
    assert "INCOMPLETE" in (tmp_path / "out" / "report.md").read_text()


def test_a_missing_topic_names_what_the_bag_has(day_bag, tmp_path, capsys):
    code, err = _run_cli(["replay", str(day_bag), "--out", str(tmp_path / "out"), "--gt-topic", "/nope",
                          "--no-progress"], capsys)
    assert code == 2 and "no ground-truth depth topic '/nope'" in err and "/camera/depth_gt" in err


def test_a_truncated_bag_is_one_sentence(day_bag, tmp_path, capsys):
    bag = _copy_without(day_bag, tmp_path / "trunc")
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size * 2 // 3])
    code, err = _run_cli(["replay", str(bag), "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert code == 2 and "corrupt or truncated" in err and err.count("\n") == 0
    code, err = _run_cli(["replay", str(tmp_path / "missing"), "--out", str(tmp_path / "out2")], capsys)
    assert code == 2 and "does not exist" in err


def test_an_unreadable_record_is_a_drop_and_the_replay_goes_on(day_bag, tmp_path, capsys):
    """Two bags: the first replays completely; in the second (SQLite) the third image does not
    deserialise: that frame is dropped with its reason, the report says the bag is damaged, exit 2."""
    good = _copy_without(day_bag, tmp_path / "good")
    broken = _copy_without(day_bag, tmp_path / "broken", storage="sqlite3")
    db = next(broken.glob("*.db3"))
    with sqlite3.connect(db) as con:
        topic_id = con.execute("select id from topics where name='/camera/image_raw'").fetchone()[0]
        ids = [r[0] for r in con.execute("select id from messages where topic_id=? order by timestamp", (topic_id,))]
        con.execute("update messages set data=? where id=?", (b"\x00\x01\x00\x00garbage", ids[2]))
    out = tmp_path / "out"
    code, err = _run_cli(["replay", str(good), str(broken), "--out", str(out), "--no-progress",
                          "--condition", "a", "b"], capsys)
    assert code == 2 and f"bag {broken} is damaged" in err and "does not deserialise" in err
    assert_one_sentence(err, ignore_paths=True)
    metrics = read_metrics(out)
    assert metrics["complete"] is True and metrics["damaged"] is True
    assert metrics["integrity"][str(good)]["status"] == "verified"
    assert metrics["integrity"][str(broken)]["status"] == "damaged"
    assert metrics["summary"]["prior_only"]["a"]["all"]["metric"]["frames"] == 3
    assert metrics["summary"]["prior_only"]["b"]["all"]["metric"]["frames"] == 2
    rows = [r for r in read_frames_csv(out) if r["condition"] == "b" and r["dropped"] == "1"]
    assert [r["frame"] for r in rows] == ["2"] and "does not deserialise" in rows[0]["error"]
    assert "DAMAGED" in (out / "report.md").read_text()
    assert count_messages(out / "output_bag")["/prior_only/depth"] == 5  # the output bag is finalised
    assert not list(out.glob(".*"))  # no temporary files left in the report folder


def test_ctrl_c_saves_the_finished_frames(day_bag, tmp_path, monkeypatch):
    from depth_prior_ros.pipeline import DepthPipeline

    calls = {"n": 0}
    real = DepthPipeline.process

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DepthPipeline, "process", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_replay([day_bag], out, ReplayConfig(progress=False))
    metrics = read_metrics(out)
    assert metrics["complete"] is False and "interrupted" in metrics["error"]
    assert metrics["summary"]["prior_only"]["day"]["all"]["metric"]["frames"] == 2
    assert (out / "plots" / "per_condition.png").exists()
    assert count_messages(out / "output_bag")["/prior_only/depth"] == 2
    monkeypatch.setattr(DepthPipeline, "process", interrupted)
    calls["n"] = 0
    assert main(["replay", str(day_bag), "--out", str(tmp_path / "cli"), "--no-progress"]) == 130


def test_bad_options_are_one_sentence(day_bag, tmp_path, capsys):
    code, err = _run_cli(["replay", str(day_bag), "--out", str(tmp_path / "o"), "--backend", "nonexistent"], capsys)
    assert code == 2 and "unknown backend 'nonexistent'" in err
    code, err = _run_cli(["replay", str(day_bag), "--out", str(tmp_path / "o"), "--param", "max_depth=-3"], capsys)
    assert code == 2 and "max_depth" in err
    code, err = _run_cli(["replay", str(day_bag), str(day_bag), "--out", str(tmp_path / "o"),
                          "--condition", "a", "b", "c"], capsys)
    assert code == 2 and "one per bag" in err
    code, err = _run_cli(["replay", str(day_bag), "--out", str(tmp_path / "o"), "--pose", "tf",
                          "--ground-frame", "nowhere"], capsys)
    assert code == 2 and "'nowhere' is not in the tf tree" in err
    code, err = _run_cli(["bag", "from-kitti", str(tmp_path), "--out", str(tmp_path / "k")], capsys)
    assert code == 2 and "is not a KITTI folder" in err
    assert np.isfinite(read_metrics(tmp_path / "o")["elapsed_s"])
