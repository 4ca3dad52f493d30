"""Nodes in their own processes and this process's rclpy side of them: one toolkit for replay ``--live``,
the benchmarks and the tests.

- Isolation: ``isolate_ros`` keeps DDS on this host (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) in the run's
  own ROS_DOMAIN_ID, for this process and every child, before rclpy starts. ``choose_domain_id``: an
  explicit id, else ``$DEPTH_PRIOR_ROS_DOMAIN_ID``, else a random id in ``DOMAIN_RANGE`` (150-229, the range
  of scripts/local_ros_env.sh). Namespaces from ``unique_namespace`` keep two runs of one domain apart.
- ``NodeProcess``: ``python -m <module> --ros-args -r __ns:=<ns> --params-file <log>.params.yaml``, output in
  a log file (``output``, ``last_error_line``, ``log_problems``), resident memory, stop: SIGINT, then harder.
- ``RosClient``: an rclpy context, node and spin thread of its own; publishers, subscriptions (an ``Inbox``
  or a callback), the latest /diagnostics status of the node under test, readiness waits.
rclpy is imported inside functions: importing this module needs no ROS.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DOMAIN_ENV = "DEPTH_PRIOR_ROS_DOMAIN_ID"
DOMAIN_RANGE = (150, 229)
_ROS_VARIABLES = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE", DOMAIN_ENV)
_PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # .../src (or site-packages): children import this copy

# The benchmarks' Fast DDS profile ("shm"): user data between processes through shared memory (as between
# nodes on one vehicle computer); discovery and any UDP stay on 127.0.0.1 (no multicast, nothing on eth0:
# checked with tcpdump). Why not UDP loopback only? A 1600x900 rgb8 image is ~70 UDP fragments; with
# best-effort (sensor-data) QoS one lost fragment loses the frame, and with default kernel socket buffers
# most frames are lost (1 of 30 arrived at 10 Hz): that measures a socket buffer. The tests' profile
# (config/fastdds_localhost.xml, from scripts/local_ros_env.sh) has the same two transports.
SHM_LOOPBACK_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>bench_shm</transport_id>
        <type>SHM</type>
        <segment_size>33554432</segment_size>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>bench_udp_loopback</transport_id>
        <type>UDPv4</type>
        <maxInitialPeersRange>32</maxInitialPeersRange>
        <interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="depth_prior_bench_participant" is_default_profile="true">
      <rtps>
        <useBuiltinTransports>false</useBuiltinTransports>
        <userTransports>
          <transport_id>bench_shm</transport_id>
          <transport_id>bench_udp_loopback</transport_id>
        </userTransports>
        <builtin>
          <metatrafficUnicastLocatorList>
            <locator><udpv4><address>127.0.0.1</address></udpv4></locator>
          </metatrafficUnicastLocatorList>
          <initialPeersList>
            <locator><udpv4><address>127.0.0.1</address></udpv4></locator>
          </initialPeersList>
        </builtin>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


class NodeProcessError(RuntimeError):
    """A node process or its connection could not do its job (bad domain, no connection...): one sentence."""


# --------------------------------------------------------------------------- isolation
def choose_domain_id(explicit: int | None = None) -> int:
    """``explicit``, else $DEPTH_PRIOR_ROS_DOMAIN_ID, else a random id in DOMAIN_RANGE (parallel runs rarely meet)."""
    if explicit is None and os.environ.get(DOMAIN_ENV):
        try:
            explicit = int(os.environ[DOMAIN_ENV])
        except ValueError:
            raise NodeProcessError(f"{DOMAIN_ENV}={os.environ[DOMAIN_ENV]!r} is not an integer ROS domain id") from None
    domain = random.randint(*DOMAIN_RANGE) if explicit is None else int(explicit)
    if not 0 <= domain <= 232:
        raise NodeProcessError(f"ROS domain id {domain} is outside 0-232")
    return domain


def isolate_ros(domain_id: int, fastdds_profile: str | None = None) -> None:
    """Loopback discovery in ``domain_id`` for this process and its children (and as the run's domain for
    ``choose_domain_id``); must run before rclpy starts. ``fastdds_profile``: None or "" keeps the
    environment's FASTDDS_DEFAULT_PROFILES_FILE, "shm" writes and uses SHM_LOOPBACK_PROFILE, else a file."""
    os.environ.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(int(domain_id)),
                       DOMAIN_ENV: str(int(domain_id))})
    if fastdds_profile == "shm":
        path = Path(tempfile.gettempdir()) / "depth_prior_bench_fastdds_shm_loopback.xml"
        if not path.is_file() or path.read_text() != SHM_LOOPBACK_PROFILE:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(SHM_LOOPBACK_PROFILE)
            tmp.replace(path)
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(path)
    elif fastdds_profile:
        if not Path(fastdds_profile).is_file():
            raise NodeProcessError(f"Fast DDS profile {fastdds_profile} does not exist")
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(fastdds_profile).resolve())


@contextlib.contextmanager
def isolated_ros(domain_id: int, fastdds_profile: str | None = None):
    """``isolate_ros`` for a ``with`` block, restoring the variables afterwards (tests share one process)."""
    saved = {name: os.environ.get(name) for name in _ROS_VARIABLES}
    try:
        isolate_ros(domain_id, fastdds_profile)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _require_isolation() -> None:
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST" or not os.environ.get("ROS_DOMAIN_ID"):
        raise NodeProcessError("call isolate_ros() before starting rclpy or node processes (loopback, own domain)")


def child_environment() -> dict[str, str]:
    """This process's environment (with its ROS isolation) plus this package on PYTHONPATH."""
    _require_isolation()
    env = dict(os.environ)
    paths = [str(_PACKAGE_PARENT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    return env


def unique_namespace(prefix: str) -> str:
    """A ROS namespace no other run on this host uses (topics and /diagnostics names stay apart)."""
    return f"/{prefix}_{os.getpid()}_{random.randint(0, 99999)}"


def wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


# --------------------------------------------------------------------------- node process
def read_rss_mb(pid: int) -> float | None:
    """Resident memory (VmRSS) of a process in MiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def log_problems(text: str) -> list[str]:
    """Lines of a node log that show a crash or an unexpected error (tracebacks, ERROR/FATAL lines)."""
    needles = ("Traceback (most recent call last)", "[ERROR]", "[FATAL]", "Segmentation fault", "core dumped")
    return [line.strip() for line in text.splitlines() if any(n in line for n in needles)]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, so a killed run never leaves a node behind
    that would answer the next run's messages."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except OSError:
        pass


class NodeProcess:
    """A node in its own process, parameters from a params file beside its log, output in the log."""

    def __init__(self, module: str, params: dict | None = None, log_path: Path | None = None,
                 namespace: str | None = None, remaps: dict[str, str] | None = None):
        self.module, self.params, self.namespace = module, dict(params or {}), namespace
        self.remaps = dict(remaps or {})  # topic remappings, as a launch file's (from: to)
        self.log_path = Path(log_path or Path(tempfile.mkdtemp(prefix="depth_prior_node_")) / "node.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "NodeProcess":
        import yaml

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", self.module, "--ros-args"]
        if self.namespace:
            cmd += ["-r", f"__ns:={self.namespace}"]
        for source, target in self.remaps.items():
            cmd += ["-r", f"{source}:={target}"]
        if self.params:
            params_file = self.log_path.with_name(self.log_path.stem + ".params.yaml")
            params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": self.params}}), encoding="utf-8")
            cmd += ["--params-file", str(params_file)]
        with open(self.log_path, "wb") as log:
            # Own session: a Ctrl-C in the terminal reaches only us, and we stop the node in order.
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_environment(),
                                         start_new_session=True, preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float | None:
        return read_rss_mb(self.pid) if self.alive() else None

    def stop(self, timeout: float = 20.0, grace: float = 3.0) -> int | None:
        """SIGINT (rclpy shuts down cleanly on it), then SIGTERM, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, grace), (signal.SIGKILL, grace)):
            if self.proc.poll() is not None:
                break
            try:
                self.proc.send_signal(sig)
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        return self.proc.poll()

    def run_until_exit(self, timeout: float = 60.0) -> tuple[int | None, str]:
        """Start, wait for the node to exit by itself (e.g. refusing its configuration): (exit code, output)."""
        self.start()
        try:
            self.proc.wait(timeout)
        finally:
            self.stop()
        return self.proc.returncode, self.output()

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def last_error_line(self) -> str:
        """The last log line that mentions an error, else the last line (for one-sentence failures)."""
        lines = [line.strip() for line in self.output().splitlines() if line.strip()]
        return next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- rclpy client
def qos_profile(reliable: bool = True, depth: int = 10):
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=max(int(depth), 1),
                      reliability=QoSReliabilityPolicy.RELIABLE if reliable else QoSReliabilityPolicy.BEST_EFFORT,
                      durability=QoSDurabilityPolicy.VOLATILE)


class Inbox:
    """Messages received on one topic, with waiting on a condition."""

    def __init__(self):
        self.messages: list = []
        self._cond = threading.Condition()

    def __call__(self, msg) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0):
        """The newest message matching ``predicate``, waiting up to ``timeout``; None if none came."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in reversed(self.messages):
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))


def status_values(status) -> dict:
    """DiagnosticStatus -> its key/values, plus ``_level`` (int), ``_message`` and ``_time`` (monotonic)."""
    values = {kv.key: kv.value for kv in status.values}
    level = status.level
    values.update(_level=level[0] if isinstance(level, bytes) else int(level), _message=status.message,
                  _time=time.monotonic())
    return values


class RosClient:
    """This process's rclpy side of a node under test: its own context, node (in ``namespace``: relative
    topics are the node's) and spin thread; no signal handlers, so the caller keeps Ctrl-C."""

    def __init__(self, name: str = "client", namespace: str = "/", domain_id: int | None = None):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        _require_isolation()
        self.rclpy, self.namespace = rclpy, namespace
        self.context = rclpy.Context()
        # The domain is passed explicitly: this process may have started rclpy before with another one.
        kwargs = {"context": self.context, "domain_id": int(os.environ["ROS_DOMAIN_ID"] if domain_id is None
                                                            else domain_id)}
        try:
            from rclpy.signals import SignalHandlerOptions
            kwargs["signal_handler_options"] = SignalHandlerOptions.NO
        except ImportError:
            pass
        rclpy.init(**kwargs)
        self.node = rclpy.create_node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._last_status: dict | None = None
        self._thread = threading.Thread(target=self._spin, name=f"{name}_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown races at close() (ExternalShutdownException, handles)
            pass

    def publisher(self, msg_type, topic: str, depth: int = 10, reliable: bool = True):
        return self.node.create_publisher(msg_type, topic, qos_profile(reliable, depth))

    def subscribe(self, msg_type, topic: str, callback=None, depth: int = 10, raw: bool = False):
        """Reliable keep-last subscription (it measures the node, not loss in our socket); without a
        callback the messages collect in the returned Inbox."""
        inbox = Inbox() if callback is None else None
        self.node.create_subscription(msg_type, topic, callback or inbox, qos_profile(True, depth), raw=raw)
        return inbox

    def add_node(self, node) -> None:
        self.executor.add_node(node)

    def resolve(self, topic: str) -> str:
        return topic if topic.startswith("/") else f"{self.namespace.rstrip('/')}/{topic}"

    # ------------------------------------------------------------------ the node under test
    def watch_diagnostics(self, name_prefix: str = "") -> None:
        """Keep the latest /diagnostics status whose name starts with ``name_prefix`` (see last_diagnostics)."""
        from diagnostic_msgs.msg import DiagnosticArray

        def on_array(msg) -> None:
            for status in msg.status:
                if status.name.startswith(name_prefix):
                    values = status_values(status)
                    with self._lock:
                        self._last_status = values
                    self.on_status(values)

        self.subscribe(DiagnosticArray, "/diagnostics", on_array)

    def on_status(self, values: dict) -> None:
        """Called with each status watch_diagnostics keeps (subclasses collect them)."""

    def last_diagnostics(self) -> dict | None:
        with self._lock:
            return None if self._last_status is None else dict(self._last_status)

    def counter(self, key: str) -> int:
        """An integer value of the latest status, -1 while there is none."""
        try:
            return int(float((self.last_diagnostics() or {}).get(key, -1)))
        except ValueError:
            return -1

    def connected(self, publishers, outputs=()) -> bool:
        """Every publisher has a subscriber and every output topic a publisher."""
        return all(p.get_subscription_count() > 0 for p in publishers) and \
            all(self.node.count_publishers(self.resolve(t)) > 0 for t in outputs)

    def wait_connected(self, publishers, outputs=(), timeout: float = 30.0) -> None:
        if not wait_until(lambda: self.connected(publishers, outputs), timeout):
            topics = ", ".join(p.topic_name for p in publishers)
            raise NodeProcessError(f"no node connected to {topics} within {timeout:.0f} s")

    def send_until_counted(self, publisher, msg, key: str = "camera_info_received", timeout: float = 30.0) -> bool:
        """Publish ``msg`` every 0.2 s until the node's diagnostics count one (``key`` > 0), e.g. a
        camera_info, so that the first image finds it; False on timeout."""
        return wait_until(lambda: publisher.publish(msg) or self.counter(key) > 0, timeout, interval=0.2)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self._thread.join(5)

    def __enter__(self) -> "RosClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
