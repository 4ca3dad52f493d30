"""`depth-prior export` and `depth-prior weights {fetch,check,list,text-embedding}`.

Heavy imports (torch, transformers, diffusers, onnxruntime) happen inside the command functions.
"""
from __future__ import annotations

import argparse
import json

from ..commands.arguments import integer, number, size_side
from ..output_paths import check_output_file
from ..errors import CommandError
from .base import BackendError
from .weights import DEFAULT_DEADLINE_S, DEFAULT_MAX_BYTES


def _one_sentence(command):
    """A bad file or option (BackendError) ends the command as one sentence with exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except BackendError as exc:
            raise CommandError(str(exc)) from None

    return run


def _options(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--options must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise CommandError(f"--options must be a JSON object, got {type(value).__name__}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a PyTorch backend to ONNX with a parity check",
                              description="Export ssd_student or jasmine to ONNX (fixed input size), write "
                                          "M.card.json beside M.onnx and compare ONNX Runtime with PyTorch "
                                          "on CPU (max abs and max relative error).")
    p.add_argument("--backend", required=True, choices=["ssd_student", "jasmine"])
    p.add_argument("--weights", required=True, help="weights path (HF folder, .pth, .safetensors, Jasmine folder)")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--height", type=size_side, help="network input height (default: from the card)")
    p.add_argument("--width", type=size_side, help="network input width (default: from the card)")
    p.add_argument("--opset", type=integer(17, 30), default=17)
    p.add_argument("--options", help='backend options as JSON, e.g. \'{"gru": false}\'')
    p.add_argument("--tolerance", type=number(0.0, 1.0), default=1e-4,
                   help="fail when the max relative error exceeds this (default 1e-4)")
    p.set_defaults(func=_one_sentence(_export))

    w = subparsers.add_parser("weights", help="fetch, check and list depth network weights")
    ws = w.add_subparsers(dest="weights_command", metavar="ACTION")
    ws.required = True
    f = ws.add_parser("fetch", help="download a known checkpoint or a URL into the cache (with SHA-256 check)")
    f.add_argument("source", help="a known name (see `weights list`) or an http(s) URL")
    f.add_argument("--sha256", help="expected SHA-256 of the (single) file; mismatch -> not kept")
    f.add_argument("--cache", help="cache folder (default $DEPTH_PRIOR_CACHE or ~/.cache/depth_prior_ros/weights)")
    f.add_argument("--timeout", type=number(0.0, 3600.0, open_low=True), default=60.0,
                   help="seconds any one network wait may take (default 60)")
    f.add_argument("--deadline", type=number(0.0, 7 * 24 * 3600.0, open_low=True), default=DEFAULT_DEADLINE_S,
                   help=f"seconds the whole download may take (default {DEFAULT_DEADLINE_S:g})")
    f.add_argument("--max-gb", type=number(0.0, 1024.0, open_low=True), default=DEFAULT_MAX_BYTES / 2**30,
                   help=f"refuse files larger than this many GiB (default {DEFAULT_MAX_BYTES / 2**30:g}, "
                        "twice the largest known release)")
    f.add_argument("--no-progress", action="store_true")
    f.set_defaults(func=_one_sentence(_fetch))

    c = ws.add_parser("check", help="load weights strictly and print the card and parameter count")
    c.add_argument("path")
    c.add_argument("--backend", choices=["ssd_student", "jasmine", "onnx"], help="default: guessed from the path")
    c.add_argument("--options", help="backend options as JSON")
    c.set_defaults(func=_one_sentence(_check))

    lst = ws.add_parser("list", help="known checkpoint names for `weights fetch`")
    lst.set_defaults(func=_list)

    t = ws.add_parser("text-embedding", help="precompute Jasmine's empty-prompt embedding from a local "
                                             "SD2 text encoder (so no text encoder runs on the vehicle)")
    t.add_argument("--text-encoder", required=True, help="folder of an SD2 CLIPTextModel (text_encoder/)")
    t.add_argument("--tokenizer", help="folder with the tokenizer's vocab.json (default: ../tokenizer)")
    t.add_argument("--out", required=True, help="output, e.g. JASMINE/empty_text_embed.safetensors")
    t.set_defaults(func=_text_embedding)


def _export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    check_output_file(args.out)

    report = export_onnx(args.backend, args.weights, args.out, height=args.height, width=args.width,
                         opset=args.opset, options=_options(args.options))
    print(report.summary())
    print(f"max_abs_error={report.max_abs_error:.6e} max_rel_error={report.max_rel_error:.6e}")
    if report.max_rel_error > args.tolerance:
        raise CommandError(f"parity check failed: max relative error {report.max_rel_error:.3e} exceeds "
                             f"{args.tolerance:.1e} (the .onnx was kept for inspection)")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from .weights import fetch

    result = fetch(args.source, cache=args.cache, sha256=args.sha256, timeout=args.timeout, deadline=args.deadline,
                   max_bytes=int(args.max_gb * 2**30), progress=not args.no_progress)
    for path, digest, downloaded in result.files:
        print(f"{'downloaded' if downloaded else 'cached    '} {path}  sha256={digest}")
    if not args.sha256 and all(d for _, _, d in result.files):
        print("note: no checksum was given; pin the sha256 above with --sha256 next time")
    if result.backend:
        print(f"backend: {result.backend}")
    print(result.weights)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .weights import format_report, inspect_weights

    report = inspect_weights(args.path, backend=args.backend, options=_options(args.options))
    print(format_report(report))
    return 0


def _list(args: argparse.Namespace) -> int:
    from .weights import KNOWN_WEIGHTS

    for name, entry in sorted(KNOWN_WEIGHTS.items()):
        print(f"{name:28s} {entry.backend:12s} {entry.description}")
    return 0


def _text_embedding(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .jasmine import empty_text_embedding_from_encoder, save_empty_text_embedding

    check_output_file(args.out)
    encoder = Path(args.text_encoder)
    if not (encoder / "config.json").is_file():
        raise CommandError(f"{encoder} is not a text encoder folder (no config.json)")
    tokenizer = Path(args.tokenizer) if args.tokenizer else encoder.parent / "tokenizer"
    try:
        emb = empty_text_embedding_from_encoder(encoder, tokenizer)
    except OSError as exc:
        raise CommandError(f"cannot load the text encoder from {encoder}: {str(exc).splitlines()[0]}") from None
    path = save_empty_text_embedding(emb, args.out)
    print(f"wrote {path} (shape {tuple(emb.shape)})")
    return 0
