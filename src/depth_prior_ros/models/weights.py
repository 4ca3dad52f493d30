"""Getting weights onto a machine: known names, download with checksum into a cache, inspection.

Downloads are a user convenience (a vehicle usually gets its weights by other means); every code path
of the backends works from local files. Only http(s) URLs are fetched; a file is written to
``NAME.part`` while hashing and renamed into place only when its SHA-256 matches (when one is given).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .base import BackendError
from .card import card_from_dict, card_path_for, write_card

CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownWeights:
    """A published checkpoint: files to download (relative path -> URL), optional pinned checksums,
    the backend that runs it and the card written beside it."""

    name: str
    backend: str
    description: str
    files: dict[str, str]
    card: dict
    sha256: dict[str, str] = field(default_factory=dict)
    folder: bool = False  # the files form a folder (HF/diffusers layout); else one file
    archive: bool = False  # the single file is a zip to unpack

    @property
    def weights_relpath(self) -> str:
        return "." if self.folder or self.archive else next(iter(self.files))


_HF = "https://huggingface.co"
_DA_CARD = {"architecture": "depth_anything", "short_side": 518, "multiple_of": 14,
            "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "output_kind": "affine_disparity", "options": {"version": 1},
            "training_data": "1.5M labelled + 62M unlabelled images (Depth Anything v1)"}


def _da(variant: str, size_name: str) -> list[KnownWeights]:
    card = dict(_DA_CARD, variant=variant)
    return [
        KnownWeights(f"depth-anything-{variant}", "ssd_student",
                     f"Depth Anything v1 ViT-{variant[-1].upper()} relative depth, original .pth",
                     {f"depth_anything_{variant}14.pth":
                      f"{_HF}/spaces/LiheYoung/Depth-Anything/resolve/main/checkpoints/depth_anything_{variant}14.pth"},
                     dict(card, source="LiheYoung/Depth-Anything (original release)")),
        KnownWeights(f"depth-anything-{size_name}-hf", "ssd_student",
                     f"Depth Anything v1 ViT-{variant[-1].upper()} relative depth, Hugging Face folder",
                     {n: f"{_HF}/LiheYoung/depth-anything-{size_name}-hf/resolve/main/{n}"
                      for n in ("config.json", "model.safetensors")},
                     dict(card, source=f"LiheYoung/depth-anything-{size_name}-hf"), folder=True),
    ]


KNOWN_WEIGHTS: dict[str, KnownWeights] = {w.name: w for w in [
    *_da("vits", "small"), *_da("vitb", "base"), *_da("vitl", "large"),
    KnownWeights("jasmine", "jasmine", "Jasmine (NeurIPS 2025) released checkpoint: unet/, vae/, gru.pth",
                 {"Jasmine.zip": f"{_HF}/exander/Jasmine/resolve/main/Jasmine.zip"},
                 {"architecture": "jasmine", "variant": "sd2", "input_size": [320, 1024], "multiple_of": 64,
                  "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
                  "output_kind": "scale_depth", "training_data": "KITTI Eigen-Zhou (self-supervised)",
                  "source": "exander/Jasmine", "options": {"link_mode": "first"}}, archive=True),
    KnownWeights("taesd", "jasmine", "Tiny SD VAE decoder (AutoencoderTiny) for jasmine's tiny_vae option",
                 {n: f"{_HF}/madebyollin/taesd/resolve/main/{n}"
                  for n in ("config.json", "diffusion_pytorch_model.safetensors")},
                 {}, folder=True),
]}


def default_cache() -> Path:
    return Path(os.environ.get("DEPTH_PRIOR_CACHE", Path.home() / ".cache" / "depth_prior_ros" / "weights"))


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hex(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise BackendError(f"'{sha256}' is not a SHA-256 (64 hex digits)")
    return value


def download(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 60.0,
             progress: bool = True) -> tuple[Path, str, bool]:
    """Fetch ``url`` to ``dest``; returns (path, sha256, downloaded?). Reuses a cached file whose checksum
    matches; a mismatch removes the partial file and raises BackendError."""
    expected = _check_hex(sha256)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise BackendError(f"only http(s) URLs can be fetched, got '{url}'")
    dest = Path(dest)
    if dest.is_file() and expected is not None and sha256_of(dest) == expected:
        return dest, expected, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "depth_prior_ros"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm

            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress,
                      leave=False) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except OSError as exc:  # URLError, HTTPError, timeouts, disk errors
        part.unlink(missing_ok=True)
        code = getattr(exc, "code", None)
        reason = f"HTTP {code} {getattr(exc, 'reason', '')}".strip() if code else (getattr(exc, "reason", None) or exc)
        raise BackendError(f"download of {url} failed: {reason}") from None
    got = digest.hexdigest()
    if expected is not None and got != expected:
        part.unlink(missing_ok=True)
        raise BackendError(f"checksum mismatch for {url}: got sha256 {got}, expected {expected}; "
                           f"the file was not kept")
    part.replace(dest)
    return dest, got, True


def _safe_extract(archive: Path, target: Path) -> None:
    """Unzip refusing absolute paths and '..' (a zip must not write outside ``target``)."""
    root = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            resolved = (root / member).resolve()
            if root != resolved and root not in resolved.parents:
                raise BackendError(f"{archive} contains '{member}', which would unpack outside {target}")
        zf.extractall(root)


def _find_jasmine_root(folder: Path) -> Path:
    for candidate in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if (candidate / "unet").is_dir() and (candidate / "vae").is_dir():
            return candidate
    raise BackendError(f"{folder} does not contain a folder with unet/ and vae/ after unpacking")


@dataclass
class FetchResult:
    weights: Path  # what to pass as the backend's `weights`
    backend: str | None
    files: list[tuple[Path, str, bool]]  # (path, sha256, downloaded?)


def fetch(name_or_url: str, cache: str | Path | None = None, sha256: str | None = None,
          progress: bool = True, timeout: float = 60.0) -> FetchResult:
    """Download a known name (see KNOWN_WEIGHTS) or a URL into the cache; writes the card of known names."""
    cache_dir = Path(cache) if cache else default_cache()
    if name_or_url in KNOWN_WEIGHTS:
        entry = KNOWN_WEIGHTS[name_or_url]
        if sha256 and len(entry.files) != 1:
            raise BackendError(f"'{entry.name}' has {len(entry.files)} files; --sha256 pins single-file downloads")
        target = cache_dir / entry.name
        results = []
        for rel, url in entry.files.items():
            expected = sha256 or entry.sha256.get(rel)
            results.append(download(url, target / rel, expected, timeout=timeout, progress=progress))
        weights = target / entry.weights_relpath
        if entry.archive:
            unpacked = target / "unpacked"
            if not unpacked.is_dir() or any(r[2] for r in results):
                shutil.rmtree(unpacked, ignore_errors=True)
                _safe_extract(results[0][0], unpacked)
            weights = _find_jasmine_root(unpacked) if entry.backend == "jasmine" else unpacked
        weights = weights.resolve()
        if entry.card:
            card = card_from_dict(entry.card, where=f"built-in card of {entry.name}")
            write_card(card, card_path_for(weights))
        return FetchResult(weights, entry.backend, results)
    parsed = urllib.parse.urlparse(name_or_url)
    if parsed.scheme not in ("http", "https"):
        known = ", ".join(sorted(KNOWN_WEIGHTS))
        raise BackendError(f"'{name_or_url}' is neither a known weights name ({known}) nor an http(s) URL")
    filename = Path(urllib.parse.unquote(parsed.path)).name or "download"
    result = download(name_or_url, cache_dir / "urls" / filename, sha256, timeout=timeout, progress=progress)
    return FetchResult(result[0].resolve(), None, [result])


# ------------------------------------------------------------------------------------------ checking

def guess_backend(path: str | Path) -> str:
    """Which backend runs ``path``: .onnx -> onnx; a folder with unet/ -> jasmine; else from its card."""
    from .card import find_card

    p = Path(path)
    if p.suffix == ".onnx":
        return "onnx"
    if p.is_dir() and (p / "unet").is_dir():
        return "jasmine"
    card = find_card(p) if p.exists() else None
    if card is not None and card.architecture == "jasmine":
        return "jasmine"
    return "ssd_student"


def inspect_weights(path: str | Path, backend: str | None = None, options: dict | None = None) -> dict:
    """Load ``path`` on CPU in fp32 (strict) and report backend, card, parameter count, details.

    Raises BackendError (one sentence) on any mismatch.
    """
    from .registry import create_backend

    p = Path(path)
    if not p.exists():
        raise BackendError(f"{p} does not exist")
    name = backend or guess_backend(p)
    loaded = create_backend(name, weights=str(p), device="cpu", dtype="fp32", **(options or {}))
    info = loaded.describe()
    count = loaded.parameter_count() if hasattr(loaded, "parameter_count") else info.get("parameters", 0)
    return {"backend": name, "weights": str(p), "parameters": int(count), "card": info.get("card"),
            "card_path": info.get("card_path"),
            "details": {k: v for k, v in info.items() if k not in ("card", "card_path", "name", "weights")}}


def format_report(report: dict) -> str:
    lines = [f"backend:    {report['backend']}", f"weights:    {report['weights']}",
             f"parameters: {report['parameters']:,} ({report['parameters'] / 1e6:.1f} M)",
             f"card:       {report['card_path']}"]
    lines.append(json.dumps(report["card"], indent=2))
    for key, value in report["details"].items():
        lines.append(f"{key}: {value}")
    lines.append("ok: the weights load and match the architecture")
    return "\n".join(lines)
