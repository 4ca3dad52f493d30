"""A corrupt bag is never scored as fine (issue 13, item 2).

The repro: the demo's day bag (640x360, 8 frames) with 50 KB of random bytes written into its middle
replayed with exit 0, complete=true, and one frame's ground truth silently corrupted (AbsRel 5.43 instead
of 0.53). Now bags the project writes carry chunk CRCs, the damaged chunk's frame is a drop with its reason,
the report says the bag is damaged and the command ends in one sentence with exit 2; a bag without CRCs
is reported as unchecked.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from helpers_errors import assert_one_sentence
from helpers_replay import read_frames_csv, read_metrics

from depth_prior_ros.cli import main
from depth_prior_ros.replay import bag_io
from depth_prior_ros.replay.bag_io import BagReader
from depth_prior_ros.replay.synth_bag import SynthBagSpec, write_synth_bag


@pytest.fixture(scope="module")
def demo_day_bag(tmp_path_factory):
    """The demo's day bag: 8 frames at 640x360 (DemoOptions' defaults)."""
    out = tmp_path_factory.mktemp("demo_day") / "day"
    write_synth_bag(out, "day", SynthBagSpec(frames=8, width=640, height=360), progress=False)
    return out


def _copy_bag(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _chunks(mcap_path):
    """(offset, stored CRC, CRC of the decompressed records) of every chunk, from the file's chunk index."""
    from rosbags.rosbag2.storage_mcap import McapReader, decompress

    reader = McapReader(mcap_path)
    reader.open()
    try:
        out = []
        for c in reader.chunks:
            reader.bio.seek(c.chunk_start_offset + 33)
            (stored,) = struct.unpack("<I", reader.bio.read(4))
            reader.bio.seek(c.chunk_start_offset + 49 + len(c.compression))
            raw = decompress(reader.bio.read(c.compressed_size), c.compression, c.uncompressed_size, 0)
            out.append((c.chunk_start_offset, stored, zlib.crc32(raw)))
        return out
    finally:
        reader.close()


def test_bags_the_project_writes_carry_chunk_crcs(demo_day_bag, tmp_path):
    chunks = _chunks(demo_day_bag / "day.mcap")
    assert len(chunks) > 4 and all(stored != 0 and stored == actual for _, stored, actual in chunks)
    with BagReader(demo_day_bag) as reader:
        assert reader.integrity.status == "verified" and reader.integrity.method == "chunk CRCs"
    # the replay's output bag too
    assert main(["replay", str(demo_day_bag), "--out", str(tmp_path / "r"), "--no-progress", "--max-frames", "2"]) == 0
    assert all(s == a != 0 for _, s, a in _chunks(tmp_path / "r" / "output_bag" / "output_bag.mcap"))
    assert read_metrics(tmp_path / "r")["integrity"][str(demo_day_bag)]["status"] == "verified"


def test_converted_bags_carry_chunk_crcs(tmp_path):
    from test_replay_nuscenes import write_nuscenes_fixture

    write_nuscenes_fixture(tmp_path / "ns")
    assert main(["bag", "from-nuscenes", str(tmp_path / "ns"), "--out", str(tmp_path / "bags"), "--no-progress"]) == 0
    mcaps = sorted((tmp_path / "bags").rglob("*.mcap"))
    assert mcaps and all(s == a != 0 for mcap in mcaps for _, s, a in _chunks(mcap))


DAMAGE_REASONS = ("CRC does not match", "cannot be decompressed")


def test_random_bytes_in_the_middle_are_a_dropped_frame_not_a_wrong_score(demo_day_bag, tmp_path, capsys):
    bag = _copy_bag(demo_day_bag, tmp_path / "damaged")
    mcap = bag / "day.mcap"
    data = bytearray(mcap.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 50_000] = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    mcap.write_bytes(bytes(data))

    out = tmp_path / "report"
    code = main(["replay", str(bag), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    # Where the bytes land decides which check fires first: the chunk's CRC, or its Zstandard frame
    # (the decompressor's own checks). Both name the chunk as damaged.
    assert code == 2 and f"bag {bag} is damaged" in err
    assert any(reason in err for reason in DAMAGE_REASONS), err
    assert_one_sentence(err, ignore_paths=True)
    metrics = read_metrics(out)
    assert metrics["damaged"] is True and metrics["integrity"][str(bag)]["status"] == "damaged"
    rows = read_frames_csv(out)
    dropped = {r["frame"] for r in rows if r["dropped"] == "1"}
    assert dropped and all(any(reason in r["error"] for reason in DAMAGE_REASONS) for r in rows if r["dropped"] == "1")
    scored = [float(r["abs_rel"]) for r in rows if r["region"] == "all" and r["scaling"] == "metric"]
    assert len(scored) + len(dropped) == 8
    # Every frame that is scored is scored on intact data: the undamaged bag's AbsRel, not 5.43.
    clean = main(["replay", str(demo_day_bag), "--out", str(tmp_path / "clean"), "--no-progress"])
    assert clean == 0
    expected = {r["frame"]: float(r["abs_rel"]) for r in read_frames_csv(tmp_path / "clean")
                if r["region"] == "all" and r["scaling"] == "metric"}
    for r in rows:
        if r["region"] == "all" and r["scaling"] == "metric":
            assert float(r["abs_rel"]) == pytest.approx(expected[r["frame"]], rel=1e-6)
    assert "DAMAGED" in (out / "report.md").read_text()


def test_a_bag_without_crcs_is_reported_as_unchecked(demo_day_bag, tmp_path, capsys):
    """rosbags' own writer leaves the CRCs at 0: such a bag replays, and the report says it was not checked."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    dst = tmp_path / "nocrc"
    with BagReader(demo_day_bag) as reader:
        writer = Writer(dst, version=8, storage_plugin=StoragePlugin.MCAP)
        for key, value in reader.custom_data.items():
            writer.set_custom_data(key, value)
        writer.open()
        conns = {}
        for m in reader.messages():
            if m.topic not in conns:
                conns[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=bag_io.get_store())
            writer.write(conns[m.topic], m.log_ns, bag_io.serialize(m.msg, m.msgtype))
        writer.close()
    assert all(stored == 0 for _, stored, _ in _chunks(dst / "nocrc.mcap"))
    out = tmp_path / "report"
    assert main(["replay", str(dst), "--out", str(out), "--no-progress", "--max-frames", "2"]) == 0
    entry = read_metrics(out)["integrity"][str(dst)]
    assert entry["status"] == "unchecked" and "carry no CRC" in entry["detail"]
    assert "integrity could not be checked" in (out / "report.md").read_text()


def test_sqlite_bags_get_sqlites_integrity_check(demo_day_bag, tmp_path):
    import sqlite3

    from rosbags.rosbag2 import StoragePlugin, Writer

    dst = tmp_path / "db"
    with BagReader(demo_day_bag) as reader:
        writer = Writer(dst, version=8, storage_plugin=StoragePlugin.SQLITE3)
        writer.open()
        conns = {}
        for m in reader.messages(["/camera/camera_info"]):
            if m.topic not in conns:
                conns[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=bag_io.get_store())
            writer.write(conns[m.topic], m.log_ns, bag_io.serialize(m.msg, m.msgtype))
        writer.close()
    with BagReader(dst) as reader:
        assert reader.integrity.status == "verified" and "SQLite" in reader.integrity.method
    db = next(dst.glob("*.db3"))
    with sqlite3.connect(db) as con:  # a page of the messages table's index overwritten
        page = con.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    data[page:2 * page] = b"\xff" * page
    db.write_bytes(bytes(data))
    try:
        with BagReader(dst) as reader:
            assert reader.integrity.status == "damaged" and "SQLite" in reader.integrity.detail
    except bag_io.BagError as exc:  # the damage may already stop rosbags from opening it: one sentence
        assert_one_sentence(exc, ignore_paths=True)
