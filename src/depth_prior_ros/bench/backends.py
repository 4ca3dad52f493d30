"""Depth networks on one device: PyTorch vs ONNX Runtime, same architecture, same input, same run.

Weights cannot be downloaded here, and speed does not depend on the weights' values, so each model is
built with the published architecture sizes and random weights (``random_init``), saved in the
project's format, exported with ``depth-prior export``'s code (``models.export.export_onnx``) and
loaded back through ``create_backend("onnx")``: the exact code paths a vehicle runs.

When the models area's script ``benchmarks/bench_models.py`` is there (a source checkout), the full run
calls it (``--json``) and reports its rows: one implementation of the network benchmark, shared. The
quick mode and installs without the script use the equivalent code below (quick: a tiny config).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .timing import Timing, measure

# Depth Anything sizes for the quick mode: the real module classes, a few layers, small input.
TINY_CONFIG = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
               "neck_hidden_sizes": [16, 32, 64, 64], "fusion_hidden_size": 32}


@dataclass
class BackendRow:
    model: str            # e.g. "ssd_student ViT-S (Depth Anything)"
    runtime: str          # "PyTorch fp32" | "ONNX Runtime (CPUExecutionProvider)" | ...
    camera: str           # camera image size, "1600x900"
    network_input: str    # network input "924x518"
    timing: Timing | None
    pipeline: Timing | None = None  # whole DepthPipeline.process with this backend (prior + network + align)
    note: str = ""

    @property
    def ms(self) -> float:
        return self.timing.median if self.timing else float("nan")


@dataclass
class BackendResults:
    device: str
    rows: list[BackendRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # one sentence per model or runtime not measured
    source: str = "depth_prior_ros.bench.backends"

    def reference(self, row: BackendRow) -> BackendRow | None:
        """The PyTorch row of the same model (what the ratio column divides by)."""
        for other in self.rows:
            if other.model == row.model and other.runtime.startswith("PyTorch"):
                return other
        return None


MODELS_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_models.py"


def _script_models(models: tuple[str, ...]) -> str:
    """("ssd_student:vits", "jasmine") -> "vits,jasmine" (bench_models.py's --models)."""
    return ",".join(m.split(":", 1)[1] if m.startswith("ssd_student:") else m for m in models)


def run_models_script(device: str, models: tuple[str, ...], iterations: int = 3, pipeline_iterations: int = 2,
                      timeout: float = 3000.0) -> BackendResults:
    """benchmarks/bench_models.py in a child process (its own torch threads and memory), rows from --json."""
    import json
    import os
    import subprocess
    import sys

    print(f"running {MODELS_SCRIPT.relative_to(MODELS_SCRIPT.parents[1])} --models {_script_models(models)} "
          f"on {device} (minutes on a small CPU)...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="depth_prior_bench_models_") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(MODELS_SCRIPT), "--device", device, "--models", _script_models(models),
               "--iterations", str(iterations), "--pipeline-iterations", str(pipeline_iterations),
               "--jasmine-iterations", str(max(1, iterations // 3)), "--json", str(out)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(MODELS_SCRIPT.parents[1] / "src")] +
                                            [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{MODELS_SCRIPT.name} exited with {done.returncode}: {tail[0]}")
        data = json.loads(out.read_text())
    results = BackendResults(device=data.get("device", device), source="benchmarks/bench_models.py")
    for row in data.get("rows", []):
        results.rows.append(BackendRow(row["model"], row["runtime"], row["camera"], row["network_input"],
                                       Timing(tuple(row.get("predict_ms") or ())),
                                       Timing(tuple(row["pipeline_ms"])) if row.get("pipeline_ms") else None,
                                       note=row.get("note", "")))
    failed = [line.strip() for line in done.stdout.splitlines() if " failed: " in line]
    results.skipped += failed
    return results


def run_backends(device: str = "cpu", quick: bool = False, models: tuple[str, ...] | None = None,
                 camera_size: tuple[int, int] = (1600, 900), dtype: str | None = None,
                 work_dir: Path | None = None, progress=None) -> BackendResults:
    """PyTorch vs ONNX Runtime for each model spec ("ssd_student:vits", "ssd_student:vitb", "jasmine").

    quick: a tiny Depth Anything config at 640x360 (seconds; checks the plumbing, not the speed).
    dtype: default fp32 on CPU, fp16 on CUDA.
    """
    dtype = dtype or ("fp32" if device == "cpu" else "fp16")
    if quick:
        models = models or ("ssd_student:tiny",)
        camera_size = (640, 360)
    else:
        models = models or (("ssd_student:vits", "ssd_student:vitb") if device == "cpu"
                            else ("ssd_student:vits", "ssd_student:vitb", "ssd_student:vitl", "jasmine"))
        if MODELS_SCRIPT.is_file() and "ssd_student:tiny" not in models:
            results = run_models_script(device, tuple(models))
            if device == "cpu" and "jasmine" not in models:
                results.skipped.append("jasmine is not run on CPU by default (an SD2 UNet + VAE at 1024x320 takes "
                                       "tens of seconds per frame on 2 cores); `--models ssd_student:vits jasmine` "
                                       "runs it, benchmarks/run_gpu.sh runs it on a GPU")
            return results
    results = BackendResults(device=device)
    work = Path(work_dir or tempfile.mkdtemp(prefix="depth_prior_bench_models_"))
    bar = progress(total=len(models), desc="backends", unit="model") if progress else None
    for spec in models:
        try:
            if spec.startswith("ssd_student"):
                _bench_ssd_student(spec, device, dtype, camera_size, quick, work, results)
            elif spec == "jasmine":
                _bench_jasmine(device, dtype, results)
            else:
                results.skipped.append(f"unknown model spec '{spec}' (use ssd_student:vits|vitb|vitl|tiny or jasmine)")
        except Exception as exc:  # noqa: BLE001 - one model failing must not lose the others' numbers
            first = str(exc).splitlines()[0] if str(exc) else ""
            results.skipped.append(f"{spec} failed: {type(exc).__name__}: {first}")
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return results


def _timing_budget(quick: bool, device: str) -> dict:
    if quick:
        return {"min_time_s": 0.2, "min_repeats": 3, "warmup": 1}
    if device == "cpu":
        return {"min_time_s": 4.0, "min_repeats": 3, "warmup": 1}
    return {"min_time_s": 3.0, "min_repeats": 20, "warmup": 3}


def _sync(device: str):
    """A call that waits for the GPU, so a timed call includes its kernels."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _bench_ssd_student(spec: str, device: str, dtype: str, camera_size: tuple[int, int], quick: bool,
                       work: Path, results: BackendResults) -> None:
    from ..geometry.extrinsics import pose_from_static
    from ..models.export import export_onnx
    from ..models.registry import create_backend
    from ..pipeline import DepthPipeline
    from .core import presets

    variant = spec.split(":", 1)[1] if ":" in spec else "vitb"
    width, height = camera_size
    camera = presets()["1600x900"].camera.resized(width, height)
    pose = pose_from_static(1.51, 0.0)
    options = {"random_init": True, "variant": "vits" if variant == "tiny" else variant}
    if variant == "tiny":
        options.update(config=dict(TINY_CONFIG), short_side=70)
    label = f"ssd_student {'tiny test config' if variant == 'tiny' else variant} (Depth Anything, random weights)"
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    budget = _timing_budget(quick, device)
    sync = _sync(device)

    torch_backend = create_backend("ssd_student", device=device, dtype=dtype, **options)
    h, w = torch_backend.network_size(height, width)
    torch_backend.warmup(width, height)

    def run_torch():
        torch_backend.predict(image)
        sync()

    t_torch = measure(run_torch, **budget)
    pipe = DepthPipeline(torch_backend)
    t_pipe = measure(lambda: (pipe.process(image, camera, pose), sync()), **budget)
    results.rows.append(BackendRow(label, f"PyTorch {dtype} ({device})", f"{width}x{height}", f"{w}x{h}", t_torch,
                                   t_pipe, note=f"{torch_backend.parameter_count() / 1e6:.1f} M parameters"))

    weights = torch_backend.net.save_pretrained(work / f"ssd_student_{variant}.safetensors")
    onnx_path = work / f"ssd_student_{variant}_{h}x{w}.onnx"
    report = export_onnx("ssd_student", str(weights), onnx_path, height=h, width=w,
                         options={k: v for k, v in options.items() if k not in ("random_init", "variant", "config")})
    del torch_backend, pipe
    onnx_backend = create_backend("onnx", weights=str(onnx_path), device=device, dtype=dtype)
    onnx_backend.warmup(width, height)
    t_onnx = measure(lambda: onnx_backend.predict(image), **budget)
    pipe = DepthPipeline(onnx_backend)
    t_pipe = measure(lambda: pipe.process(image, camera, pose), **budget)
    providers = ", ".join(getattr(onnx_backend, "active_providers", []) or ["?"])
    results.rows.append(BackendRow(label, f"ONNX Runtime ({providers})", f"{width}x{height}", f"{w}x{h}", t_onnx,
                                   t_pipe, note=f"export parity: max rel error {report.max_rel_error:.1e}"))


def _bench_jasmine(device: str, dtype: str, results: BackendResults) -> None:
    """Jasmine (SD2 UNet + VAE + GRU, ~1.3 G parameters) at its 1024x320 card size; PyTorch only."""
    from ..models.registry import create_backend

    if device == "cpu":
        results.skipped.append("jasmine is not run on CPU (an SD2 UNet + VAE at 1024x320 takes minutes per frame "
                               "on 2 cores); benchmarks/run_gpu.sh runs it on a GPU")
        return
    backend = create_backend("jasmine", random_init=True, device=device, dtype=dtype)
    width, height = 1242, 375  # KITTI camera -> the card's 1024x320 network input
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    backend.warmup(width, height)
    sync = _sync(device)
    budget = _timing_budget(False, device)
    t = measure(lambda: (backend.predict(image), sync()), **budget)
    h, w = backend.network_size(height, width)
    note = f"{backend.parameter_count() / 1e6:.0f} M parameters; paper: 172 ms on an RTX 4090"
    results.rows.append(BackendRow("jasmine SD2 one-step + Scale-Shift GRU (random weights)",
                                   f"PyTorch {dtype} ({device})", f"{width}x{height}", f"{w}x{h}", t, note=note))


