"""Generative domain transfer (GDT): day-clear frames -> night / rain, geometry kept.

Two translators with one call signature ``translator(image, condition, depth, labels, seed) -> image``:

- ``DiffusionTranslator``: diffusers ``StableDiffusionControlNetImg2ImgPipeline`` (SD 1.5 +
  ControlNet-depth, as in SSD): prompt = caption + ", " + "at night" | "in a rainy day"; the depth
  control image (normalised inverse depth, near = bright) keeps the scene's geometry; optional
  IP-Adapter style image per condition. The caption is a string, or a callable(image) -> str (e.g. a
  BLIP-2 captioner you load yourself; nothing is downloaded here).
- ``ClassicalTranslator`` (machines without diffusion weights): night from ``night.night`` (sun
  shadows removed, lit by street lamps and headlights), rain and fog from ``depth_prior_ros.synth``.

``translate_dataset`` writes ``OUT/<condition>/<name>.png`` and ``OUT/manifest.jsonl`` (one JSON object
per line: source, condition, prompt, seed, output), skips entries already in the manifest (resumable),
shows a progress bar, and takes ``shard``/``num_shards`` so several GPUs split one dataset.

    python -m depth_prior_training.gdt --config training/configs/tiny_ssd_teacher.yaml --out gdt_out \\
        --translator diffusion --base runwayml-sd15-folder --controlnet sd-controlnet-depth-folder \\
        --shard 0 --num-shards 4
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

CONDITION_PROMPTS = {"night": "at night", "rain": "in a rainy day"}  # SSD's prompts
NEGATIVE_PROMPT = "blurry, distorted, cartoon, low quality"


def prompt_for(condition: str, caption: str = "") -> str:
    if condition not in CONDITION_PROMPTS:
        raise ValueError(f"condition '{condition}' has no prompt; use one of {', '.join(CONDITION_PROMPTS)}")
    return f"{caption.strip().rstrip('.')}, {CONDITION_PROMPTS[condition]}" if caption.strip() \
        else f"a street {CONDITION_PROMPTS[condition]}"


def depth_control_image(depth: np.ndarray) -> np.ndarray:
    """Depth (H, W) metres, NaN/0/inf unknown (sky) -> uint8 (H, W, 3) normalised inverse depth, near = bright
    (the MiDaS-style map ControlNet-depth was trained on); unknown pixels are black (far)."""
    d = np.asarray(depth, np.float64)
    ok = np.isfinite(d) & (d > 0)
    inv = np.zeros_like(d)
    inv[ok] = 1.0 / d[ok]
    if ok.any():
        lo, hi = np.percentile(inv[ok], 1), np.percentile(inv[ok], 99)
        inv = np.clip((inv - lo) / max(hi - lo, 1e-9), 0, 1) * ok
    return np.repeat((inv * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def load_pipeline(base: str, controlnet: str, device: str = "cuda", dtype: str = "fp16", ip_adapter: str = "",
                  ip_adapter_weight_name: str = "ip-adapter_sd15.safetensors"):
    """SD 1.5 + ControlNet-depth img2img from local diffusers folders (no download)."""
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline

    torch_dtype = torch.float16 if dtype == "fp16" and device.startswith("cuda") else torch.float32
    control = ControlNetModel.from_pretrained(controlnet, torch_dtype=torch_dtype, local_files_only=True)
    pipe = StableDiffusionControlNetImg2ImgPipeline.from_pretrained(
        base, controlnet=control, torch_dtype=torch_dtype, safety_checker=None, requires_safety_checker=False,
        local_files_only=True)
    if ip_adapter:
        pipe.load_ip_adapter(ip_adapter, subfolder="models", weight_name=ip_adapter_weight_name, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


class DiffusionTranslator:
    """SSD's GDT with a diffusers ControlNet img2img pipeline (see the module docstring).

    size: (H, W) the pipeline runs at (multiples of 8); the output is resized back to the input size.
    style_images: {condition: uint8 RGB} IP-Adapter style images (only with an IP-Adapter loaded).
    depth_fn: image -> depth, used when a frame has no depth (e.g. a monocular estimator).
    """

    def __init__(self, pipe, steps: int = 20, strength: float = 0.6, guidance_scale: float = 7.5,
                 controlnet_scale: float = 1.0, caption: str | Callable[[np.ndarray], str] = "",
                 style_images: dict | None = None, size: tuple[int, int] | None = None,
                 depth_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        self.pipe, self.steps, self.strength = pipe, int(steps), float(strength)
        self.guidance_scale, self.controlnet_scale = float(guidance_scale), float(controlnet_scale)
        self.caption, self.style_images = caption, dict(style_images or {})
        self.size, self.depth_fn = size, depth_fn
        self.last_prompt = ""

    def __call__(self, image: np.ndarray, condition: str, depth: np.ndarray | None = None, labels=None,
                 seed: int = 0) -> np.ndarray:
        import cv2
        import torch
        from PIL import Image

        caption = self.caption(image) if callable(self.caption) else self.caption
        prompt = prompt_for(condition, caption)
        self.last_prompt = prompt
        if depth is None:
            if self.depth_fn is None:
                raise ValueError("the diffusion translator needs depth for the control image (give depth or depth_fn)")
            depth = self.depth_fn(image)
        H, W = image.shape[:2]
        h, w = self.size or (max(8, H // 8 * 8), max(8, W // 8 * 8))
        init = Image.fromarray(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA))
        control = Image.fromarray(cv2.resize(depth_control_image(depth), (w, h), interpolation=cv2.INTER_NEAREST))
        extra = {}
        if condition in self.style_images:
            extra["ip_adapter_image"] = Image.fromarray(self.style_images[condition])
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        out = self.pipe(prompt=prompt, negative_prompt=NEGATIVE_PROMPT, image=init, control_image=control,
                        strength=self.strength, num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                        controlnet_conditioning_scale=self.controlnet_scale, height=h, width=w,
                        generator=generator, output_type="np", **extra).images[0]
        out = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
        return cv2.resize(out, (W, H), interpolation=cv2.INTER_LINEAR) if (h, w) != (H, W) else out


class ClassicalTranslator:
    """The classical translators behind the same signature (prompt: 'classical:<condition>'): night
    from ``night.night`` (depth used where it is dense, e.g. synthetic; sparse LiDAR is not), rain and
    fog from synth's translator."""

    def __init__(self):
        from .synthetic import classical_translator

        self.fn = classical_translator()
        self.last_prompt = ""

    def __call__(self, image, condition, depth=None, labels=None, seed: int = 0) -> np.ndarray:
        from .night import night

        self.last_prompt = f"classical:{condition}"
        if condition == "night":
            dense = depth is not None and np.mean(np.isfinite(depth) & (np.asarray(depth) > 0)) > 0.5
            return night(image, depth if dense else None, int(seed))
        return self.fn(image, condition, depth, labels, int(seed))


def entry_seed(name: str, condition: str, base_seed: int = 0) -> int:
    """A stable per-(frame, condition) seed: the same entry gets the same noise on any shard or rerun."""
    return (zlib.crc32(f"{name}|{condition}".encode()) + base_seed) % (2 ** 31)


def read_manifest(path: Path) -> set[tuple[str, str]]:
    """(source, condition) pairs already done; a torn last line (crash mid-write) is ignored."""
    done = set()
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
                done.add((e["source"], e["condition"]))
            except (ValueError, KeyError):
                continue
    return done


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def translate_dataset(frames: Iterable, translator, conditions: Iterable[str], out_dir: str | Path,
                      shard: int = 0, num_shards: int = 1, base_seed: int = 0, progress: bool = True,
                      total: int | None = None) -> Path:
    """Translate every frame (objects with .name, .image, .depth, optional .labels) into ``conditions``.

    ``frames`` may be a lazy iterable (one frame in memory at a time; ``total`` sizes the progress bar).
    Frame i belongs to shard i % num_shards; each shard writes its own manifest
    (``manifest.jsonl`` for one shard, ``manifest.shard{i}of{n}.jsonl`` otherwise; ``merge_manifests``
    joins them). Entries already in the manifest are skipped. Returns the manifest path.
    """
    import cv2
    from tqdm import tqdm

    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in 0..{num_shards - 1}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / ("manifest.jsonl" if num_shards == 1 else f"manifest.shard{shard}of{num_shards}.jsonl")
    done = read_manifest(manifest)
    conditions = list(conditions)
    total = total if total is not None else (len(frames) if hasattr(frames, "__len__") else None)

    def todo():
        for i, frame in enumerate(frames):
            if i % num_shards == shard:
                yield from ((frame, c) for c in conditions if (frame.name, c) not in done)

    with open(manifest, "a", encoding="utf-8") as log_file:
        bar_total = None if total is None else -(-total // num_shards) * len(conditions)
        for frame, condition in tqdm(todo(), total=bar_total, desc=f"GDT shard {shard}/{num_shards}",
                                     disable=not progress, unit="img"):
            seed = entry_seed(frame.name, condition, base_seed)
            image = translator(frame.image, condition, frame.depth, getattr(frame, "labels", None), seed)
            rel = Path(condition) / f"{safe_name(frame.name)}.png"
            target = out_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp.png")
            if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write {tmp}")
            tmp.replace(target)  # the image is complete before the manifest mentions it
            log_file.write(json.dumps({"source": frame.name, "condition": condition,
                                       "prompt": getattr(translator, "last_prompt", ""), "seed": seed,
                                       "output": rel.as_posix()}) + "\n")
            log_file.flush()
    return manifest


def merge_manifests(out_dir: str | Path) -> Path:
    """Join shard manifests into ``manifest.jsonl`` (deduplicated by source and condition)."""
    out_dir = Path(out_dir)
    seen, lines = set(), []
    for path in sorted(out_dir.glob("manifest*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if (e.get("source"), e.get("condition")) not in seen:
                seen.add((e.get("source"), e.get("condition")))
                lines.append(json.dumps(e))
    target = out_dir / "manifest.jsonl"
    target.write_text("\n".join(lines) + ("\n" if lines else ""))
    return target


def main(argv: list[str] | None = None) -> int:
    from .config import load_config
    from .data import build_dataset

    parser = argparse.ArgumentParser(prog="depth_prior_training.gdt", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a training config; its data section lists the frames")
    parser.add_argument("--out", required=True)
    parser.add_argument("--conditions", nargs="+", default=["night", "rain"])
    parser.add_argument("--translator", choices=["classical", "diffusion"], default="classical")
    parser.add_argument("--base", default="", help="local SD 1.5 diffusers folder")
    parser.add_argument("--controlnet", default="", help="local ControlNet-depth diffusers folder")
    parser.add_argument("--ip-adapter", default="", help="local IP-Adapter folder (optional)")
    parser.add_argument("--style", action="append", default=[], metavar="CONDITION=IMAGE")
    parser.add_argument("--caption", default="", help="caption text used for every frame (BLIP-2 is optional)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strength", type=float, default=0.6)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--num-shards", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    # The clean frames are translated: the config's own manifest (often the one written here) is not read.
    data_cfg = dict(cfg.get("data", {}), conditions=[], manifest="")
    dataset = build_dataset(data_cfg)
    frames = (dataset.frame(i) for i in range(len(dataset)))
    if args.translator == "classical":
        translator = ClassicalTranslator()
    else:
        import cv2

        if not (args.base and args.controlnet):
            print("error: --translator diffusion needs --base and --controlnet folders", file=sys.stderr)
            return 2
        styles = {}
        for item in args.style:
            cond, _, path = item.partition("=")
            styles[cond] = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        pipe = load_pipeline(args.base, args.controlnet, args.device, ip_adapter=args.ip_adapter)
        translator = DiffusionTranslator(pipe, steps=args.steps, strength=args.strength, caption=args.caption,
                                         style_images=styles)
    manifest = translate_dataset(frames, translator, args.conditions, args.out, args.shard, args.num_shards,
                                 args.seed, total=len(dataset))
    print(f"manifest {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
