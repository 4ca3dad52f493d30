"""Getting weights onto a machine: known names, download with checksum into a cache, inspection.

Downloads are a user convenience (a vehicle usually gets its weights by other means); every code path
of the backends works from local files. Only http(s) URLs are fetched; a file is written to
``NAME.part`` while hashing and renamed into place only when its SHA-256 matches (when one is given).
"""
from __future__ import annotations

import functools
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import socket
import threading
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .base import BackendError
from .card import card_from_dict, card_path_for, write_card
from .preprocess import MAX_INPUT_PIXELS

CHUNK = 1 << 20
# The largest release (Jasmine.zip: an SD2 UNet and VAE in fp32, about 4 GB) with room to spare.
DEFAULT_MAX_BYTES = 8 << 30
DEFAULT_DEADLINE_S = 4 * 3600.0  # a whole download; --timeout bounds each network wait


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
             progress: bool = True, max_bytes: int = DEFAULT_MAX_BYTES,
             deadline: float = DEFAULT_DEADLINE_S) -> tuple[Path, str, bool]:
    """Fetch ``url`` to ``dest``; returns (path, sha256, downloaded?). Reuses a cached file whose checksum
    matches. ``timeout`` bounds each network wait, ``deadline`` the whole download (seconds), ``max_bytes``
    its size; the body must match its Content-Length; redirects are followed only to http(s). On any
    failure, Ctrl-C included, the partial file is removed; a failure raises BackendError."""
    expected = _check_hex(sha256)
    _check_http_url(url)
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise BackendError(f"the download {name} must be a positive number of seconds, got {value}")
    if not (isinstance(max_bytes, int) and max_bytes > 0):
        raise BackendError(f"the download size cap must be a positive number of bytes, got {max_bytes}")
    dest = Path(dest)
    if dest.is_file() and expected is not None and sha256_of(dest) == expected:
        return dest, expected, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        got = _fetch_body(url, part, timeout, deadline, max_bytes, progress, dest.name)
    except BaseException:  # any failure, Ctrl-C included: nothing half-downloaded stays behind
        part.unlink(missing_ok=True)
        raise
    if expected is not None and got != expected:
        part.unlink(missing_ok=True)
        raise BackendError(f"checksum mismatch for {url}: got sha256 {got}, expected {expected}; "
                           f"the file was not kept")
    part.replace(dest)
    return dest, got, True


def _check_http_url(url: str) -> None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BackendError(f"only http(s) URLs can be fetched, got '{url[:200]}'")


def _fetch_body(url: str, part: Path, timeout: float, deadline_s: float, max_bytes: int, progress: bool,
                label: str) -> str:
    """Stream ``url`` into ``part``; returns its SHA-256. BackendError (one sentence) on any failure."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    size = 0
    with _Deadline(deadline_s) as deadline:
        try:
            opener = urllib.request.build_opener(_WatchedHTTPHandler(deadline), _WatchedHTTPSHandler(deadline),
                                                 _HttpOnlyRedirects())
            request = urllib.request.Request(url, headers={"User-Agent": "depth_prior_ros"})
            with opener.open(request, timeout=timeout) as response, open(part, "wb") as out:
                announced = _content_length(url, response.headers.get("Content-Length"), max_bytes)
                with tqdm(total=announced, unit="B", unit_scale=True, desc=label, disable=not progress,
                          leave=False) as bar:
                    while chunk := response.read1(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise BackendError(f"download of {url} passed the size cap of {_bytes(max_bytes)}; "
                                               "stopped and removed (raise --max-gb if the file is that big)")
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise BackendError(f"download of {url} did not finish within the {deadline_s:g} s deadline; "
                                   "stopped and removed") from None
            raise BackendError(f"download of {url} failed: {_network_reason(exc)}") from None
        if deadline.expired:
            raise BackendError(f"download of {url} did not finish within the {deadline_s:g} s deadline; "
                               "stopped and removed")
    if announced is not None and size != announced:
        raise BackendError(f"download of {url} ended after {size} of the {announced} bytes its Content-Length "
                           "announced; the partial file was removed")
    return digest.hexdigest()


def _content_length(url: str, header: str | None, max_bytes: int) -> int | None:
    if header is None:
        return None
    text = header.strip()
    if not text.isdigit():
        raise BackendError(f"{url} answered with Content-Length '{text[:40]}', which is not a byte count")
    announced = int(text)
    if announced > max_bytes:
        raise BackendError(f"{url} announces {_bytes(announced)}, more than the size cap of {_bytes(max_bytes)} "
                           "(raise --max-gb if the file is that big)")
    return announced


def _network_reason(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if code in (301, 302, 303, 307, 308):  # urllib's own message for a loop runs over three lines
        return f"HTTP {code}: the server redirects in a loop"
    if code:
        return f"HTTP {code} {getattr(exc, 'reason', '')}".strip()
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, OSError):
        return f"the server did not answer with HTTP ({type(exc).__name__})"
    reason = getattr(exc, "reason", None) or exc.strerror or exc
    return str(reason).splitlines()[0][:200]


def _bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


class _Deadline:
    """Shuts the download's sockets when the overall deadline passes: a server trickling a byte per
    second never trips a per-read timeout, so only this ends such a download."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def watch(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Watched:
    """A connection that hands its socket to the deadline as soon as it is connected."""

    def __init__(self, *args, deadline: _Deadline, **kwargs):
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        super().connect()
        self._deadline.watch(self.sock)


class _WatchedHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self._deadline = deadline

    def http_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPConnection, deadline=self._deadline), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self._deadline = deadline

    def https_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPSConnection, deadline=self._deadline), req,
                            context=self._context)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to another http(s) URL (urllib would follow ftp:// too)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urljoin(req.full_url, newurl)
        if urllib.parse.urlparse(target).scheme not in ("http", "https"):
            raise BackendError(f"download of {req.full_url} redirects to '{target[:120]}', which is not http(s); "
                               "not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


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
          progress: bool = True, timeout: float = 60.0, max_bytes: int = DEFAULT_MAX_BYTES,
          deadline: float = DEFAULT_DEADLINE_S) -> FetchResult:
    """Download a known name (see KNOWN_WEIGHTS) or a URL into the cache; writes the card of known names.
    ``timeout``, ``max_bytes`` and ``deadline`` bound each file as in :func:`download`."""
    from ..output_paths import OutputPathError, check_output_folder

    try:
        cache_dir = check_output_folder(cache if cache is not None else default_cache(), "the weights cache")
    except OutputPathError as exc:
        raise BackendError(str(exc)) from None
    limits = {"timeout": timeout, "progress": progress, "max_bytes": max_bytes, "deadline": deadline}
    if name_or_url in KNOWN_WEIGHTS:
        entry = KNOWN_WEIGHTS[name_or_url]
        if sha256 and len(entry.files) != 1:
            raise BackendError(f"'{entry.name}' has {len(entry.files)} files; --sha256 pins single-file downloads")
        target = cache_dir / entry.name
        results = []
        for rel, url in entry.files.items():
            expected = sha256 or entry.sha256.get(rel)
            results.append(download(url, target / rel, expected, **limits))
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
    result = download(name_or_url, cache_dir / "urls" / url_file_name(name_or_url), sha256, **limits)
    return FetchResult(result[0].resolve(), None, [result])


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")


def url_file_name(url: str) -> str:
    """The cache file name for a URL: the last segment of its path, which must be a plain file name
    (no '..', NUL, slash or other characters that could point elsewhere)."""
    segment = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    if not _PLAIN_NAME.fullmatch(segment):
        raise BackendError(f"the URL's last path segment {segment[:60]!r} is not a plain file name (letters, digits, "
                           "'.', '_', '+', '-'); give a URL that ends in the file's name")
    return segment


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


# The frame `weights check` runs: a 16:9 camera of modest size (what a card's keep-aspect rule sees).
CHECK_FRAME = (360, 640)


def inspect_weights(path: str | Path, backend: str | None = None, options: dict | None = None) -> dict:
    """Load ``path`` on CPU in fp32 (strict), run one frame through it and report backend, card,
    parameter count, the test frame's output and details.

    Raises BackendError (one sentence) on any mismatch: weights that do not fit the architecture, a
    card whose network input would be absurdly large, or a test frame without finite output.
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
            "card_path": info.get("card_path"), "test_frame": run_test_frame(loaded, p),
            "details": {k: v for k, v in info.items() if k not in ("card", "card_path", "name", "weights")}}


def run_test_frame(backend, path: Path) -> dict:
    """One frame of a fixed random image through ``backend``; BackendError unless its input size is
    sane and at least half of its output is finite."""
    import numpy as np

    height, width = CHECK_FRAME
    net_h, net_w = backend.network_size(height, width)
    card_limit = getattr(getattr(backend, "card", None), "max_input_pixels", None)
    limit = min(int(card_limit or MAX_INPUT_PIXELS), MAX_INPUT_PIXELS)
    if net_h * net_w > limit:
        raise BackendError(f"{path}: the card makes a {width}x{height} camera a {net_w}x{net_h} network input, "
                           f"more than {limit:,} pixels; check its input_size / short_side")
    image = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    values = np.asarray(backend.predict(image).values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise BackendError(f"{path}: one test frame gives no finite output (all NaN or inf); the weights or "
                           "the card's normalization are broken")
    if finite.mean() < 0.5:
        raise BackendError(f"{path}: one test frame gives finite output on only {finite.mean():.0%} of the pixels")
    low, high = float(values[finite].min()), float(values[finite].max())
    return {"camera": f"{width}x{height}", "network_input": f"{net_w}x{net_h}", "output_min": low,
            "output_max": high, "finite": float(finite.mean())}


def format_report(report: dict) -> str:
    lines = [f"backend:    {report['backend']}", f"weights:    {report['weights']}",
             f"parameters: {report['parameters']:,} ({report['parameters'] / 1e6:.1f} M)",
             f"card:       {report['card_path']}"]
    lines.append(json.dumps(report["card"], indent=2))
    for key, value in report["details"].items():
        lines.append(f"{key}: {value}")
    t = report["test_frame"]
    lines.append(f"test frame: {t['camera']} camera -> {t['network_input']} network input, output "
                 f"{t['output_min']:.4g} .. {t['output_max']:.4g}, {t['finite']:.0%} finite")
    lines.append("ok: the weights load, match the architecture and give a finite output on a test frame")
    return "\n".join(lines)
