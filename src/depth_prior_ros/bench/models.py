"""Depth networks on one device: PyTorch vs ONNX Runtime (and torch.compile on CUDA), same architecture,
same input, same run.

Weights cannot be downloaded here, and speed does not depend on the weights' values, so each model is
built with the published architecture sizes and random weights (``random_init``), saved in the
project's format, exported with ``depth-prior export``'s code (``models.export.export_onnx``) and
loaded back through ``create_backend("onnx")``: the exact code paths a vehicle runs. Per model and
runtime: the latency of ``backend.predict`` (preprocessing, network, resize back) and of
``DepthPipeline.process`` (prior + network + alignment).

Models: ``ssd_student:vits|vitb|vitl`` (Depth Anything; a 1600x900 nuScenes camera -> 924x518 input),
``ssd_student:tiny`` (a few layers: the quick mode, checks the plumbing, not the speed) and ``jasmine``
(SD2 VAE + one-step UNet + Scale-Shift GRU; a 1242x375 KITTI camera -> 1024x320 input).
"""
from __future__ import annotations

import gc
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core import presets
from .timing import Timing, measure

# Depth Anything sizes for the quick mode: the real module classes, a few layers, small input.
TINY_CONFIG = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 2,
               "neck_hidden_sizes": [16, 32, 64, 64], "fusion_hidden_size": 32}
LABELS = {"vits": "ssd_student ViT-S", "vitb": "ssd_student ViT-B", "vitl": "ssd_student ViT-L",
          "tiny": "ssd_student tiny test config", "jasmine": "jasmine SD2 + GRU"}
CPU_SKIPS_JASMINE = ("jasmine is not run on CPU by default (an SD2 UNet + VAE at 1024x320 takes tens of seconds "
                     "per frame on 2 cores); `--models ssd_student:vits jasmine` runs it, benchmarks/run_gpu.sh "
                     "runs it on a GPU")


@dataclass
class BackendRow:
    model: str            # e.g. "ssd_student ViT-S"
    runtime: str          # "PyTorch fp32 eager (cpu)" | "ONNX Runtime (CPU)" | ...
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
    source: str = "depth_prior_ros.bench.models"

    def reference(self, row: BackendRow) -> BackendRow | None:
        """The PyTorch row of the same model (what the ratio column divides by)."""
        for other in self.rows:
            if other.model == row.model and other.runtime.startswith("PyTorch"):
                return other
        return None


@dataclass(frozen=True)
class Plan:
    """What one run measures on ``device``: timed calls per runtime and which extra runtimes."""

    device: str = "cpu"
    iterations: int = 3            # timed backend.predict calls per runtime (jasmine: a third)
    pipeline_iterations: int = 2   # timed DepthPipeline.process calls per runtime
    onnx: bool = True
    compile: bool = True           # CUDA: also torch.compile (reduce-overhead = CUDA graphs)

    @property
    def dtype(self) -> str:
        return "fp32" if self.device == "cpu" else "fp16"

    def sync(self):
        """A call that waits for the GPU, so a timed call includes its kernels."""
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.synchronize
        return lambda: None

    def release(self) -> None:
        """Free the last model's memory before the next one is built."""
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def run_backends(device: str = "cpu", quick: bool = False, models: tuple[str, ...] | None = None,
                 progress=None) -> BackendResults:
    """Each model spec ("ssd_student:vits", "ssd_student:vitb", "ssd_student:tiny", "jasmine") on ``device``.

    quick: the tiny Depth Anything config at 640x360 (seconds). Default models: ViT-S and ViT-B on CPU,
    ViT-S/B/L and jasmine on a GPU.
    """
    plan = Plan(device)
    if quick:
        models = models or ("ssd_student:tiny",)
    elif not models:
        models = ("ssd_student:vits", "ssd_student:vitb") if device == "cpu" else \
            ("ssd_student:vits", "ssd_student:vitb", "ssd_student:vitl", "jasmine")
    results = BackendResults(device=device)
    bar = progress(total=len(models), desc="backends", unit="model") if progress else None
    with tempfile.TemporaryDirectory(prefix="depth_prior_bench_models_") as work:
        for spec in models:
            variant = spec.split(":", 1)[1] if spec.startswith("ssd_student:") else spec
            try:
                if variant in ("vits", "vitb", "vitl", "tiny"):
                    results.rows += bench_student(variant, plan, Path(work), "640x360" if quick else "1600x900")
                elif spec == "jasmine":
                    results.rows += bench_jasmine(plan)
                else:
                    results.skipped.append(f"unknown model spec '{spec}' (use ssd_student:vits|vitb|vitl|tiny or "
                                           "jasmine)")
            except Exception as exc:  # noqa: BLE001 - one model failing must not lose the others' numbers
                first = str(exc).splitlines()[0] if str(exc) else ""
                results.skipped.append(f"{spec} failed: {type(exc).__name__}: {first}")
            plan.release()
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    if device == "cpu" and not quick and "jasmine" not in models:
        results.skipped.append(CPU_SKIPS_JASMINE)
    return results


def measure_backend(label: str, runtime: str, backend, preset: str, plan: Plan, iterations: int,
                    note: str = "") -> BackendRow:
    """``backend.predict`` and ``DepthPipeline.process`` on a random image of the preset camera."""
    from ..pipeline import DepthPipeline

    camera, pose = presets()[preset].camera, presets()[preset].pose
    image = np.random.default_rng(0).integers(0, 256, (camera.height, camera.width, 3), dtype=np.uint8)
    h, w = backend.network_size(camera.height, camera.width)
    sync = plan.sync()
    predict = measure(lambda: (backend.predict(image), sync()), min_time_s=0.0, min_repeats=iterations,
                      max_repeats=iterations, warmup=1)
    pipe = DepthPipeline(backend)
    n = min(plan.pipeline_iterations, iterations)
    pipeline = measure(lambda: (pipe.process(image, camera, pose), sync()), min_time_s=0.0, min_repeats=n,
                       max_repeats=n, warmup=0)
    return BackendRow(label, runtime, f"{camera.width}x{camera.height}", f"{w}x{h}", predict, pipeline, note)


def bench_student(variant: str, plan: Plan, work: Path, preset: str = "1600x900") -> list[BackendRow]:
    """Depth Anything (ssd_student) in PyTorch (+ torch.compile on CUDA) and through its ONNX export."""
    from ..models.export import export_onnx
    from ..models.registry import create_backend

    options = {"random_init": True, "variant": "vits" if variant == "tiny" else variant}
    if variant == "tiny":
        options.update(config=dict(TINY_CONFIG), short_side=70)
    label, device, dtype, camera = LABELS[variant], plan.device, plan.dtype, presets()[preset].camera
    backend = create_backend("ssd_student", device=device, dtype=dtype, **options)
    rows = [measure_backend(label, f"PyTorch {dtype} eager ({device})", backend, preset, plan, plan.iterations,
                            f"{backend.parameter_count() / 1e6:.1f} M parameters")]
    if device != "cpu" and plan.compile:
        compiled = create_backend("ssd_student", device=device, dtype=dtype, compile="reduce-overhead", **options)
        compiled.warmup(camera.width, camera.height)
        rows.append(measure_backend(label, f"PyTorch {dtype} torch.compile+CUDA graphs", compiled, preset, plan,
                                    plan.iterations))
        del compiled
    if plan.onnx:
        cpu = backend if device == "cpu" else create_backend("ssd_student", device="cpu", **options)
        h, w = cpu.network_size(camera.height, camera.width)
        weights = cpu.net.save_pretrained(work / f"{variant}.safetensors")
        del backend, cpu
        report = export_onnx("ssd_student", str(weights), work / f"{variant}_{h}x{w}.onnx", height=h, width=w,
                             options={"short_side": 70} if variant == "tiny" else None)
        onnx = create_backend("onnx", weights=str(report.onnx_path), device=device, dtype=dtype)
        providers = ",".join(p.replace("ExecutionProvider", "") for p in onnx.runtime.active_providers)
        rows.append(measure_backend(label, f"ONNX Runtime ({providers})", onnx, preset, plan, plan.iterations,
                                    f"export parity max rel {report.max_rel_error:.1e}"))
    return rows


def bench_jasmine(plan: Plan) -> list[BackendRow]:
    """Jasmine (SD2 UNet + VAE + GRU, ~1.3 G parameters) at its 1024x320 card size; PyTorch only."""
    from ..models.registry import create_backend

    device, dtype, n = plan.device, plan.dtype, max(1, plan.iterations // 3)
    backend = create_backend("jasmine", random_init=True, device=device, dtype=dtype)
    note = f"{backend.parameter_count() / 1e6:.0f} M parameters; paper: 172 ms on an RTX 4090"
    rows = [measure_backend(LABELS["jasmine"], f"PyTorch {dtype} eager ({device})", backend, "1242x375", plan, n,
                            note)]
    if device != "cpu" and plan.compile:
        del backend
        compiled = create_backend("jasmine", random_init=True, device=device, dtype=dtype, compile="reduce-overhead")
        compiled.warmup(1242, 375)
        rows.append(measure_backend(LABELS["jasmine"], f"PyTorch {dtype} torch.compile+CUDA graphs", compiled,
                                    "1242x375", plan, n))
    return rows
