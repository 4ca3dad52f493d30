"""What machine a benchmark ran on: CPU, cores, memory, GPU and the versions of the libraries that matter.

Everything here is best effort and never raises: a missing library is reported as "not installed".
"""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# Distribution names whose versions change the numbers (ROS wheels register "rclpy"; apt builds do not).
LIBRARIES = (("python", None), ("numpy", "numpy"), ("opencv", "opencv-python-headless"), ("torch", "torch"),
             ("onnxruntime", "onnxruntime"), ("rclpy", "rclpy"), ("rmw_fastrtps_cpp", "ros-rmw-fastrtps-cpp"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_features() -> str:
    """The vector extensions numpy/torch/onnxruntime kernels pick from (explains CPU-to-CPU differences)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
                return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"
    except OSError:
        pass
    return "unknown"


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def total_memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 ** 2
    except (OSError, ValueError, IndexError):
        pass
    return None


def library_version(distribution: str | None) -> str:
    if distribution is None:
        return platform.python_version()
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pass
    if distribution == "opencv-python-headless":  # opencv-python or a distro build
        try:
            import cv2

            return cv2.__version__
        except ImportError:
            pass
    if distribution == "rclpy":  # apt-installed ROS: no distribution metadata
        distro = os.environ.get("ROS_DISTRO")
        try:
            import rclpy  # noqa: F401

            return f"installed ({distro})" if distro else "installed"
        except ImportError:
            pass
    return "not installed"


def gpu_description() -> str:
    """The CUDA device torch sees, else what nvidia-smi lists, else "none"."""
    try:
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            return f"{', '.join(names)} (CUDA {torch.version.cuda})"
    except Exception:  # noqa: BLE001 - a broken CUDA install must not stop the report
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return ", ".join(line.strip() for line in out.stdout.splitlines() if line.strip()) + " (torch sees none)"
    except (OSError, subprocess.SubprocessError):
        pass
    return "none"


def git_revision(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info(repo: Path | None = None) -> dict[str, str]:
    """Ordered label -> value pairs for the report's machine table."""
    mem = total_memory_gib()
    info = {
        "CPU": cpu_model(),
        "CPU features": cpu_features(),
        "cores usable": str(usable_cores()),
        "RAM": f"{mem:.1f} GiB" if mem else "unknown",
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "GPU": gpu_description(),
    }
    for label, dist in LIBRARIES:
        info[label] = library_version(dist)
    info["RMW"] = os.environ.get("RMW_IMPLEMENTATION", "default (rmw_fastrtps_cpp)")
    try:  # other work on the machine moves the milliseconds (less so the ratios): say how busy it was
        info["load average (1/5/15 min) when written"] = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    if repo is not None:
        info["revision"] = git_revision(repo)
    return info
