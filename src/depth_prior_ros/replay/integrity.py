"""Bag integrity: CRCs in the MCAP files the project writes, and a check of every bag as it is opened.

rosbags' MCAP writer leaves each chunk's ``uncompressed_crc`` at 0 ("no CRC"); :class:`CrcMcapWriter`
fills it in, so a reader can tell a damaged chunk from a good one. :func:`check_storage` decompresses
every chunk of an MCAP file once, compares its CRC and hides damaged chunks from the reader: their
messages become :class:`DamagedRecord` entries (topic, log time, reason) instead of garbage that
deserialises into a plausible but wrong image. SQLite bags get SQLite's own ``quick_check`` (page
structure; rows carry no checksum). ROS 1 bags and MCAP files without CRCs cannot be checked, and the
result says so.
"""
from __future__ import annotations

import sqlite3
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter

VERIFIED, DAMAGED, UNCHECKED = "verified", "damaged", "unchecked"
_CHUNK_CRC_OFFSET = 1 + 8 + 24  # opcode, record length, start/end time and uncompressed size
_MESSAGE_INDEX = 0x07


class CrcMcapWriter(McapWriter):
    """rosbags' MCAP storage writer, with the CRC-32 of each chunk's uncompressed records written in."""

    def close_chunk(self) -> None:
        crc = zlib.crc32(self.chunk.bio.getbuffer())
        start = self.bio.tell()
        super().close_chunk()
        end = self.bio.tell()
        self.bio.seek(start + _CHUNK_CRC_OFFSET)
        self.bio.write(struct.pack("<I", crc))
        self.bio.seek(end)


class CrcWriter(Writer):
    """rosbags' rosbag2 Writer whose MCAP storage writes chunk CRCs."""

    STORAGE_PLUGINS = {**Writer.STORAGE_PLUGINS, StoragePlugin.MCAP: CrcMcapWriter}


@dataclass(frozen=True)
class DamagedRecord:
    """A message that could not be read: its topic, log time (a range when only the chunk's is known)."""

    topic: str
    start_ns: int
    end_ns: int
    reason: str

    def near(self, stamp_ns: int, tolerance_ns: int) -> bool:
        return self.start_ns - tolerance_ns <= stamp_ns <= self.end_ns + tolerance_ns


@dataclass
class BagIntegrity:
    """What could be checked of one bag and what was found damaged."""

    status: str = UNCHECKED       # verified | damaged | unchecked
    method: str = ""              # what was checked ("chunk CRCs", "SQLite quick_check")
    detail: str = ""              # one sentence: why unchecked, or what is damaged
    damaged: list[DamagedRecord] = field(default_factory=list)

    def add(self, record: DamagedRecord) -> None:
        self.damaged.append(record)
        self.status = DAMAGED
        self.detail = self.detail or record.reason

    def summary(self) -> str:
        if self.status == VERIFIED:
            return f"verified ({self.method})"
        if self.status == UNCHECKED:
            return f"integrity could not be checked: {self.detail}"
        lost = f"; {len(self.damaged)} message(s) unreadable" if self.damaged else ""
        return f"DAMAGED: {self.detail}{lost}"

    def to_dict(self) -> dict:
        return {"status": self.status, "method": self.method, "detail": self.detail,
                "damaged_messages": len(self.damaged),
                "damaged_topics": sorted({r.topic for r in self.damaged})}


def check_storage(storage) -> BagIntegrity:
    """Check one rosbags storage reader (McapReader, Sqlite3Reader or a ROS 1 reader) after ``open``.

    Damaged MCAP chunks are removed from ``storage.chunks``, so reading skips them.
    """
    name = type(storage).__name__
    if name == "McapReader":
        return _cached_mcap_check(storage)
    if name == "Sqlite3Reader":
        return _check_sqlite(Path(storage.path))
    return BagIntegrity(UNCHECKED, detail="ROS 1 bags carry no checksums")


def combine(results: list[BagIntegrity]) -> BagIntegrity:
    """One result for a bag of several storage files: damaged beats unchecked beats verified."""
    if not results:
        return BagIntegrity(UNCHECKED, detail="the bag has no storage files")
    out = BagIntegrity(VERIFIED, method=results[0].method)
    for r in results:
        out.damaged.extend(r.damaged)
    for status in (DAMAGED, UNCHECKED):
        worst = [r for r in results if r.status == status]
        if worst:
            out.status, out.method, out.detail = status, worst[0].method, worst[0].detail
            break
    return out


# --------------------------------------------------------------------------- MCAP
# A replay opens each bag several times (protocol, preflight, frames, tf copy): decompress it once.
# (path, size, mtime) -> (result, offsets of the damaged chunks)
_MCAP_CHECKS: dict[tuple, tuple[BagIntegrity, set[int]]] = {}


def _cached_mcap_check(mcap) -> BagIntegrity:
    stat = Path(mcap.path).stat()
    key = (str(Path(mcap.path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MCAP_CHECKS:
        offsets = {c.chunk_start_offset for c in mcap.chunks}
        result = _check_mcap(mcap)
        _MCAP_CHECKS[key] = (result, offsets - {c.chunk_start_offset for c in mcap.chunks})
    result, damaged = _MCAP_CHECKS[key]
    mcap.chunks[:] = [c for c in mcap.chunks if c.chunk_start_offset not in damaged]
    return BagIntegrity(result.status, result.method, result.detail, list(result.damaged))


def _check_mcap(mcap) -> BagIntegrity:
    from rosbags.rosbag2.storage_mcap import decompress

    result = BagIntegrity(VERIFIED, method="chunk CRCs")
    if not mcap.chunks:
        return BagIntegrity(UNCHECKED, detail=f"{Path(mcap.path).name} has no chunk index to check")
    bio = mcap.bio
    good, without_crc = [], 0
    for chunk in mcap.chunks:
        reason = None
        try:
            bio.seek(chunk.chunk_start_offset + _CHUNK_CRC_OFFSET)
            (crc,) = struct.unpack("<I", bio.read(4))
            bio.seek(chunk.chunk_start_offset + 9 + 40 + len(chunk.compression))
            raw = decompress(bio.read(chunk.compressed_size), chunk.compression, chunk.uncompressed_size, 0)
            if crc and zlib.crc32(raw) != crc:
                reason = "its CRC does not match"
            without_crc += not crc
        except Exception:  # noqa: BLE001 - any failure to decode a chunk means it is damaged
            # the decompressor's own checks fired before the CRC could (its message adds nothing here)
            reason = "its compressed data cannot be decompressed"
        if reason is None:
            good.append(chunk)
            continue
        where = f"the chunk at byte {chunk.chunk_start_offset} of {Path(mcap.path).name}"
        result.status, result.detail = DAMAGED, result.detail or f"{where} is damaged: {reason}"
        for record in _chunk_records(mcap, chunk, f"{where} is damaged: {reason}"):
            result.add(record)
    if result.status == VERIFIED and without_crc:
        name = Path(mcap.path).name
        result = BagIntegrity(UNCHECKED, detail=f"{without_crc} of {len(mcap.chunks)} chunk(s) of {name} carry no "
                                                "CRC (its writer did not compute them)")
    mcap.chunks[:] = good
    return result


def _chunk_records(mcap, chunk, reason: str) -> list[DamagedRecord]:
    """The messages a damaged chunk held, one record each, with their log times from the chunk's
    message index where that index is readable, else the chunk's time range."""
    records = []
    for cid, count in chunk.channel_count.items():
        channel = mcap.channels.get(cid)
        topic = channel.topic if channel is not None else f"channel {cid}"
        times = _index_times(mcap.bio, chunk, cid, count)
        if times is None:
            records += [DamagedRecord(topic, chunk.message_start_time, chunk.message_end_time, reason)] * count
        else:
            records += [DamagedRecord(topic, t, t, reason) for t in times]
    return sorted(records, key=lambda r: r.start_ns)


def _index_times(bio, chunk, cid: int, count: int) -> list[int] | None:
    offset = chunk.message_index_offsets.get(cid)
    if offset is None:
        return None
    try:
        bio.seek(offset)
        head = bio.read(15)
        op, _, channel, size = struct.unpack("<BQHI", head)
        if op != _MESSAGE_INDEX or channel != cid or size != 16 * count:
            return None
        entries = struct.unpack(f"<{2 * count}Q", bio.read(size))
    except (OSError, struct.error):
        return None
    times = sorted(entries[0::2])
    if times and not chunk.message_start_time <= times[0] <= times[-1] <= chunk.message_end_time:
        return None
    return times


# --------------------------------------------------------------------------- SQLite
def _check_sqlite(path: Path) -> BagIntegrity:
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return BagIntegrity(DAMAGED, "SQLite quick_check", f"{path.name} fails SQLite's check ({exc})")
    problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
    if problems:
        return BagIntegrity(DAMAGED, "SQLite quick_check",
                            f"{path.name} fails SQLite's check ({problems[0].splitlines()[0][:120]})")
    return BagIntegrity(VERIFIED, "SQLite quick_check (page structure; rows carry no checksum)")
