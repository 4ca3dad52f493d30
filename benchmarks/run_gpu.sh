#!/usr/bin/env bash
# The benchmark suite on a GPU machine: the same `depth-prior bench`, with the networks on CUDA.
#
#   bash benchmarks/run_gpu.sh                      # all sections, report in benchmarks/RESULTS_GPU.md
#   bash benchmarks/run_gpu.sh --sections backends  # only the networks
#   bash benchmarks/run_gpu.sh --models ssd_student:vitb jasmine
#
# Networks: ssd_student ViT-S/B/L (PyTorch fp16 eager and torch.compile + CUDA graphs, ONNX Runtime with
# the CUDA / TensorRT providers when onnxruntime-gpu is installed) and Jasmine (SD2 one-step + GRU).
# Core stages and the ROS transport run on this machine's CPU as on any other; their ratios are
# comparable across machines, their milliseconds are not.
# Needs: the project's venv (or PYTHON=...) with a CUDA build of torch installed first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-.venv/bin/python}"
[[ -x "$PY" ]] || PY="$(command -v python3)"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# rclpy processes stay on this host, in a domain of their own (the bench command sets these too).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "run_gpu.sh: torch sees no CUDA device (install a CUDA build of torch, check nvidia-smi)" >&2
    exit 2
fi
"$PY" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)'
if "$PY" -c 'import onnxruntime as ort, sys; sys.exit(0 if "CUDAExecutionProvider" in ort.get_available_providers() else 1)'; then
    echo "onnxruntime: CUDA provider available"
else
    echo "onnxruntime: no CUDA provider (pip install onnxruntime-gpu for GPU ONNX numbers); ONNX rows run on CPU"
fi

exec "$PY" -m depth_prior_ros.cli bench --device cuda --out benchmarks/RESULTS_GPU.md "$@"
