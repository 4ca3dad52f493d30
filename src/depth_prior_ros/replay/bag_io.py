"""Bag I/O with ``rosbags`` (pure Python): read rosbag2 (MCAP, SQLite3) and ROS 1 bags, write rosbag2 MCAP,
and turn the few message types replay needs into numpy and back.

Messages here are ``rosbags`` objects (attribute-compatible with rclpy messages); the same typestore
serialises them to CDR, which is also what rclpy publishes raw, so live replay needs no second
conversion layer. Every failure that is the bag's fault becomes a :class:`BagError` with one sentence.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
STRING = "std_msgs/msg/String"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

DISTROS = ("humble", "jazzy", "kilted")
DEFAULT_DISTRO = "humble"

# PointField datatypes -> numpy dtypes (sensor_msgs/PointField constants).
POINT_FIELD_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32,
                      7: np.float32, 8: np.float64}
FLOAT32 = 7


class BagError(ValueError):
    """The bag cannot be read or lacks what was asked for; the message is one sentence."""


# --------------------------------------------------------------------------- typestore
@lru_cache(maxsize=None)
def get_store(distro: str = DEFAULT_DISTRO):
    """rosbags typestore with the standard ROS 2 messages of ``distro`` (humble | jazzy | kilted)."""
    from rosbags.typesys import Stores, get_typestore

    if distro not in DISTROS:
        raise BagError(f"ROS distribution '{distro}' is not one of {', '.join(DISTROS)}")
    return get_typestore({"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY,
                          "kilted": Stores.ROS2_KILTED}[distro])


def msg_class(msgtype: str, distro: str = DEFAULT_DISTRO):
    return get_store(distro).types[msgtype]


def serialize(msg, msgtype: str, distro: str = DEFAULT_DISTRO) -> bytes:
    """A rosbags message -> CDR bytes (what rosbag2 stores and rclpy publishes raw)."""
    return bytes(get_store(distro).serialize_cdr(msg, msgtype))


def deserialize(data: bytes, msgtype: str, distro: str = DEFAULT_DISTRO):
    return get_store(distro).deserialize_cdr(data, msgtype)


# --------------------------------------------------------------------------- message builders
def ns_to_stamp(ns: int, distro: str = DEFAULT_DISTRO):
    Time = msg_class("builtin_interfaces/msg/Time", distro)
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(stamp_ns: int, frame_id: str, distro: str = DEFAULT_DISTRO):
    Header = msg_class("std_msgs/msg/Header", distro)
    return Header(stamp=ns_to_stamp(stamp_ns, distro), frame_id=frame_id)


def make_image(array: np.ndarray, stamp_ns: int, frame_id: str, encoding: str | None = None,
               distro: str = DEFAULT_DISTRO):
    """numpy -> sensor_msgs/Image. (H, W, 3) uint8 -> rgb8; (H, W) uint8 -> mono8; float32 -> 32FC1;
    uint16 -> 16UC1 (or pass ``encoding``)."""
    array = np.ascontiguousarray(array)
    if encoding is None:
        encoding = {("uint8", 3): "rgb8", ("uint8", 2): "mono8", ("float32", 2): "32FC1",
                    ("uint16", 2): "16UC1"}.get((array.dtype.name, array.ndim))
        if encoding is None:
            raise BagError(f"no image encoding for a {array.dtype} array of shape {array.shape}")
    Image = msg_class(IMAGE, distro)
    h, w = array.shape[:2]
    step = array.strides[0]
    return Image(header=make_header(stamp_ns, frame_id, distro), height=h, width=w, encoding=encoding,
                 is_bigendian=0, step=step, data=np.frombuffer(array.tobytes(), dtype=np.uint8))


def make_compressed_image(data: bytes, fmt: str, stamp_ns: int, frame_id: str, distro: str = DEFAULT_DISTRO):
    """Already encoded bytes (jpeg/png) -> sensor_msgs/CompressedImage."""
    Compressed = msg_class(COMPRESSED_IMAGE, distro)
    return Compressed(header=make_header(stamp_ns, frame_id, distro), format=fmt,
                      data=np.frombuffer(bytes(data), dtype=np.uint8))


def make_camera_info(K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str,
                     D=None, distortion_model: str = "plumb_bob", P: np.ndarray | None = None,
                     distro: str = DEFAULT_DISTRO):
    """sensor_msgs/CameraInfo from K (3, 3); P defaults to [K | 0] (a rectified monocular camera)."""
    CameraInfo = msg_class(CAMERA_INFO, distro)
    ROI = msg_class("sensor_msgs/msg/RegionOfInterest", distro)
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    if P is None:
        P = np.concatenate([K, np.zeros((3, 1))], axis=1)
    D = np.zeros(5) if D is None else np.asarray(D, dtype=np.float64).reshape(-1)
    return CameraInfo(header=make_header(stamp_ns, frame_id, distro), height=int(height), width=int(width),
                      distortion_model=distortion_model, d=D, k=K.reshape(9), r=np.eye(3).reshape(9),
                      p=np.asarray(P, dtype=np.float64).reshape(12), binning_x=0, binning_y=0,
                      roi=ROI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def make_pointcloud2(points: np.ndarray, stamp_ns: int, frame_id: str, field_names=("x", "y", "z", "intensity"),
                     distro: str = DEFAULT_DISTRO):
    """(N, C) float array -> unorganised float32 PointCloud2 with the first C of ``field_names``."""
    points = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
    if points.ndim != 2 or points.shape[1] < 3:
        raise BagError(f"a point cloud needs an (N, 3+) array, got shape {points.shape}")
    c = min(points.shape[1], len(field_names))
    points = np.ascontiguousarray(points[:, :c])
    PointCloud2 = msg_class(POINT_CLOUD2, distro)
    PointField = msg_class("sensor_msgs/msg/PointField", distro)
    fields = [PointField(name=field_names[i], offset=4 * i, datatype=FLOAT32, count=1) for i in range(c)]
    return PointCloud2(header=make_header(stamp_ns, frame_id, distro), height=1, width=points.shape[0],
                       fields=fields, is_bigendian=False, point_step=4 * c, row_step=4 * c * points.shape[0],
                       data=np.frombuffer(points.tobytes(), dtype=np.uint8), is_dense=True)


def make_transform_stamped(T_parent_from_child: np.ndarray, parent: str, child: str, stamp_ns: int,
                           distro: str = DEFAULT_DISTRO):
    from ..geometry.extrinsics import matrix_to_quaternion

    TS = msg_class("geometry_msgs/msg/TransformStamped", distro)
    Transform = msg_class("geometry_msgs/msg/Transform", distro)
    Vector3 = msg_class("geometry_msgs/msg/Vector3", distro)
    Quaternion = msg_class("geometry_msgs/msg/Quaternion", distro)
    T = np.asarray(T_parent_from_child, dtype=np.float64)
    x, y, z, w = matrix_to_quaternion(T[:3, :3])
    return TS(header=make_header(stamp_ns, parent, distro), child_frame_id=child,
              transform=Transform(translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                                  rotation=Quaternion(x=x, y=y, z=z, w=w)))


def make_tf_message(transforms: Iterable, distro: str = DEFAULT_DISTRO):
    """TransformStamped objects -> tf2_msgs/TFMessage."""
    return msg_class(TF_MESSAGE, distro)(transforms=list(transforms))


def make_string(text: str, distro: str = DEFAULT_DISTRO):
    return msg_class(STRING, distro)(data=text)


# --------------------------------------------------------------------------- message -> numpy
def _codec_rgb(msg, msgtype: str) -> np.ndarray:
    """A camera image through the nodes' decoder (ros/image_codec.py): one decoder, live and offline."""
    from ..ros.image_codec import ConversionError, decode_compressed, decode_image, to_rgb

    data = msg.data if isinstance(msg.data, np.ndarray) else bytes(msg.data)
    try:
        if msgtype == COMPRESSED_IMAGE:
            return decode_compressed(data, str(msg.format))
        pixels = decode_image(str(msg.encoding), int(msg.width), int(msg.height), int(msg.step), data,
                              bigendian=bool(msg.is_bigendian))
        return to_rgb(pixels, str(msg.encoding))
    except ConversionError as exc:
        raise BagError(f"the camera image cannot be read: {exc}") from None


def image_to_numpy(msg, msgtype: str = IMAGE) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> numpy.

    Camera encodings the nodes take (rgb8, bgr8, rgba8, bgra8, bayer_*, yuv422...) and CompressedImage
    come back as uint8 RGB (H, W, 3), decoded as the nodes decode them; mono8 as uint8 (H, W);
    16UC1/mono16 as uint16 (H, W); 32FC1 as float32 (H, W). Raises BagError for encodings depth replay
    cannot use.
    """
    from ..ros.image_codec import IMAGE_ENCODINGS

    if msgtype == COMPRESSED_IMAGE or (msg.encoding in IMAGE_ENCODINGS and msg.encoding not in ("mono8", "mono16")):
        return _codec_rgb(msg, msgtype)
    enc = str(msg.encoding).lower()
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    layouts = {"mono8": (np.uint8, 1), "8uc1": (np.uint8, 1), "mono16": (np.uint16, 1), "16uc1": (np.uint16, 1),
               "32fc1": (np.float32, 1), "8uc3": (np.uint8, 3)}
    if enc not in layouts:
        raise BagError(f"image encoding '{msg.encoding}' is not supported (use rgb8, bgr8, mono8, 16UC1 or 32FC1)")
    dtype, channels = layouts[enc]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    raw = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, dtype=np.uint8)
    row_bytes = w * channels * dtype.itemsize
    if h * w == 0 or step < row_bytes or raw.size < step * (h - 1) + row_bytes:
        raise BagError(f"a {w}x{h} {msg.encoding} image carries {raw.size} bytes with step {step}; "
                       "the message is truncated or inconsistent")
    rows = np.lib.stride_tricks.as_strided(raw, shape=(h, row_bytes), strides=(step, 1))
    arr = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder("="), copy=False)
    arr = arr.reshape(h, w, channels) if channels > 1 else arr.reshape(h, w)
    if enc == "8uc3":  # OpenCV's unnamed 3-channel images are BGR
        arr = arr[:, :, ::-1]
    return np.ascontiguousarray(arr)


def rgb_image(msg, msgtype: str = IMAGE) -> np.ndarray:
    """Any camera image message -> uint8 RGB (H, W, 3), through the nodes' decoder where it applies."""
    from ..ros.image_codec import IMAGE_ENCODINGS

    if msgtype == COMPRESSED_IMAGE or msg.encoding in IMAGE_ENCODINGS:
        return _codec_rgb(msg, msgtype)
    arr = image_to_numpy(msg, msgtype)
    if arr.dtype != np.uint8:
        raise BagError(f"the camera image is {arr.dtype} ({getattr(msg, 'encoding', '?')}); an 8-bit image is needed")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return arr


def pointcloud2_to_xyz(msg) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> float64 (N, 3) of the finite x, y, z fields."""
    fields = {f.name: f for f in msg.fields}
    missing = [name for name in ("x", "y", "z") if name not in fields]
    if missing:
        raise BagError(f"the point cloud has no {', '.join(missing)} field (fields: {', '.join(fields) or 'none'})")
    n = int(msg.width) * int(msg.height)
    step = int(msg.point_step)
    raw = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, dtype=np.uint8)
    if n == 0:
        return np.zeros((0, 3))
    if raw.size < n * step:
        raise BagError(f"the point cloud says {n} points of {step} bytes but carries {raw.size} bytes")
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": ["x", "y", "z"],
                      "formats": [np.dtype(POINT_FIELD_DTYPES[fields[k].datatype]).newbyteorder(order)
                                  for k in ("x", "y", "z")],
                      "offsets": [int(fields[k].offset) for k in ("x", "y", "z")],
                      "itemsize": step})
    rec = raw[: n * step].view(dtype)
    xyz = np.stack([rec["x"], rec["y"], rec["z"]], axis=1).astype(np.float64)
    return xyz[np.all(np.isfinite(xyz), axis=1)]


def camera_info_fields(msg) -> dict:
    """CameraInfo fields from a ROS 2 (k, d, p) or ROS 1 (K, D, P) message: k (9,), d (n,), p (12,), size, model."""
    def field(lower: str):
        value = getattr(msg, lower, None)
        return np.asarray(value if value is not None else getattr(msg, lower.upper()), dtype=np.float64)

    return {"k": field("k").reshape(9), "d": field("d").reshape(-1), "p": field("p").reshape(12),
            "width": int(msg.width), "height": int(msg.height), "distortion_model": str(msg.distortion_model)}


def camera_from_info(msg, use_projection: bool = False):
    """sensor_msgs/CameraInfo (ROS 2 or ROS 1) -> PinholeCamera (CameraModelError for an unusable one)."""
    from ..geometry.camera import PinholeCamera

    f = camera_info_fields(msg)
    return PinholeCamera.from_camera_info_fields(f["k"], f["d"], f["width"], f["height"], f["distortion_model"],
                                                 f["p"], use_projection)


def normalised_camera_info(msg, stamp_ns: int, frame_id: str, distro: str = DEFAULT_DISTRO):
    """A ROS 2 CameraInfo with the given header and the calibration of ``msg`` (ROS 1 or ROS 2)."""
    f = camera_info_fields(msg)
    return make_camera_info(f["k"].reshape(3, 3), f["width"], f["height"], stamp_ns, frame_id, f["d"],
                            f["distortion_model"], f["p"].reshape(3, 4), distro)


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class TopicSummary:
    msgtype: str
    count: int


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    log_ns: int  # time the recorder received it
    msg: object  # None for a damaged record (see ``damage``)
    damage: str | None = None  # why the record could not be read (messages(with_damage=True))

    @property
    def stamp_ns(self) -> int:
        """header.stamp when the message has one, else the log time."""
        header = getattr(self.msg, "header", None)
        return stamp_to_ns(header.stamp) if header is not None else self.log_ns


class BagReader:
    """Read one bag: a rosbag2 folder (MCAP or SQLite3), a bare .mcap/.db3 file, or a ROS 1 .bag.

    with BagReader(path) as bag:
        bag.topics                       # {topic: TopicSummary}
        for m in bag.messages(["/camera/image_raw"]): ...
    """

    def __init__(self, path: str | os.PathLike, distro: str = DEFAULT_DISTRO):
        self.path = Path(path)
        self.distro = distro
        self._reader = None
        self.integrity = None  # BagIntegrity once open: what could be checked, what is damaged

    # ----------------------------------------------------------------- open / close
    def __enter__(self) -> "BagReader":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        from rosbags.highlevel import AnyReader, AnyReaderError

        path = self.path
        if not path.exists():
            raise BagError(f"bag {path} does not exist")
        if path.is_file() and path.name == "metadata.yaml":
            path = path.parent
        if path.is_dir() and not (path / "metadata.yaml").exists():
            storage = sorted(list(path.glob("*.mcap")) + list(path.glob("*.db3")))
            if len(storage) != 1:
                raise BagError(f"{path} is not a bag: a rosbag2 folder needs metadata.yaml "
                               "(or exactly one .mcap/.db3 file)")
            path = storage[0]
        if path.is_file() and path.suffix not in (".bag", ".mcap", ".db3"):
            raise BagError(f"{path} is not a bag (expected a rosbag2 folder, a .mcap/.db3 file or a ROS 1 .bag)")
        try:
            reader = AnyReader([path], default_typestore=get_store(self.distro))
            reader.open()
        except (AnyReaderError, OSError, ValueError, KeyError, IndexError, EOFError) as exc:
            raise BagError(f"bag {self.path} cannot be opened, it is corrupt or truncated ({_short(exc)})") from exc
        except Exception as exc:  # noqa: BLE001 - rosbags raises assorted errors on damaged files
            raise BagError(f"bag {self.path} cannot be opened, it is corrupt or truncated ({_short(exc)})") from exc
        self._reader = reader
        self.integrity = _check_integrity(reader)

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    # ----------------------------------------------------------------- contents
    @property
    def reader(self):
        if self._reader is None:
            raise BagError(f"bag {self.path} is not open")
        return self._reader

    @property
    def topics(self) -> dict[str, TopicSummary]:
        out = {}
        for name, info in self.reader.topics.items():
            out[name] = TopicSummary(info.msgtype or "", int(info.msgcount))
        return out

    @property
    def custom_data(self) -> dict[str, str]:
        """rosbag2 metadata custom_data (empty for ROS 1 and bare storage files)."""
        out: dict[str, str] = {}
        for sub in getattr(self.reader, "readers", []):
            meta = getattr(getattr(sub, "storage", None), "metadata", None)
            custom = getattr(meta, "custom", None) if meta is not None else None
            if custom:
                out.update({str(k): str(v) for k, v in custom.items()})
        return out

    @property
    def start_ns(self) -> int:
        return int(self.reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self.reader.end_time)

    def has(self, topic: str) -> bool:
        return topic in self.topics

    def require(self, topic: str, what: str, types: tuple[str, ...] | None = None) -> TopicSummary:
        """The topic's summary, or BagError naming what is missing and what the bag has."""
        topics = self.topics
        if topic not in topics:
            listed = ", ".join(f"{t} ({s.msgtype.split('/')[-1]})" for t, s in sorted(topics.items())) or "none"
            raise BagError(f"bag {self.path} has no {what} topic '{topic}' (topics: {listed})")
        summary = topics[topic]
        if types is not None and summary.msgtype not in types:
            raise BagError(f"topic '{topic}' in bag {self.path} is {summary.msgtype}, not "
                           f"{' or '.join(types)} as a {what} topic must be")
        return summary

    def find_topics(self, msgtype: str) -> list[str]:
        return sorted(t for t, s in self.topics.items() if s.msgtype == msgtype)

    def messages(self, topics: Iterable[str] | None = None, with_damage: bool = False) -> Iterator[BagMessage]:
        """Deserialised messages of ``topics`` (all when None) in log-time order.

        A record that cannot be read (a chunk that failed its CRC, bytes that do not deserialise) is
        added to ``self.integrity`` and skipped, or, with ``with_damage``, yielded in its place as a
        BagMessage with ``msg=None`` and the reason in ``damage``. A failure of the storage itself
        raises BagError; everything yielded before it stays valid.
        """
        reader = self.reader
        wanted = None if topics is None else set(topics)
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not connections:
            return
        types = {c.topic: c.msgtype for c in connections}
        # Latest first, so pop() gives the earliest damaged record still to place in the stream.
        lost = sorted((r for r in self.integrity.damaged if r.topic in types and with_damage),
                      key=lambda r: r.start_ns, reverse=True)

        def damaged(record) -> BagMessage:
            return BagMessage(record.topic, types[record.topic], record.start_ns, None, record.reason)

        it = reader.messages(connections=connections)
        while True:
            try:
                conn, log_ns, raw = next(it)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - any storage failure means a damaged bag
                raise BagError(f"bag {self.path} is corrupt or truncated: reading stopped "
                               f"({_short(exc)})") from exc
            while lost and lost[-1].start_ns <= log_ns:
                yield damaged(lost.pop())
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception:  # noqa: BLE001 - bytes that are not this message type
                from .integrity import DamagedRecord

                record = DamagedRecord(conn.topic, int(log_ns), int(log_ns),
                                       f"the message on '{conn.topic}' at {log_ns / 1e9:.3f} s does not "
                                       f"deserialise as {conn.msgtype}")
                self.integrity.add(record)
                if with_damage:
                    yield damaged(record)
                continue
            yield BagMessage(conn.topic, conn.msgtype, int(log_ns), msg)
        while lost:
            yield damaged(lost.pop())


def _check_integrity(reader):
    """BagIntegrity of an open AnyReader, over all its storage files (damaged MCAP chunks get hidden)."""
    from .integrity import check_storage, combine

    results = []
    for sub in reader.readers:
        storage = getattr(sub, "storage", sub)
        for leaf in getattr(storage, "storages", None) or [storage]:
            results.append(check_storage(leaf))
    return combine(results)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text.splitlines()[0][:200]


# --------------------------------------------------------------------------- writing
class BagWriter:
    """Write a rosbag2 MCAP bag atomically: into a hidden ``.partial-<name>/<name>`` folder beside ``path``
    first (so the storage file already has its final name), moved to ``path`` on close.

    A writer closed after an error (or Ctrl-C) still finalises what was written, so the partial bag is
    readable; ``abort()`` removes it instead.
    """

    def __init__(self, path: str | os.PathLike, distro: str = DEFAULT_DISTRO, compress: bool = True,
                 custom_data: dict[str, str] | None = None, overwrite: bool = False):
        self.path = Path(path)
        self.distro = distro
        self.compress = compress
        self.custom_data = dict(custom_data or {})
        self.overwrite = overwrite
        self._writer = None
        self._connections: dict[str, object] = {}
        self._tmp_root = self.path.with_name(f".partial-{self.path.name}")
        self._tmp = self._tmp_root / self.path.name
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def open(self) -> None:
        from rosbags.rosbag2 import StoragePlugin
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

        if self.path.exists() and not self.overwrite:
            raise BagError(f"{self.path} exists already; choose another output or remove it")
        if self.path.exists() and not is_written_bag(self.path):
            raise BagError(f"{self.path} exists and is not a bag this tool writes; it is not replaced, "
                           "choose another output")
        if self._tmp_root.exists():
            shutil.rmtree(self._tmp_root)
        self._tmp_root.mkdir(parents=True)
        from .integrity import CrcWriter

        writer = CrcWriter(self._tmp, version=8, storage_plugin=StoragePlugin.MCAP)
        if self.compress:
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        for key, value in self.custom_data.items():
            writer.set_custom_data(key, str(value))
        writer.open()
        self._writer = writer

    def write(self, topic: str, msg, msgtype: str, log_ns: int) -> None:
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=get_store(self.distro),
                                               offered_qos_profiles=[offered_qos(topic)])
            self._connections[topic] = conn
        self._writer.write(conn, int(log_ns), serialize(msg, msgtype, self.distro))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> Path:
        """Finalise and move into place; returns the bag path."""
        if self._writer is None:
            return self.path
        writer, self._writer = self._writer, None
        writer.close()
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self._tmp, self.path)
        shutil.rmtree(self._tmp_root, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - removing it anyway
                pass
        shutil.rmtree(self._tmp_root, ignore_errors=True)


def offered_qos(topic: str):
    """The QoS a bag records as offered for ``topic``, which ``ros2 bag play`` offers again: tf2's
    (transient local, keep last 1 for /tf_static; keep last 100 for /tf), else reliable keep last 10.
    Durations 0 mean the middleware default (no deadline, lifespan or lease)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    static = topic.endswith("tf_static")
    depth = 1 if static else 100 if topic.endswith("/tf") or topic == "tf" else 10
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE,
               QosDurability.TRANSIENT_LOCAL if static else QosDurability.VOLATILE, zero, zero,
               QosLiveliness.AUTOMATIC, zero, False)


def is_written_bag(path: Path) -> bool:
    """True for a folder exactly like the ones BagWriter writes (metadata.yaml and NAME.mcap, nothing
    else): the only thing an overwriting BagWriter may replace."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    return sorted(p.name for p in path.iterdir()) == sorted(["metadata.yaml", f"{path.name}.mcap"])
