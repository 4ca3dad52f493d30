#!/usr/bin/env python3
"""Depth network latency per backend at the real sizes: PyTorch vs ONNX Runtime (CPU), fp16 / compiled (GPU).

Models (random weights: speed does not depend on their values; the architectures are the published ones):
  vits, vitb   ssd_student (Depth Anything ViT-S / ViT-B) at 518x924 (a 1600x900 camera through the card)
  jasmine      SD2 VAE + UNet one step + Scale-Shift GRU at 320x1024 (a 1242x375 KITTI camera)

Per model and runtime it reports the median latency of ``backend.predict`` (preprocessing, network,
resize back) and of ``DepthPipeline.process`` (prior + network + alignment), both measured in this run,
and the ONNX Runtime / PyTorch ratio. On CUDA: PyTorch fp16 eager vs ``torch.compile`` (reduce-overhead
= CUDA graphs), and ONNX Runtime with the CUDA/TensorRT providers when installed.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_models.py --models vits,vitb --iterations 3
    PYTHONPATH=src .venv/bin/python benchmarks/bench_models.py --models jasmine --iterations 1   # CPU: slow
    PYTHONPATH=src .venv/bin/python benchmarks/bench_models.py --device cuda --models vits,vitb,jasmine

On a 2-core CPU keep it bounded: ViT-B takes seconds per frame and Jasmine tens of seconds.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CAMERAS = {"student": (1600, 900), "jasmine": (1242, 375)}  # (width, height)
MODEL_LABELS = {"vits": "ssd_student ViT-S", "vitb": "ssd_student ViT-B", "vitl": "ssd_student ViT-L",
                "jasmine": "jasmine SD2 + GRU"}


@dataclass
class Row:
    model: str
    runtime: str
    camera: str
    network_input: str
    predict_ms: list[float]
    pipeline_ms: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return float(np.median(self.predict_ms)) if self.predict_ms else float("nan")

    @property
    def best(self) -> float:
        """Fastest sample: on a shared machine the least disturbed run (report it beside the median)."""
        return float(np.min(self.predict_ms)) if self.predict_ms else float("nan")

    @property
    def pipeline_median(self) -> float:
        return float(np.median(self.pipeline_ms)) if self.pipeline_ms else float("nan")


def timed(fn, iterations: int, warmup: int, sync=lambda: None) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(iterations):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def scene(kind: str):
    """(image, camera, pose) of a realistic camera for the pipeline timing."""
    from depth_prior_ros.geometry import PinholeCamera, pose_from_static

    width, height = CAMERAS[kind]
    if kind == "student":  # nuScenes CAM_FRONT
        K = np.array([[1266.417, 0.0, 816.267], [0.0, 1266.417, 491.507], [0.0, 0.0, 1.0]])
        pose = pose_from_static(1.51, 0.0)
    else:  # KITTI cam2
        K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
        pose = pose_from_static(1.65, np.radians(0.7))
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return image, PinholeCamera(K, width, height), pose


def measure_backend(label: str, runtime: str, backend, kind: str, iterations: int, pipeline_iterations: int,
                    sync, note: str = "") -> Row:
    from depth_prior_ros.pipeline import DepthPipeline

    image, camera, pose = scene(kind)
    h, w = backend.network_size(camera.height, camera.width)
    predict = timed(lambda: backend.predict(image), iterations, warmup=1, sync=sync)
    pipe = DepthPipeline(backend)
    pipeline = timed(lambda: pipe.process(image, camera, pose), pipeline_iterations, warmup=0, sync=sync)
    row = Row(label, runtime, f"{camera.width}x{camera.height}", f"{w}x{h}", predict, pipeline, note)
    print(f"  {label:22s} {runtime:44s} predict {row.median:9.1f} ms   pipeline {row.pipeline_median:9.1f} ms",
          flush=True)
    return row


def cuda_sync(device: str):
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def bench_student(variant: str, device: str, args, work: Path) -> list[Row]:
    import torch

    from depth_prior_ros.models import create_backend
    from depth_prior_ros.models.export import export_onnx

    label, sync, rows = MODEL_LABELS[variant], cuda_sync(device), []
    dtypes = ["fp32"] if device == "cpu" else ["fp16"]
    for dtype in dtypes:
        backend = create_backend("ssd_student", random_init=True, variant=variant, device=device, dtype=dtype)
        params = backend.parameter_count()
        rows.append(measure_backend(label, f"PyTorch {dtype} eager ({device})", backend, "student", args.iterations,
                                    args.pipeline_iterations, sync, f"{params / 1e6:.1f} M parameters"))
        if device != "cpu" and args.compile:
            compiled = create_backend("ssd_student", random_init=True, variant=variant, device=device, dtype=dtype,
                                      compile="reduce-overhead")
            compiled.warmup(*CAMERAS["student"])
            rows.append(measure_backend(label, f"PyTorch {dtype} torch.compile+CUDA graphs", compiled, "student",
                                        args.iterations, args.pipeline_iterations, sync))
            del compiled
    if args.onnx:
        cpu = backend if device == "cpu" else create_backend("ssd_student", random_init=True, variant=variant,
                                                             device="cpu")
        weights = cpu.net.save_pretrained(work / f"{variant}.safetensors")
        width, height = CAMERAS["student"]
        h, w = cpu.network_size(height, width)
        del backend, cpu
        gc.collect()
        t0 = time.perf_counter()
        report = export_onnx("ssd_student", str(weights), work / f"{variant}_{h}x{w}.onnx", height=h, width=w)
        print(f"  exported {variant} in {time.perf_counter() - t0:.0f} s: max abs {report.max_abs_error:.2e}, "
              f"max rel {report.max_rel_error:.2e}", flush=True)
        onnx = create_backend("onnx", weights=str(report.onnx_path), device=device,
                              dtype="fp16" if device != "cpu" else "fp32")
        providers = ",".join(p.replace("ExecutionProvider", "") for p in onnx.active_providers)
        rows.append(measure_backend(label, f"ONNX Runtime ({providers})", onnx, "student", args.iterations,
                                    args.pipeline_iterations, sync,
                                    f"export parity max rel {report.max_rel_error:.1e}"))
        del onnx
    if device != "cpu":
        torch.cuda.empty_cache()
    return rows


def bench_jasmine(device: str, args) -> list[Row]:
    from depth_prior_ros.models import create_backend

    sync = cuda_sync(device)
    dtype = "fp32" if device == "cpu" else "fp16"
    backend = create_backend("jasmine", random_init=True, device=device, dtype=dtype)
    params = backend.parameter_count()
    rows = [measure_backend(MODEL_LABELS["jasmine"], f"PyTorch {dtype} eager ({device})", backend, "jasmine",
                            args.jasmine_iterations, min(args.pipeline_iterations, args.jasmine_iterations), sync,
                            f"{params / 1e6:.0f} M parameters; paper: 172 ms on an RTX 4090")]
    if device != "cpu" and args.compile:
        del backend
        compiled = create_backend("jasmine", random_init=True, device=device, dtype=dtype, compile="reduce-overhead")
        compiled.warmup(*CAMERAS["jasmine"])
        rows.append(measure_backend(MODEL_LABELS["jasmine"], f"PyTorch {dtype} torch.compile+CUDA graphs", compiled,
                                    "jasmine", args.jasmine_iterations, args.pipeline_iterations, sync))
    return rows


def machine() -> dict:
    try:
        from depth_prior_ros.bench.machine import machine_info

        return machine_info(REPO)
    except Exception:  # noqa: BLE001 - best effort
        import platform

        return {"python": platform.python_version()}


def markdown(rows: list[Row], info: dict, device: str) -> str:
    import torch

    lines = [f"Device: {device}; torch {torch.__version__} ({torch.get_num_threads()} intra-op threads)",
             "", "| model | runtime | camera | network input | predict median (ms) | predict min (ms) | "
             "ratio vs PyTorch (median / min) | pipeline median (ms) | n | note |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        base = next((r for r in rows if r.model == row.model and r.runtime.startswith("PyTorch")), None)
        ratio = row.median / base.median if base and base.median > 0 else float("nan")
        ratio_best = row.best / base.best if base and base.best > 0 else float("nan")
        lines.append(f"| {row.model} | {row.runtime} | {row.camera} | {row.network_input} | {row.median:.1f} | "
                     f"{row.best:.1f} | {ratio:.2f} / {ratio_best:.2f} | {row.pipeline_median:.1f} | "
                     f"{len(row.predict_ms)} | {row.note} |")
    lines += ["", "Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--models", default="vits,vitb", help="comma list of vits, vitb, vitl, jasmine")
    parser.add_argument("--iterations", type=int, default=3, help="timed predict calls per student runtime")
    parser.add_argument("--jasmine-iterations", type=int, default=1, help="timed predict calls for jasmine")
    parser.add_argument("--pipeline-iterations", type=int, default=1, help="timed DepthPipeline.process calls")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip ONNX export + ORT timing")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="GPU: skip torch.compile")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    parser.add_argument("--json", type=Path, help="write rows + machine info as JSON here")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        for model in models:
            print(f"{model} on {device}:", flush=True)
            try:
                if model == "jasmine":
                    rows += bench_jasmine(device, args)
                elif model in ("vits", "vitb", "vitl"):
                    rows += bench_student(model, device, args, Path(tmp))
                else:
                    print(f"  unknown model '{model}'", flush=True)
            except Exception as exc:  # noqa: BLE001 - keep the other models' numbers
                print(f"  {model} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                      flush=True)
            gc.collect()
    info = machine()
    text = markdown(rows, info, device)
    print()
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"device": device, "machine": info,
                                         "rows": [dict(asdict(r), median_ms=r.median, min_ms=r.best) for r in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
